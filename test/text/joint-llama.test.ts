/**
 * The `joint` profile on the real Llama tokenizer (issue 11): the rendering is encoded once, and
 * each piece's span is the tokens starting inside it. Checked on conversations from the real
 * data: the spans concatenate to `[<s>] + encode(whole rendering)` exactly, they are contiguous,
 * and each piece's tokens decode (the tokenizer's own decoder) back to exactly its text, so no
 * step starts with a token the whole encoding lacks there — unlike `paper`, whose step pieces
 * encoded alone start with the SentencePiece "▁" (29871) the policy never produced there.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeIf } from '../helpers/shared.js';
import { readTrajectoryFile } from '../../src/text/adapters.js';
import { compileStepDetailed, compileTrajectoryDetailed, type Compiled } from '../../src/text/compile.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { resolveTrajectoryInput } from '../../src/pipeline/trajectory.js';
import { DATA, DIRS, SKIP_REAL, readJson } from './real-files.js';

const SPIECE_SPACE = 29871; // "▁" in the Llama vocabulary
const LLAMA_BOS = 1;

describeIf(!SKIP_REAL)('joint on the Llama tokenizer', async () => {
  const llama = await loadTokenizer(DIRS.llama);
  const limits = { maxLength: 1 << 30, vocabSize: 32000, truncate: true };
  const compile = (format: string, data: unknown, tokenization: 'paper' | 'joint'): Compiled => {
    const { input } = resolveTrajectoryInput({ format: format as any, data });
    return compileTrajectoryDetailed({ ...input, tokenization }, llama, limits);
  };

  it('the issue\'s example: "\\n[assistant]: up" alone starts with "▁"; inside the conversation it does not', () => {
    expect(llama.encode('\n[assistant]: up')[0]).toBe(SPIECE_SPACE);
    const joint = compileStepDetailed({ prompt: '[user]: hi', step: '\n[assistant]: up', tokenization: 'joint' }, llama, limits);
    const whole = [LLAMA_BOS, ...llama.encode('[user]: hi\n[assistant]: up')];
    expect(joint.sequence.ids).toEqual(whole);
    const span = joint.sequence.spans[0];
    expect(joint.sequence.ids[span.start]).toBe(13); // <0x0A>
    expect(llama.decode(whole.slice(span.start, span.end))).toBe('\n[assistant]: up');
    const paper = compileStepDetailed({ prompt: '[user]: hi', step: '\n[assistant]: up' }, llama, limits);
    expect(paper.sequence.ids[paper.sequence.spans[0].start]).toBe(SPIECE_SPACE);
  });

  const cases = () => {
    const tau = readJson(path.join(DATA, 'tau-bench', 'gpt-4o-airline.trial0.tasks0-19.json')).map((r: any) => ['tau_bench', r] as const);
    const who = readTrajectoryFile(path.join(DATA, 'who-and-when'), 'who_and_when')
      .filter((_, i) => i % 5 === 0)
      .map((t) => ['who_and_when', readJson(path.join(DATA, 'who-and-when', `${t.id}.json`))] as const);
    return [...tau, ...who];
  };

  it('τ-bench and Who&When conversations: spans concatenate to encode(whole), and each decodes to its piece', { timeout: 240_000 }, () => {
    let spaceStartsPaper = 0;
    let steps = 0;
    let laterSteps = 0;
    for (const [format, data] of cases()) {
      const joint = compile(format, data, 'joint');
      const text = joint.pieces.map((p) => p.text).join('');
      const whole = [LLAMA_BOS, ...llama.encode(text)];
      expect(joint.sequence.ids).toEqual(whole);
      expect(joint.pieces[0].start).toBe(1);
      joint.pieces.forEach((p, i) => {
        if (i > 0) expect(p.start).toBe(joint.pieces[i - 1].end);
        expect(llama.decode(whole.slice(p.start, p.end))).toBe(p.text);
      });
      expect(joint.pieces.at(-1)!.end).toBe(whole.length);
      for (const span of joint.sequence.spans) {
        steps++;
        if (span.index > 0) laterSteps++;
        expect(joint.sequence.ids[span.start]).toBe(whole[span.start]);
        expect(joint.sequence.ids[span.start]).not.toBe(SPIECE_SPACE);
      }
      const paper = compile(format, data, 'paper');
      spaceStartsPaper += paper.sequence.spans.filter((s) => s.index > 0 && paper.sequence.ids[s.start] === SPIECE_SPACE).length;
    }
    expect(steps).toBeGreaterThan(300);
    // Under paper every step piece after the first message ("\n[...") encoded alone starts with the spurious "▁".
    expect(spaceStartsPaper).toBe(laterSteps);
    expect(laterSteps).toBeGreaterThan(300);
  });
});

describe.skipIf(SKIP_REAL)('joint on a GPT-2 tokenizer (byte-level BPE, a bos_token it never adds)', async () => {
  const gpt2 = await loadTokenizer(DIRS.gpt2);
  const limits = { maxLength: 1 << 30, vocabSize: 50257, truncate: true };

  it('adds no BOS (paper does: 50256), and each piece decodes back to its text, accents and emoji included', () => {
    const messages = [
      { role: 'user', content: 'Réservez un vol pour Zürich 🚀 demain' },
      { role: 'assistant', content: 'D’accord — je cherche.', tool_calls: [{ function: { name: 'search', arguments: '{"city": "Zürich", "n": 2}' } }] },
      { role: 'tool', content: '[{"flight": "LX 318"}]' },
      { role: 'assistant', content: '  Vol LX 318 trouvé.  ' },
    ];
    const joint = compileTrajectoryDetailed({ messages, tokenization: 'joint' }, gpt2, limits);
    const text = joint.pieces.map((p) => p.text).join('');
    expect(joint.sequence.ids).toEqual(gpt2.encode(text));
    expect(joint.bosAdded).toBe(false);
    joint.pieces.forEach((p) => expect(gpt2.decode(joint.sequence.ids.slice(p.start, p.end))).toBe(p.text));
    const paper = compileTrajectoryDetailed({ messages }, gpt2, limits);
    expect(paper.sequence.ids[0]).toBe(50256);
    expect(paper.bosAdded).toBe(true);
  });
});
