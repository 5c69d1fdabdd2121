/**
 * Window mode's plan (design §2), checked against the rule as the issue states it, computed here
 * by brute force: windows start at p + w·⌈L/2⌉ (p = the pinned BOS), hold at most L tokens with the
 * BOS leading each, and token t is scored in the first window that contains it with at least
 * ⌊L/2⌋ preceding tokens, or with all of them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeWindows, mergeWindowScores, planWindows, stepContexts } from '../../src/pipeline/windows.js';
import type { Sequence, Span, TokenScores } from '../../src/sequence.js';

/** The rule, by search: the first window start a (a = p, p + S, p + 2S, …) under which t is in the row and sees enough. */
function expectedWindow(t: number, L: number, p: number): { start: number; seen: number } {
  const S = Math.ceil(L / 2);
  for (let w = 0; ; w++) {
    const a = p + w * S;
    // Row: ids[0..p) + ids[a .. a + L − p): t is in it when a ≤ t < a + L − p.
    if (t < a) throw new Error(`token ${t} skipped by every window`);
    if (t >= a + L - p) continue;
    const seen = p + (t - a);
    if (seen >= Math.floor(L / 2) || seen === t) return { start: a, seen };
  }
}

/** Random spans over ids[1..n): sorted, disjoint, non-empty. */
const sequenceArb = fc
  .record({
    L: fc.integer({ min: 2, max: 40 }),
    n: fc.integer({ min: 2, max: 200 }),
    pinned: fc.constantFrom(0, 1),
    cuts: fc.array(fc.integer({ min: 1, max: 199 }), { maxLength: 12 }),
    scoredMask: fc.array(fc.boolean(), { minLength: 13, maxLength: 13 }),
  })
  .map(({ L, n, pinned, cuts, scoredMask }) => {
    const points = [...new Set([1, ...cuts.filter((c) => c < n), n])].sort((a, b) => a - b);
    const spans: Span[] = [];
    for (let i = 0; i + 1 < points.length; i++) if (scoredMask[i]) spans.push({ index: i, start: points[i], end: points[i + 1] });
    if (spans.length === 0) spans.push({ index: 0, start: n - 1, end: n });
    const ids = Array.from({ length: n }, (_, k) => (k === 0 && pinned ? 1 : 1000 + k));
    return { L, seq: { ids, spans, pinned } as Sequence };
  });

/** The full-sequence index of each scored token of each window, in output order. */
function scoredTokens(seq: Sequence, L: number) {
  const out: { t: number; row: number; rowLength: number; seen: number; firstRowId: number }[] = [];
  planWindows(seq, L).forEach(({ row, offset }, r) => {
    const p = row.pinned ?? 0;
    for (const span of row.spans) {
      for (let k = span.start; k < span.end; k++) {
        const t = k + offset - p;
        // The token the row scores there is the sequence's token t.
        expect(row.ids[k]).toBe(seq.ids[t]);
        out.push({ t, row: r, rowLength: row.ids.length, seen: k, firstRowId: row.ids[0] });
      }
    }
  });
  return out;
}

describe('planWindows', () => {
  it('follows the rule: every scored token once, in order, in its first window with ⌊L/2⌋ context or all of it', () => {
    fc.assert(
      fc.property(sequenceArb, ({ L, seq }) => {
        const p = seq.pinned ?? 0;
        const got = scoredTokens(seq, L);
        const want = seq.spans.flatMap((s) => Array.from({ length: s.end - s.start }, (_, i) => s.start + i));
        expect(got.map((g) => g.t)).toEqual(want);
        for (const g of got) {
          expect(g.rowLength).toBeLessThanOrEqual(L);
          if (seq.ids.length > L) {
            const e = expectedWindow(g.t, L, p);
            expect(g.seen).toBe(e.seen);
            if (p) expect(g.firstRowId).toBe(seq.ids[0]); // the BOS leads every window
          } else {
            expect(g.seen).toBe(g.t); // a sequence that fits is one row: everything before is seen
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a sequence that fits is its own single row, unchanged', () => {
    const seq: Sequence = { ids: [1, 5, 6, 7], spans: [{ index: 0, start: 2, end: 4 }], pinned: 1 };
    const plan = planWindows(seq, 4);
    expect(plan).toHaveLength(1);
    expect(plan[0].row).toBe(seq);
  });

  it('worked example: L = 6 with a BOS, one step over tokens 1..13', () => {
    // S = 3, ⌊L/2⌋ = 3. Window 0: ids[0..6) scores t = 1..5. Window 1: [BOS] + ids[4..9) scores
    // t = 6, 7, 8 (seeing 3, 4, 5 tokens); window 2: [BOS] + ids[7..12) scores 9, 10, 11; window 3:
    // [BOS] + ids[10..14) scores 12, 13.
    const ids = [1, ...Array.from({ length: 13 }, (_, k) => 100 + k + 1)];
    const seq: Sequence = { ids, spans: [{ index: 7, start: 1, end: 14 }], pinned: 1 };
    const plan = planWindows(seq, 6);
    expect(plan.map((w) => w.row.ids)).toEqual([
      [1, 101, 102, 103, 104, 105],
      [1, 104, 105, 106, 107, 108],
      [1, 107, 108, 109, 110, 111],
      [1, 110, 111, 112, 113],
    ]);
    expect(plan.map((w) => w.row.spans.map((s) => [s.start, s.end]))).toEqual([[[1, 6]], [[3, 6]], [[3, 6]], [[3, 5]]]);
    expect(plan.map((w) => w.row.spans[0].index)).toEqual([7, 7, 7, 7]);
    expect(stepContexts(seq, 6)).toEqual([{ min_context: 1, context_truncated: true }]);
    // As /v1/tokenize shows them, in the sequence's own positions (the BOS leads each row).
    expect(describeWindows(seq, 6)).toEqual([
      { start: 1, end: 6, scored: [[1, 6]] },
      { start: 4, end: 9, scored: [[6, 9]] },
      { start: 7, end: 12, scored: [[9, 12]] },
      { start: 10, end: 14, scored: [[12, 14]] },
    ]);
  });

  it('a window that scores nothing is not run, and a window ends at its last scored token', () => {
    // L = 8, no BOS: S = 4. Only tokens 17..18 are scored: window 1 + ⌊(17 − 8)/4⌋ = 3, start 12.
    const ids = Array.from({ length: 30 }, (_, k) => k + 50);
    const plan = planWindows({ ids, spans: [{ index: 0, start: 17, end: 19 }] }, 8);
    expect(plan).toHaveLength(1);
    expect(plan[0].row.ids).toEqual(ids.slice(12, 19));
    expect(plan[0].row.spans).toEqual([{ index: 0, start: 5, end: 7 }]);
    expect(stepContexts({ ids, spans: [{ index: 0, start: 17, end: 19 }] }, 8)).toEqual([{ min_context: 5, context_truncated: true }]);
  });
});

describe('stepContexts', () => {
  it('min_context is the least any scored token saw; context_truncated when one saw less than all before it', () => {
    fc.assert(
      fc.property(sequenceArb, ({ L, seq }) => {
        const tokens = scoredTokens(seq, L);
        const contexts = stepContexts(seq, L);
        seq.spans.forEach((span, i) => {
          const mine = tokens.filter((g) => g.t >= span.start && g.t < span.end);
          expect(contexts[i].min_context).toBe(Math.min(...mine.map((g) => g.seen)));
          expect(contexts[i].context_truncated).toBe(mine.some((g) => g.seen < g.t));
        });
      }),
      { numRuns: 300 },
    );
  });

  it('after left truncation every kept step saw less than everything before it; a fallen-off step has none', () => {
    const seq: Sequence = {
      ids: [1, 9, 9, 9],
      spans: [
        { index: 0, start: 1, end: 1, truncated: true },
        { index: 1, start: 2, end: 4 },
      ],
      truncatedTokens: 5,
      pinned: 1,
    };
    expect(stepContexts(seq, 4)).toEqual([
      { min_context: null, context_truncated: false },
      { min_context: 2, context_truncated: true },
    ]);
  });
});

describe('mergeWindowScores', () => {
  it('concatenates the windows\' outputs in window order', () => {
    const part = (xs: number[]): TokenScores => {
      const a = Float64Array.from(xs);
      return { policy: a, reference: a.map((x) => -x), entropy: a, meanLogprob: a, topkMeanLogprob: a };
    };
    const merged = mergeWindowScores([part([1, 2]), part([]), part([3])]);
    expect(Array.from(merged.policy)).toEqual([1, 2, 3]);
    expect(Array.from(merged.reference)).toEqual([-1, -2, -3]);
  });
});
