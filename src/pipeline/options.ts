/** Scoring options shared by every scoring request, resolved against the scorer's defaults. */
import { badRequest, unprocessable } from '../errors.js';
import type { Scorer } from '../pool.js';
import type { CompileLimits, LongContext } from '../text/compile.js';
import { stepAdvantage, type AggregateMode, type StepAdvantage, type TokenAggregate } from '../scoring/index.js';
import type { TokenizationProfile } from '../text/pieces.js';

/** What compiling and shaping results need of a scorer (not its engine): the offline sweep has no pair engine. */
export type ScorerSettings = Pick<Scorer, 'beta' | 'maxLength' | 'vocabSize' | 'tokenizer' | 'tokenization'>;

export interface ScoringOptions {
  beta?: number;
  token_aggregate?: TokenAggregate;
  token_aggregate_mode?: AggregateMode;
  return_tokens?: boolean;
  truncate?: boolean;
  /** How a sequence longer than the model is scored: "window" (default) or "truncate" (design §2). */
  long_context?: LongContext;
  tokenization?: TokenizationProfile;
}

/** The request's tokenization profile, else the scorer's (design §2). */
export function resolveTokenization(requested: TokenizationProfile | undefined, scorer: ScorerSettings): TokenizationProfile {
  return requested ?? scorer.tokenization;
}

/**
 * β is a KL coefficient (0.01–10 in practice); above this, β · log-ratio can overflow to ±Infinity,
 * which JSON cannot carry (1e308 answered a 500 before this bound).
 */
export const MAX_BETA = 1e6;

export function resolveBeta(requested: number | undefined, scorer: ScorerSettings): number {
  if (requested === undefined) return scorer.beta;
  if (!(requested > 0) || !(requested <= MAX_BETA)) {
    throw unprocessable('invalid_beta', `beta must be a number in (0, ${MAX_BETA}] (got ${requested})`);
  }
  return requested;
}

export function compileLimits(scorer: ScorerSettings, options: { truncate?: boolean; long_context?: LongContext }): CompileLimits {
  return { maxLength: scorer.maxLength, vocabSize: scorer.vocabSize, truncate: options.truncate ?? true, longContext: options.long_context ?? 'window' };
}

/** Per-token detail for `return_tokens`. */
export function tokenDetail(scorer: ScorerSettings, ids: ArrayLike<number>, policy: ArrayLike<number>, reference: ArrayLike<number>) {
  return Array.from({ length: ids.length }, (_, k) => ({
    id: ids[k],
    text: scorer.tokenizer.tokenText(ids[k]),
    policy_logprob: policy[k],
    reference_logprob: reference[k],
    log_ratio: policy[k] - reference[k],
  }));
}

/** A step's advantage under the request's token aggregation (default: the sum of log-ratios). */
export function advantageFor(
  scores: { policy: ArrayLike<number>; reference: ArrayLike<number> },
  beta: number,
  options: ScoringOptions,
): StepAdvantage {
  return stepAdvantage(scores.policy, scores.reference, {
    beta,
    tokenAggregate: options.token_aggregate ?? 'sum',
    mode: options.token_aggregate_mode ?? 'ratio',
  });
}

/**
 * The items of a batch request, each inheriting the request-level options it does not set. A
 * field that describes one item (its step, its trajectory) next to `items` is refused: ignoring
 * it would silently score something other than what was sent.
 */
export function batchItems<T extends object>(
  request: Partial<T> & { items: readonly T[] },
  optionKeys: readonly (keyof T)[],
  itemFields: readonly (keyof T)[],
): T[] {
  const stray = itemFields.filter((key) => request[key] !== undefined);
  if (stray.length > 0) throw badRequest('conflicting_fields', `give ${stray.join(', ')} inside each item, not next to items`);
  return request.items.map((item) => {
    const merged = { ...item };
    for (const key of optionKeys) if (merged[key] === undefined && request[key] !== undefined) merged[key] = request[key] as T[keyof T];
    return merged;
  });
}
