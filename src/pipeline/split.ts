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

export interface Usage {
  prompt_tokens: number;
  scored_tokens: number;
  /** Context tokens whose keys and values came from the prefix cache instead of a forward pass. */
  cached_tokens: number;
  /** Tokens (context and scored) that are the tokenizer's unknown-word id: text it cannot represent. */
  unknown_tokens: number;
}

/**
 * Tokens that went through the models as context only, tokens scored, context tokens whose
 * keys and values came from the prefix cache instead of a forward pass, and unknown-word tokens.
 */
export function usageOf(sequences: readonly Sequence[], scores: readonly TokenScores[] = [], unkId: number | null = null): Usage {
  let scored = 0;
  let total = 0;
  let unknown = 0;
  for (const s of sequences) {
    total += s.ids.length;
    for (const span of s.spans) scored += span.end - span.start;
    if (unkId !== null) for (const id of s.ids) if (id === unkId) unknown++;
  }
  const cached = scores.reduce((n, s) => n + (s.cachedTokens ?? 0), 0);
  return { prompt_tokens: total - scored, scored_tokens: scored, cached_tokens: cached, unknown_tokens: unknown };
}

export interface UsageReport {
  usage: Usage;
  warnings?: string[];
}

/**
 * `usage` over the rows that went through the models, plus `warnings` when something was scored
 * that the numbers do not show (unknown words). Unknown words are counted over `unknownOver`
 * (the request's sequences: a token in two windows is one unknown word).
 */
export function usageReport(
  rows: readonly Sequence[],
  scores: readonly TokenScores[],
  unkId: number | null,
  unknownOver: readonly Sequence[] = rows,
): UsageReport {
  const usage = { ...usageOf(rows, scores), unknown_tokens: usageOf(unknownOver, [], unkId).unknown_tokens };
  if (usage.unknown_tokens === 0) return { usage };
  return {
    usage,
    warnings: [
      `${usage.unknown_tokens} of ${usage.prompt_tokens + usage.scored_tokens} tokens are the tokenizer's unknown-word token: ` +
        "this scorer's tokenizer does not cover the text, so those words were scored as one placeholder; use a scorer whose tokenizer covers it",
    ],
  };
}
