import { describe, expect, it } from 'vitest';
import { auroc, bestOfN, bootstrapInterval, spearman } from '../../src/scoring/index.js';

describe('evaluation statistics', () => {
  it('AUROC counts concordant pairs, ties as one half', () => {
    // positives 0.9, 0.4; negatives 0.5, 0.4, 0.1 → pairs: (0.9: 3 wins) (0.4: 1 win, 1 tie, 1 loss) = 4.5 / 6
    expect(auroc([0.9, 0.4, 0.5, 0.4, 0.1], [true, true, false, false, false])).toBeCloseTo(4.5 / 6, 14);
    expect(auroc([1, 2], [true, true])).toBeNaN();
  });

  it('Spearman is ±1 for monotone relations and uses average ranks', () => {
    expect(spearman([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1, 14);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 14);
    // ranks x: 1, 2.5, 2.5, 4; y: 1, 2, 3, 4 → Pearson of ranks = 4.5 / sqrt(4.5 · 5)
    expect(spearman([1, 2, 2, 3], [1, 2, 3, 4])).toBeCloseTo(4.5 / Math.sqrt(4.5 * 5), 12);
  });

  it('best-of-N takes the top score, the first on ties', () => {
    expect(bestOfN([0.1, 0.7, 0.7], [false, true, false])).toBe(true);
  });

  it('bootstrap intervals contain the estimate and are reproducible by seed', () => {
    const groups = Array.from({ length: 40 }, (_, i) => i % 3);
    const mean = (g: readonly number[]) => g.reduce((a, b) => a + b, 0) / g.length;
    const a = bootstrapInterval(groups, mean, { seed: 7, resamples: 300 });
    const b = bootstrapInterval(groups, mean, { seed: 7, resamples: 300 });
    expect(a).toEqual(b);
    expect(a.low).toBeLessThanOrEqual(a.estimate);
    expect(a.high).toBeGreaterThanOrEqual(a.estimate);
    expect(a.high).toBeGreaterThan(a.low);
  });
});
