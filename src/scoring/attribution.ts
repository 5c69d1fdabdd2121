/**
 * Failure attribution (design §1): which step of a failed trajectory went wrong.
 * Ties resolve to the earliest step (the first time the run reached its low point).
 */
import { cumulativeSums } from './steps.js';

export const ATTRIBUTION_METHODS = ['min_cumulative', 'sharpest_drop', 'sharpest_abs_drop'] as const;
export type AttributionMethod = (typeof ATTRIBUTION_METHODS)[number];

function argmin(values: ArrayLike<number>): number {
  let best = -1;
  let bestValue = Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < bestValue) {
      bestValue = values[i];
      best = i;
    }
  }
  return best;
}

/**
 * Position (into `advantages`) of the step blamed, or -1 when there are no steps.
 *  - min_cumulative: argmin_i Σ_{j≤i} a_j, where the running value was lowest;
 *  - sharpest_drop: argmin_i a_i, the single most negative step;
 *  - sharpest_abs_drop: argmin_i (a_i − a_{i−1}), the most negative change between consecutive
 *    steps (a_{−1} = 0, so a one-step trajectory blames its only step).
 */
export function attributeFailure(advantages: ArrayLike<number>, method: AttributionMethod): number {
  const n = advantages.length;
  if (n === 0) return -1;
  switch (method) {
    case 'min_cumulative':
      return argmin(cumulativeSums(advantages));
    case 'sharpest_drop':
      return argmin(advantages);
    case 'sharpest_abs_drop': {
      const diffs = new Float64Array(n);
      for (let i = 0; i < n; i++) diffs[i] = advantages[i] - (i > 0 ? advantages[i - 1] : 0);
      return argmin(diffs);
    }
    default:
      throw new Error(`unknown attribution method ${String(method)}`);
  }
}
