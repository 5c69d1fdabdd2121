/**
 * Step aggregators over a trajectory's step advantages (design §1), and running sums.
 * Over no scored step every aggregate is null, never 0 (0 would read as a real score).
 */
import { aggregateTokens } from './tokens.js';

export const STEP_AGGREGATES = ['mean', 'sum', 'min', 'max', 'last', 'bottom10'] as const;
export type StepAggregate = (typeof STEP_AGGREGATES)[number];

/** Mean of the lowest ceil(fraction · n) values, at least one (DeepConf's bottom-10% group); null for none. */
export function bottomFractionMean(values: ArrayLike<number>, fraction = 0.1): number | null {
  const n = values.length;
  if (n === 0) return null;
  const k = Math.max(1, Math.ceil(fraction * n - 1e-9));
  const sorted = Float64Array.from(values).sort();
  return aggregateTokens(sorted.subarray(0, k), 'mean');
}

/** One number for a trajectory from its scored steps' advantages. No scored step → null. */
export function aggregateSteps(values: ArrayLike<number>, how: StepAggregate): number | null {
  if (how === 'bottom10') return bottomFractionMean(values, 0.1);
  return aggregateTokens(values, how);
}

/** Every step aggregate at once, as the API returns them. */
export function allStepAggregates(values: ArrayLike<number>): Record<StepAggregate, number | null> {
  const out = {} as Record<StepAggregate, number | null>;
  for (const how of STEP_AGGREGATES) out[how] = aggregateSteps(values, how);
  return out;
}

/** c_i = Σ_{j ≤ i} a_j. */
export function cumulativeSums(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  let running = 0;
  for (let i = 0; i < values.length; i++) {
    running += values[i];
    out[i] = running;
  }
  return out;
}

/**
 * Running sums over the scored steps of a trajectory whose unscored steps are null: c_i is the sum
 * of the non-null a_j with j ≤ i, and null while no step up to i was scored (a sum over nothing).
 */
export function cumulativeOverScored(values: readonly (number | null)[]): (number | null)[] {
  let running = 0;
  let any = false;
  return values.map((v) => {
    if (v !== null) {
      running += v;
      any = true;
    }
    return any ? running : null;
  });
}
