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

export interface StepAdvantage {
  /** β · aggregated log-ratio. */
  advantage: number;
  /** The aggregated log-ratio, unscaled by β. */
  logRatio: number;
  /** Σ_k log π(y_k | ·): always the sum, whatever the aggregator (a step's log-likelihood). */
  policyLogprob: number;
  /** Σ_k log π_ref(y_k | ·). */
  referenceLogprob: number;
  numTokens: number;
}

export function stepAdvantage(policy: ArrayLike<number>, reference: ArrayLike<number>, options: AdvantageOptions): StepAdvantage {
  const { beta, tokenAggregate, mode } = options;
  const logRatio =
    mode === 'separate'
      ? aggregateTokens(policy, tokenAggregate) - aggregateTokens(reference, tokenAggregate)
      : aggregateTokens(difference(policy, reference), tokenAggregate);
  return {
    advantage: beta * logRatio,
    logRatio,
    policyLogprob: aggregateTokens(policy, 'sum'),
    referenceLogprob: aggregateTokens(reference, 'sum'),
    numTokens: policy.length,
  };
}
