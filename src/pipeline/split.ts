/**
 * The engine returns one entry per scored token of every span, spans in order (sequence.ts).
 * This cuts those flat arrays back into one view per span, without copying.
 */
import type { Sequence, TokenScores } from '../sequence.js';

export function spanScores(seq: Sequence, scores: TokenScores): TokenScores[] {
  const out: TokenScores[] = [];
  let offset = 0;
  for (const span of seq.spans) {
    const n = span.end - span.start;
    const cut = (a: Float64Array) => a.subarray(offset, offset + n);
    out.push({
      policy: cut(scores.policy),
      reference: cut(scores.reference),
      entropy: cut(scores.entropy),
      meanLogprob: cut(scores.meanLogprob),
      topkMeanLogprob: cut(scores.topkMeanLogprob),
    });
    offset += n;
  }
  if (offset !== scores.policy.length) {
    throw new Error(`engine returned ${scores.policy.length} token scores for ${offset} span tokens`);
  }
  return out;
}

/** Tokens that went through the models as context only, and tokens scored. */
export function usageOf(sequences: readonly Sequence[]): { prompt_tokens: number; scored_tokens: number } {
  let scored = 0;
  let total = 0;
  for (const s of sequences) {
    total += s.ids.length;
    for (const span of s.spans) scored += span.end - span.start;
  }
  return { prompt_tokens: total - scored, scored_tokens: scored };
}
