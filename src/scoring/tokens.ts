/**
 * Token aggregators (design §1): how a step's per-token values become one number.
 * Pure; inputs are never modified.
 */
export const TOKEN_AGGREGATES = ['sum', 'mean', 'min', 'max', 'last'] as const;
export type TokenAggregate = (typeof TOKEN_AGGREGATES)[number];

/**
 * Aggregates `values`. Over no value (a step truncated away) every aggregator is null, never 0:
 * 0 would read as a real score ("no change", or "fully confident" for a mean log-prob).
 */
export function aggregateTokens(values: ArrayLike<number>, how: TokenAggregate): number | null {
  const n = values.length;
  if (n === 0) return null;
  switch (how) {
    case 'sum':
    case 'mean': {
      // Neumaier summation: a long step of small log-ratios must not lose digits.
      let sum = 0;
      let compensation = 0;
      for (let k = 0; k < n; k++) {
        const v = values[k];
        const t = sum + v;
        compensation += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
        sum = t;
      }
      const total = sum + compensation;
      return how === 'sum' ? total : total / n;
    }
    case 'min': {
      let m = Infinity;
      for (let k = 0; k < n; k++) if (values[k] < m) m = values[k];
      return m;
    }
    case 'max': {
      let m = -Infinity;
      for (let k = 0; k < n; k++) if (values[k] > m) m = values[k];
      return m;
    }
    case 'last':
      return values[n - 1];
    default:
      throw new Error(`unknown token aggregate ${String(how)}`);
  }
}

/** Elementwise a − b. */
export function difference(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  const out = new Float64Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = a[k] - b[k];
  return out;
}
