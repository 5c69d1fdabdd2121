import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { aggregateTokens, stepAdvantage, TOKEN_AGGREGATES } from '../../src/scoring/index.js';

describe('aggregateTokens', () => {
  it('computes each aggregator on a hand-checked vector', () => {
    const v = [0.5, -2, 1.25, -0.75];
    expect(aggregateTokens(v, 'sum')).toBeCloseTo(-1, 15);
    expect(aggregateTokens(v, 'mean')).toBeCloseTo(-0.25, 15);
    expect(aggregateTokens(v, 'min')).toBe(-2);
    expect(aggregateTokens(v, 'max')).toBe(1.25);
    expect(aggregateTokens(v, 'last')).toBe(-0.75);
  });

  it('gives null, never 0, for an empty (truncated) step under every aggregator', () => {
    for (const how of TOKEN_AGGREGATES) expect(aggregateTokens([], how)).toBeNull();
  });

  it('sums without losing small terms next to large ones (compensated)', () => {
    // Naive left-to-right float64 summation returns 0 here; the exact sum is 2.
    expect(aggregateTokens([1e16, 1, 1, -1e16], 'sum')).toBe(2);
  });
});

describe('stepAdvantage', () => {
  const policy = [-0.1, -2.3, -0.7];
  const reference = [-0.4, -1.3, -0.9];

  it('is beta times the summed log-ratio by default, with summed log-probs', () => {
    const r = stepAdvantage(policy, reference, { beta: 0.05, tokenAggregate: 'sum', mode: 'ratio' });
    const ratio = (-0.1 + 0.4) + (-2.3 + 1.3) + (-0.7 + 0.9);
    expect(r.logRatio).toBeCloseTo(ratio, 14);
    expect(r.advantage).toBeCloseTo(0.05 * ratio, 14);
    expect(r.policyLogprob).toBeCloseTo(-3.1, 14);
    expect(r.referenceLogprob).toBeCloseTo(-2.6, 14);
    expect(r.numTokens).toBe(3);
  });

  it('separate mode differs from ratio mode for min and max, as in the paper code', () => {
    const ratioMin = stepAdvantage(policy, reference, { beta: 1, tokenAggregate: 'min', mode: 'ratio' }).logRatio;
    const separateMin = stepAdvantage(policy, reference, { beta: 1, tokenAggregate: 'min', mode: 'separate' }).logRatio;
    expect(ratioMin).toBeCloseTo(-1.0, 14); // min of [0.3, -1.0, 0.2]
    expect(separateMin).toBeCloseTo(-2.3 - -1.3, 14); // min(policy) − min(reference)
  });

  it('ratio and separate agree for sum and mean on any input', () => {
    const pair = fc.integer({ min: 1, max: 30 }).chain((n) =>
      fc.tuple(
        fc.array(fc.double({ min: -30, max: 0, noNaN: true }), { minLength: n, maxLength: n }),
        fc.array(fc.double({ min: -30, max: 0, noNaN: true }), { minLength: n, maxLength: n }),
      ),
    );
    fc.assert(
      fc.property(pair, fc.constantFrom('sum' as const, 'mean' as const), ([p, q], how) => {
        const a = stepAdvantage(p, q, { beta: 1, tokenAggregate: how, mode: 'ratio' }).logRatio;
        const b = stepAdvantage(p, q, { beta: 1, tokenAggregate: how, mode: 'separate' }).logRatio;
        expect(Math.abs(a! - b!)).toBeLessThan(1e-9 * (1 + Math.abs(a!)));
      }),
    );
  });

  it('scales linearly in beta, so rankings never depend on it', () => {
    const a = stepAdvantage(policy, reference, { beta: 1, tokenAggregate: 'sum', mode: 'ratio' }).advantage;
    const b = stepAdvantage(policy, reference, { beta: 0.25, tokenAggregate: 'sum', mode: 'ratio' }).advantage;
    expect(b).toBeCloseTo(a! * 0.25, 14);
  });
});
