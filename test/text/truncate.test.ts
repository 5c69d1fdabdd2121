/**
 * long_context "truncate": the paper's left truncation, with a step that falls off reported as
 * truncated (it then scores null) and a step too long for one pass scored on its last tokens
 * (`partial`). Expected spans are worked out by hand in the comments.
 */
import { describe, expect, it } from 'vitest';
import { truncateLeft } from '../../src/text/truncate.js';

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

describe('truncateLeft', () => {
  it('a step longer than max_length − 1 after a BOS keeps its last L − 2 tokens, partial', () => {
    // L = 6. ids: BOS, context 10..12, step 20..29 (10 tokens). cut = 1 + (14 − 6) = 9: the L
    // tokens kept are [BOS] + ids[9..14) = BOS, 25..29.
    const ids = [1, 10, 11, 12, ...range(20, 30)];
    const seq = truncateLeft({ ids, pinned: 1, spans: [{ index: 0, start: 1, end: 4 }, { index: 1, start: 4, end: 14 }] }, 6);
    expect(seq.ids).toEqual([1, 25, 26, 27, 28, 29]);
    // 25 is the context of 26..29: L − 2 = 4 scored tokens.
    expect(seq.spans[1]).toEqual({ index: 1, start: 2, end: 6, partial: true });
    expect(seq.spans[0]).toEqual({ index: 0, start: 1, end: 1, truncated: true });
    expect(seq.truncatedTokens).toBe(8);
  });

  it('without a BOS it keeps the last L − 1 tokens', () => {
    const ids = [10, 11, ...range(20, 30)];
    const seq = truncateLeft({ ids, pinned: 0, spans: [{ index: 3, start: 2, end: 12 }] }, 6);
    expect(seq.ids).toEqual(range(24, 30));
    expect(seq.spans).toEqual([{ index: 3, start: 1, end: 6, partial: true }]);
  });

  it('a step that would fit in one pass but lost tokens falls off (the paper\'s rule), later ones shift', () => {
    // L = 6, BOS, step A = 10..13 (4 tokens), step B = 20..22 (3 tokens): 8 tokens, cut = 1 + 2 = 3.
    const ids = [1, 10, 11, 12, 13, 20, 21, 22];
    const seq = truncateLeft(
      {
        ids,
        pinned: 1,
        spans: [
          { index: 0, start: 1, end: 5 },
          { index: 1, start: 5, end: 8 },
        ],
      },
      6,
    );
    expect(seq.ids).toEqual([1, 12, 13, 20, 21, 22]);
    expect(seq.spans).toEqual([
      { index: 0, start: 1, end: 1, truncated: true },
      { index: 1, start: 3, end: 6 },
    ]);
  });

  it('a too-long step cut down to its single last token has nothing left to score: truncated', () => {
    // L = 4, no BOS: step 20..29 then step 40..42 (3 tokens). cut = 13 − 4 = 9: kept [29, 40, 41, 42].
    const ids = [...range(20, 30), 40, 41, 42];
    const seq = truncateLeft(
      {
        ids,
        pinned: 0,
        spans: [
          { index: 0, start: 0, end: 10 },
          { index: 1, start: 10, end: 13 },
        ],
      },
      4,
    );
    expect(seq.spans).toEqual([
      { index: 0, start: 1, end: 1, truncated: true },
      { index: 1, start: 1, end: 4 },
    ]);
  });
});
