/**
 * Tokenization profiles and POST /v1/tokenize (issue 11, design §2), through app.inject() with a
 * real ScorerPool on hand-built bigram pairs whose tokenizer is written here by hand:
 * `tokenizer_config.json` names bos_token "<s>" and sets add_bos_token: false, and the
 * post-processor (TemplateProcessing "<s> $A") would add it. Expected ids are written out by hand
 * from that vocabulary; expected log-probs are the bigram's closed form
 * log p(b | a) = table[a][b] − logsumexp(table[a]) in float64.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { randomTable, writeBigramModel } from '../helpers/onnx-fixtures.js';

const V = 16;
/** The hand-written vocabulary: id → token. */
const VOCAB = ['<pad>', '<unk>', '<s>', '</s>', '[', ']:', 'user', 'assistant', 'hello', 'up', 'down', '\n', 'go', 'left', 'right', 'wait'];
const [S, OPEN, CLOSE, USER, ASSISTANT, HELLO, UP, DOWN, NL, GO, LEFT] = [2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];

function writeHandTokenizer(dir: string, vocab: readonly string[], config: Record<string, unknown>): void {
  const special = (id: number) => ({ id, content: vocab[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [0, 1, 2, 3].map(special),
    normalizer: null,
    // Words, "]:", single other characters and newlines are tokens; other whitespace is dropped.
    pre_tokenizer: { type: 'Split', pattern: { Regex: '\\n|[A-Za-z]+|\\]:|[^\\sA-Za-z]' }, behavior: 'Removed', invert: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [2], tokens: ['<s>'] } },
    },
    decoder: null,
    model: { type: 'WordLevel', vocab: Object.fromEntries(vocab.map((w, id) => [w, id])), unk_token: '<unk>' },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', ...config }),
  );
}

function logsumexp(row: readonly number[]): number {
  const max = Math.max(...row);
  return max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
}

const bigram = (table: number[][], ids: number[], start: number, end: number) =>
  Array.from({ length: end - start }, (_, i) => table[ids[start + i - 1]][ids[start + i]] - logsumexp(table[ids[start + i - 1]]));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokenize-test-'));
const policyTable = randomTable(V, 11);
const referenceTable = randomTable(V, 12);
let app: App;
let pool: ScorerPool;

beforeAll(async () => {
  const dirs = ['policy', 'reference', 'tok-default', 'tok-big'].map((d) => path.join(tmp, d));
  writeBigramModel(dirs[0], { table: policyTable, tokenizer: false });
  writeBigramModel(dirs[1], { table: referenceTable, tokenizer: false });
  writeHandTokenizer(dirs[0], VOCAB, { add_bos_token: false });
  fs.mkdirSync(dirs[2]);
  writeHandTokenizer(dirs[2], VOCAB, {}); // add_bos_token unset: the post-processor decides
  fs.mkdirSync(dirs[3]);
  writeHandTokenizer(dirs[3], [...VOCAB, 'extra1', 'extra2', 'extra3', 'extra4'], { add_bos_token: false });
  const config = validateConfig({
    ...defaultConfig(),
    threads: 1,
    log_level: 'silent',
    scorers: [
      { name: 'default', policy: dirs[0], reference: dirs[1] },
      { name: 'joint', policy: dirs[0], reference: dirs[1], tokenization: 'joint' },
      { name: 'unset', policy: dirs[0], reference: dirs[1], tokenizer: dirs[2] },
      { name: 'big', policy: dirs[0], reference: dirs[1], tokenizer: dirs[3] },
      { name: 'short', policy: dirs[0], reference: dirs[1], max_length: 8 },
    ],
  });
  pool = new ScorerPool(config);
  app = buildApp(config, pool, { metrics: new Metrics({ defaultMetrics: false }) });
  await pool.load();
}, 120_000);

afterAll(async () => {
  await app?.close();
  await pool?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function post(url: string, payload: object) {
  const res = await app.inject({ method: 'POST', url, payload });
  return { status: res.statusCode, body: res.json() };
}

const STEP_BODY = { prompt: '[user]: hello', step: '\n[assistant]: up' };
// Written by hand: "[" "user" "]:" "hello" | "\n" "[" "assistant" "]:" "up"
const PROMPT_IDS = [OPEN, USER, CLOSE, HELLO];
const STEP_IDS = [NL, OPEN, ASSISTANT, CLOSE, UP];

describe('tokenization profiles on a tokenizer with bos_token and add_bos_token: false', () => {
  it('paper prepends BOS; joint follows the tokenizer (no BOS)', async () => {
    const paper = await post('/v1/tokenize', STEP_BODY);
    expect(paper.body.error).toBeUndefined();
    expect(paper.status).toBe(200);
    expect(paper.body).toMatchObject({ tokenization: 'paper', ids: [S, ...PROMPT_IDS, ...STEP_IDS], bos_added: true, added_tokens: [0] });
    expect(paper.body.spans).toEqual([{ index: 0, start: 5, end: 10 }]);
    expect(paper.body.pieces).toEqual([
      { text: '[user]: hello', start: 1, end: 5, scored: false },
      { text: '\n[assistant]: up', start: 5, end: 10, scored: true, step: 0 },
    ]);

    const joint = await post('/v1/tokenize', { ...STEP_BODY, tokenization: 'joint' });
    expect(joint.body).toMatchObject({ tokenization: 'joint', ids: [...PROMPT_IDS, ...STEP_IDS], bos_added: false, added_tokens: [] });
    expect(joint.body.spans).toEqual([{ index: 0, start: 4, end: 9 }]);
    // The scorer configured with tokenization: joint does the same without the field.
    expect((await post('/v1/tokenize', { ...STEP_BODY, model: 'joint' })).body.ids).toEqual(joint.body.ids);
  });

  it('joint adds what the post-processor adds when add_bos_token is not set; paper is unchanged', async () => {
    const joint = await post('/v1/tokenize', { ...STEP_BODY, model: 'unset', tokenization: 'joint' });
    expect(joint.body).toMatchObject({ ids: [S, ...PROMPT_IDS, ...STEP_IDS], bos_added: true, added_tokens: [0] });
    const paper = await post('/v1/tokenize', { ...STEP_BODY, model: 'unset' });
    expect(paper.body.ids).toEqual([S, ...PROMPT_IDS, ...STEP_IDS]);
  });

  it('/v1/models reports the profile, the BOS, the tokenizer next to the model, and where max length came from', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/models' });
    const byId = Object.fromEntries(res.json().data.map((s: any) => [s.id, s]));
    expect(byId.default.tokenization).toEqual({
      profile: 'paper',
      bos_token: '<s>',
      bos_id: S,
      bos_added: { paper: true, joint: false },
      add_bos_token: false,
      tokenizer_size: V,
      tokenizer_exceeds_model: false,
    });
    expect(byId.joint.tokenization.profile).toBe('joint');
    expect(byId.unset.tokenization.bos_added).toEqual({ paper: true, joint: true });
    expect(byId.default).toMatchObject({ vocab_size: V, max_length: 512, max_length_source: 'policy config.json max_position_embeddings', warnings: [] });
    // 20 tokenizer ids on a 16-row model: said, not refused.
    expect(byId.big.tokenization).toMatchObject({ tokenizer_size: V + 4, tokenizer_exceeds_model: true });
    expect(byId.big.warnings).toHaveLength(1);
    expect(byId.big.warnings[0]).toMatch(/tokenizer has 20 ids but the model's vocabulary has 16/);
  });
});

describe('/v1/tokenize returns the ids whose log-probs the scoring routes return', () => {
  for (const tokenization of ['paper', 'joint'] as const) {
    it(`/v1/score (${tokenization})`, async () => {
      const body = { ...STEP_BODY, tokenization };
      const tok = (await post('/v1/tokenize', body)).body;
      const score = (await post('/v1/score', { ...body, return_tokens: true })).body;
      const span = tok.spans[0];
      expect(score.tokens.map((t: any) => t.id)).toEqual(tok.ids.slice(span.start, span.end));
      const want = bigram(policyTable, tok.ids, span.start, span.end);
      score.tokens.forEach((t: any, i: number) => expect(t.policy_logprob).toBeCloseTo(want[i], 5));
      const wantRef = bigram(referenceTable, tok.ids, span.start, span.end);
      score.tokens.forEach((t: any, i: number) => expect(t.reference_logprob).toBeCloseTo(wantRef[i], 5));
      expect(score.usage.prompt_tokens + score.usage.scored_tokens).toBe(tok.num_tokens);
    });

    it(`/v1/trajectories/score, /v1/rank and items (${tokenization})`, async () => {
      const messages = [
        { role: 'user', content: 'hello go' },
        { role: 'assistant', content: 'up' },
        { role: 'user', content: 'go left' },
        { role: 'assistant', content: 'down  right' },
      ];
      const tok = (await post('/v1/tokenize', { messages, tokenization })).body;
      // Written by hand: BOS only under paper, then "[user]: hello go" "\n[assistant]: up" ...
      const m = [
        [OPEN, USER, CLOSE, HELLO, GO],
        [NL, OPEN, ASSISTANT, CLOSE, UP],
        [NL, OPEN, USER, CLOSE, GO, LEFT],
        [NL, OPEN, ASSISTANT, CLOSE, DOWN, 14],
      ];
      expect(tok.ids).toEqual([...(tokenization === 'paper' ? [S] : []), ...m.flat()]);
      const traj = (await post('/v1/trajectories/score', { messages, tokenization, return_tokens: true })).body;
      expect(traj.steps.map((s: any) => s.index)).toEqual(tok.spans.map((s: any) => s.index));
      traj.steps.forEach((step: any, k: number) => {
        const { start, end } = tok.spans[k];
        expect(step.tokens.map((t: any) => t.id)).toEqual(tok.ids.slice(start, end));
        const want = bigram(policyTable, tok.ids, start, end).reduce((a, b) => a + b) - bigram(referenceTable, tok.ids, start, end).reduce((a, b) => a + b);
        expect(step.log_ratio).toBeCloseTo(want, 4);
      });

      const rankBody = { prompt: '[user]: hello', candidates: ['\n[assistant]: up', '\n[assistant]: down'], tokenization };
      const rankTok = (await post('/v1/tokenize', rankBody)).body;
      const rank = (await post('/v1/rank', rankBody)).body;
      expect(rankTok.results).toHaveLength(2);
      rankTok.results.forEach((r: any, i: number) => {
        const { start, end } = r.spans[0];
        const want = bigram(policyTable, r.ids, start, end).reduce((a, b) => a + b) - bigram(referenceTable, r.ids, start, end).reduce((a, b) => a + b);
        expect(rank.candidates[i].steps[0].log_ratio).toBeCloseTo(want, 4);
      });

      const items = { items: [STEP_BODY, { prompt: '[user]: go', step: '\n[assistant]: left' }], tokenization };
      const itemsTok = (await post('/v1/tokenize', items)).body;
      const itemsScore = (await post('/v1/score', { ...items, return_tokens: true })).body;
      itemsTok.results.forEach((r: any, i: number) => {
        const { start, end } = r.spans[0];
        expect(itemsScore.results[i].tokens.map((t: any) => t.id)).toEqual(r.ids.slice(start, end));
      });
    });
  }

  it('answers the attribute and dataset bodies too, and refuses a field of another route', async () => {
    const data = { history: [{ role: 'human', content: 'hello' }, { role: 'Orchestrator (thought)', content: 'go up' }, { role: 'WebSurfer', content: 'down' }] };
    const tok = (await post('/v1/tokenize', { format: 'who_and_when', data, method: 'sharpest_drop' })).body;
    expect(tok.pieces.map((p: any) => p.text)).toEqual(['[human]: hello', '\n[Orchestrator (thought)]: go up', '\n[WebSurfer]: down']);
    expect(tok.pieces.map((p: any) => p.agent ?? null)).toEqual([null, 'Orchestrator (thought)', 'WebSurfer']);
    const bad = await post('/v1/tokenize', { prompt: 'x', candidates: ['y'], step: 'z' });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'unknown_field']);
    expect(bad.body.error.message).toContain('/v1/rank');
  });
});

describe('/v1/tokenize shows the windows of a sequence longer than the max length (issue 13)', () => {
  it('windows of at most 8 tokens, BOS leading each, every scored token in exactly one; scoring runs those rows', async () => {
    const messages = [
      { role: 'user', content: 'hello go' },
      { role: 'assistant', content: 'up down left' },
      { role: 'user', content: 'go left' },
      { role: 'assistant', content: 'down right wait up' },
    ];
    const tok = (await post('/v1/tokenize', { model: 'short', messages })).body;
    // BOS + 5 + 7 + 6 + 8 = 27 tokens, L = 8, stride 4.
    expect(tok.num_tokens).toBe(27);
    expect(tok.bos_added).toBe(true);
    expect(tok.windows.length).toBeGreaterThan(3);
    const scoredByWindows = tok.windows.flatMap((w: any) => w.scored.flatMap(([a, b]: number[]) => Array.from({ length: b - a }, (_, k) => a + k)));
    const scoredBySpans = tok.spans.flatMap((s: any) => Array.from({ length: s.end - s.start }, (_, k) => s.start + k));
    expect(scoredByWindows).toEqual(scoredBySpans);
    for (const w of tok.windows) {
      expect(1 + w.end - w.start).toBeLessThanOrEqual(8);
      // Every token it scores is inside it and sees ⌊8/2⌋ tokens (the BOS counted) or all before it.
      for (const [a, b] of w.scored) {
        expect(a).toBeGreaterThanOrEqual(w.start);
        expect(b).toBeLessThanOrEqual(w.end);
        const seen = w.start === 1 ? a : 1 + a - w.start;
        expect(seen === a || seen >= 4).toBe(true);
      }
    }
    const traj = (await post('/v1/trajectories/score', { model: 'short', messages, return_tokens: true })).body;
    expect(traj.windows).toBe(tok.windows.length);
    expect(traj.usage.prompt_tokens + traj.usage.scored_tokens).toBe(tok.windows.reduce((n: number, w: any) => n + 1 + w.end - w.start, 0));
    // A bigram reads only the previous token, which every window keeps: the closed form on the full ids.
    traj.steps.forEach((step: any, k: number) => {
      const { start, end } = tok.spans[k];
      const want = bigram(policyTable, tok.ids, start, end);
      step.tokens.forEach((t: any, i: number) => expect(t.policy_logprob).toBeCloseTo(want[i], 5));
    });
  });
});

describe('tool-call arguments sent as objects', () => {
  it('render as Python str() of what was sent: 1.0 stays a float, big integers exact, keys in their order', async () => {
    const payload =
      '{"messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": null, "tool_calls": ' +
      '[{"name": "f", "arguments": {"x": 1.0, "big": 12345678901234567890, "2": "a", "1": "b", "e": 1e2}}]}]}';
    const res = await app.inject({ method: 'POST', url: '/v1/tokenize', headers: { 'content-type': 'application/json' }, payload });
    // Python: str({'x': 1.0, 'big': 12345678901234567890, '2': 'a', '1': 'b', 'e': 100.0})
    expect(res.json().pieces[1].text).toBe("\n[assistant]: tool_call(f, {'x': 1.0, 'big': 12345678901234567890, '2': 'a', '1': 'b', 'e': 100.0})");
  });
});

describe('errors inside items name the item', () => {
  it('error.item is the index of the item at fault, on every items route', async () => {
    const score = await post('/v1/score', { items: [STEP_BODY, { prompt: 'x', step: '' }] });
    expect([score.status, score.body.error.code, score.body.error.item]).toEqual([422, 'empty_step', 1]);
    const traj = await post('/v1/trajectories/score', { items: [{ messages: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'up' }] }, { messages: [] }] });
    expect([traj.status, traj.body.error.code, traj.body.error.item]).toEqual([422, 'empty_trajectory', 1]);
    const beta = await post('/v1/score', { items: [{ ...STEP_BODY, beta: -1 }, STEP_BODY] });
    expect([beta.status, beta.body.error.code, beta.body.error.item]).toEqual([422, 'invalid_beta', 0]);
    const tok = await post('/v1/tokenize', { items: [STEP_BODY, STEP_BODY, { prompt: 'x', step: '' }] });
    expect(tok.body.error.item).toBe(2);
    // A single body has no item to name.
    const single = await post('/v1/score', { prompt: 'x', step: '' });
    expect(single.body.error.item).toBeUndefined();
  });
});

describe('piece encodings are cached (paper)', () => {
  it('a growing conversation re-encodes only its new message; candidates and items encode a shared prompt once', async () => {
    const spy = vi.spyOn(Tokenizer.prototype, 'encode');
    const texts = (): string[] => spy.mock.calls.map((c: unknown[]) => c[0] as string);
    try {
      const conversation = [
        { role: 'user', content: 'hello hello go' },
        { role: 'assistant', content: 'left left' },
      ];
      await post('/v1/trajectories/score', { messages: conversation });
      spy.mockClear();
      await post('/v1/trajectories/score', { messages: [...conversation, { role: 'user', content: 'go go go' }, { role: 'assistant', content: 'up up' }] });
      expect(texts()).toEqual(['\n[user]: go go go', '\n[assistant]: up up']);

      spy.mockClear();
      const prompt = '[user]: hello go left right down';
      await post('/v1/rank', { prompt, candidates: ['\n[assistant]: up', '\n[assistant]: down', '\n[assistant]: left'] });
      expect(texts().filter((t: string) => t === prompt)).toHaveLength(1);

      spy.mockClear();
      const other = '[user]: go hello hello left';
      await post('/v1/score', { items: ['up', 'down', 'wait'].map((w) => ({ prompt: other, step: `\n[assistant]: ${w}` })) });
      expect(texts().filter((t: string) => t === other)).toHaveLength(1);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('the README\'s /v1/tokenize example', () => {
  it('is what the default pair answers, and its ids are BOS + each piece encoded on its own', async () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Tokenization contract'));
    const request = JSON.parse(/-d '(\{.*\})'/.exec(section)![1]);
    const answer = JSON.parse(/```json\n(.*)\n```/.exec(section)![1]);
    const { defaultPairApp, GRIDWORLD_POLICY } = await import('../helpers/default-pair-app.js');
    const service = await defaultPairApp();
    try {
      const res = await service.app.inject({ method: 'POST', url: '/v1/tokenize', payload: request });
      expect(res.json()).toEqual(answer);
      const tok = new Tokenizer(
        JSON.parse(fs.readFileSync(path.join(GRIDWORLD_POLICY, 'tokenizer.json'), 'utf8')),
        JSON.parse(fs.readFileSync(path.join(GRIDWORLD_POLICY, 'tokenizer_config.json'), 'utf8')),
      );
      const enc = (t: string) => tok.encode(t, { add_special_tokens: false }).ids;
      const bos = tok.encode('<bos>', { add_special_tokens: false }).ids;
      const [user, assistant] = request.messages;
      expect(answer.ids).toEqual([...bos, ...enc(`[user]: ${user.content}`), ...enc(`\n[assistant]: ${assistant.content}`)]);
    } finally {
      await service.close();
    }
  });
});
