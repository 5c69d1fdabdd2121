import { describe, expect, it } from 'vitest';
import { aggregateSteps, allStepAggregates, attributeFailure, bottomFractionMean, cumulativeOverScored, cumulativeSums } from '../../src/scoring/index.js';

describe('step aggregates', () => {
  it('bottom10 is the mean of the lowest ceil(10%) steps, at least one', () => {
    expect(bottomFractionMean([3, 1, 2])).toBe(1); // ceil(0.3) = 1 step
    const twelve = [5, -4, 2, 9, -7, 1, 0, 3, 8, 6, 4, 7]; // ceil(1.2) = 2 lowest: -7, -4
    expect(bottomFractionMean(twelve)).toBe(-5.5);
    const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]; // exactly 1 step, not 2, despite float 0.1*10
    expect(bottomFractionMean(ten)).toBe(1);
  });

  it('returns every aggregate of a trajectory', () => {
    expect(allStepAggregates([1, -3, 2])).toEqual({ mean: 0, sum: 0, min: -3, max: 2, last: 2, bottom10: -3 });
  });

  it('over no scored step every aggregate is null, never 0', () => {
    expect(allStepAggregates([])).toEqual({ mean: null, sum: null, min: null, max: null, last: null, bottom10: null });
    expect(aggregateSteps([], 'bottom10')).toBeNull();
  });

  it('cumulative sums are running totals', () => {
    expect(Array.from(cumulativeSums([1, -3, 2, 0.5]))).toEqual([1, -2, 0, 0.5]);
  });

  it('running sums over scored steps: null until the first scored step, then unscored steps add nothing', () => {
    expect(cumulativeOverScored([null, null, 1, null, -3])).toEqual([null, null, 1, 1, -2]);
    expect(cumulativeOverScored([null, null])).toEqual([null, null]);
  });
});

describe('failure attribution', () => {
  // advantages:   0.2  -0.5  0.1  -1.0  0.4
  // cumulative:   0.2  -0.3 -0.2  -1.2 -0.8   → min at 3
  // differences:  0.2  -0.7  0.6  -1.1  1.4   → min at 3
  const a = [0.2, -0.5, 0.1, -1.0, 0.4];

  it('min_cumulative blames where the running sum is lowest', () => {
    expect(attributeFailure(a, 'min_cumulative')).toBe(3);
    expect(attributeFailure([-1, 2, -0.5], 'min_cumulative')).toBe(0); // cumulative -1, 1, 0.5
  });

  it('sharpest_drop blames the lowest step; sharpest_abs_drop the most negative change', () => {
    expect(attributeFailure(a, 'sharpest_drop')).toBe(3);
    expect(attributeFailure([0.9, 0.1, -0.2], 'sharpest_abs_drop')).toBe(1); // diffs 0.9, -0.8, -0.3
    expect(attributeFailure([0.9, 0.1, -0.2], 'sharpest_drop')).toBe(2);
  });

  it('breaks ties toward the earliest step and returns -1 without steps', () => {
    expect(attributeFailure([-1, 0, -1, 1], 'sharpest_drop')).toBe(0);
    expect(attributeFailure([], 'min_cumulative')).toBe(-1);
  });
});
