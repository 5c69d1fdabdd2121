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

/**
 * Tokens that went through the models as context only, tokens scored, and context tokens whose
 * keys and values came from the prefix cache instead of a forward pass.
 */
export function usageOf(
  sequences: readonly Sequence[],
  scores: readonly TokenScores[] = [],
): { prompt_tokens: number; scored_tokens: number; cached_tokens: number } {
  let scored = 0;
  let total = 0;
  for (const s of sequences) {
    total += s.ids.length;
    for (const span of s.spans) scored += span.end - span.start;
  }
  const cached = scores.reduce((n, s) => n + (s.cachedTokens ?? 0), 0);
  return { prompt_tokens: total - scored, scored_tokens: scored, cached_tokens: cached };
}
