/**
 * The progress advantage of one step (design §1):
 *   r_k = log π(y_k | ·) − log π_ref(y_k | ·),   A = β · agg_k r_k.
 * Mode "ratio" aggregates the log-ratios; mode "separate" aggregates each model's log-probs
 * first and subtracts (the paper's released code; equal to "ratio" for sum and mean).
 */
import { aggregateTokens, difference, type TokenAggregate } from './tokens.js';

export type AggregateMode = 'ratio' | 'separate';

export interface AdvantageOptions {
  beta: number;
  tokenAggregate: TokenAggregate;
  mode: AggregateMode;
}

/** Every value is null when the step has no scored token (numTokens 0): nothing was measured. */
export interface StepAdvantage {
  /** β · aggregated log-ratio. */
  advantage: number | null;
  /** The aggregated log-ratio, unscaled by β. */
  logRatio: number | null;
  /** Σ_k log π(y_k | ·): always the sum, whatever the aggregator (a step's log-likelihood). */
  policyLogprob: number | null;
  /** Σ_k log π_ref(y_k | ·). */
  referenceLogprob: number | null;
  numTokens: number;
}

export function stepAdvantage(policy: ArrayLike<number>, reference: ArrayLike<number>, options: AdvantageOptions): StepAdvantage {
  const { beta, tokenAggregate, mode } = options;
  if (policy.length !== reference.length) throw new Error(`length mismatch ${policy.length} vs ${reference.length}`);
  if (policy.length === 0) return { advantage: null, logRatio: null, policyLogprob: null, referenceLogprob: null, numTokens: 0 };
  const logRatio =
    mode === 'separate'
      ? aggregateTokens(policy, tokenAggregate)! - aggregateTokens(reference, tokenAggregate)!
      : aggregateTokens(difference(policy, reference), tokenAggregate)!;
  return {
    advantage: beta * logRatio,
    logRatio,
    policyLogprob: aggregateTokens(policy, 'sum'),
    referenceLogprob: aggregateTokens(reference, 'sum'),
    numTokens: policy.length,
  };
}
