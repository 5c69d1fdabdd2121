/**
 * render: "chat_template" with the real Qwen2.5 and Qwen3 templates: every assistant message's
 * span is exactly that message's tokens in the rendered conversation, and the pieces rebuild the
 * template's own rendering of the whole conversation (rendered here with @huggingface/jinja).
 */
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { compileTrajectory } from '../../src/text/compile.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { describeIf, needShared } from '../helpers/shared.js';
import { DIRS } from './real-files.js';

const conversation = [
  { role: 'system', content: 'You are a careful agent.' },
  { role: 'user', content: 'What is 17 * 3?' },
  { role: 'assistant', content: '17 * 3 = 51.' },
  { role: 'user', content: 'And plus 9?' },
  { role: 'assistant', content: '51 + 9 = 60.' },
];
const limits = { maxLength: 4096, vocabSize: 1_000_000, truncate: true };

const HAVE_SHARED = needShared(import.meta.url, [DIRS.qwen25, DIRS.qwen3]);

describeIf(HAVE_SHARED).each([
  ['qwen2.5', DIRS.qwen25],
  ['qwen3', DIRS.qwen3],
])('chat template spans (%s)', (_name, dir) => {
  it('cover exactly each assistant message, and the pieces rebuild the full rendering', async () => {
    const tok = await loadTokenizer(dir);
    const seq = compileTrajectory({ messages: conversation, render: 'chat_template' }, tok, limits);
    expect(seq.spans.map((s) => s.index)).toEqual([2, 4]);

    const full = new Template(tok.chatTemplate!).render({ messages: conversation, add_generation_prompt: false, ...tok.specialTokens });
    expect(tok.decode(seq.ids)).toBe(full);

    for (const span of seq.spans) {
      const text = tok.decode(seq.ids.slice(span.start, span.end));
      const content = conversation[span.index].content;
      // The assistant turn, from its header to its end marker, and nothing of the next turn.
      expect(text.startsWith('<|im_start|>assistant\n')).toBe(true);
      expect(text.endsWith(`${content}<|im_end|>\n`)).toBe(true);
      expect(text).not.toContain('<|im_start|>user');
    }
    // Earlier turns render plainly in both families.
    expect(tok.decode(seq.ids.slice(seq.spans[0].start, seq.spans[0].end))).toBe(`<|im_start|>assistant\n${conversation[2].content}<|im_end|>\n`);
  });
});
