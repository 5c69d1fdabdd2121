/**
 * The worker's block store on its own: blocks kept from whole or new-tokens-only presents, and past
 * feeds gathered for rows of different and of identical pasts, against an element-by-element
 * layout written here from the documented shapes ([outer, B, heads, T, inner], right-aligned past).
 */
import { describe, expect, it } from 'vitest';
import type { KvPlan } from '../../src/engine/kv-plan.js';
import { HostBlockStore } from '../../src/engine/kv-store.js';
import type { KvLayout } from '../../src/engine/kv.js';

const BS = 4;
const [OUTER, HEADS, INNER] = [2, 2, 3];
const layout: KvLayout = {
  tensors: [{ past: 'past_0', present: 'present_0', type: 'float32', batchAxis: 1, seqAxis: 3, outer: OUTER, heads: HEADS, inner: INNER }],
  layers: 1,
  bytesPerToken: OUTER * HEADS * INNER * 4,
  rowsAlone: false,
};

/** The value the model would write for sequence `seq`, token `tok`: distinct per element. */
const value = (seq: number, o: number, h: number, tok: number, i: number) => 1 + seq * 1e4 + o * 1e3 + h * 100 + tok + i / 10;

/** A present [OUTER, rows, HEADS, T, INNER] whose index `start + j` holds token `j0 + j` of sequence seqs[b]. */
function present(seqs: number[], T: number, firstToken: number[], start: number[]) {
  const rows = seqs.length;
  const data = new Float32Array(OUTER * rows * HEADS * T * INNER).fill(Number.NaN);
  for (let o = 0; o < OUTER; o++)
    for (let b = 0; b < rows; b++)
      for (let h = 0; h < HEADS; h++)
        for (let x = start[b]; x < T; x++)
          for (let i = 0; i < INNER; i++) data[(((o * rows + b) * HEADS + h) * T + x) * INNER + i] = value(seqs[b], o, h, firstToken[b] + x - start[b], i);
  return { present_0: { data, dims: [OUTER, rows, HEADS, T, INNER] } };
}

const plan = (p: Partial<KvPlan>): KvPlan => ({
  blockTokens: BS,
  batch: { rows: 0, seqLen: 0, ids: new Int32Array(), lengths: new Int32Array(), gatherIndex: new Int32Array(), targets: new Int32Array(), scored: 0 },
  pastLengths: new Int32Array(),
  paddedPast: 0,
  pastBlocks: [],
  transitTokens: Infinity,
  storeRows: [],
  storeBlocks: [],
  storeHashes: [],
  evict: [],
  ...p,
});

const key = (seq: number, k: number) => `s${seq}b${k}`;

describe('HostBlockStore', () => {
  const store = new HostBlockStore(layout, BS);

  it('keeps blocks from whole presents and from presents of the new tokens only', () => {
    // sequence 0: 12 tokens in a run without past (the present holds all of them)
    store.keep(present([0], 12, [0], [0]), Int32Array.of(0), 0, plan({ storeRows: [0, 0, 0], storeBlocks: [0, 1, 2], storeHashes: [key(0, 0), key(0, 1), key(0, 2)] }));
    // sequence 1: 8 tokens, then after a past of its first 8 (padded to 12), 8 new tokens, presents from the past's end on
    store.keep(present([1], 8, [0], [0]), Int32Array.of(0), 0, plan({ storeRows: [0, 0], storeBlocks: [0, 1], storeHashes: [key(1, 0), key(1, 1)] }));
    store.keep(present([1], 8, [8], [0]), Int32Array.of(8), 12, plan({ storeRows: [0, 0], storeBlocks: [2, 3], storeHashes: [key(1, 2), key(1, 3)] }), 12);
    expect(store.size).toBe(7);
    expect(store.bytes).toBe(7 * BS * layout.bytesPerToken);
  });

  it('refuses a block that lies before the presents it was given', () => {
    expect(() => store.keep(present([2], 8, [8], [0]), Int32Array.of(8), 8, plan({ storeRows: [0], storeBlocks: [1], storeHashes: ['x'] }), 8)).toThrow(/before the presents/);
  });

  it('gathers right-aligned pasts, twins included, and zeroes the padding of a reused buffer', () => {
    // rows: sequence 1 (16 tokens), sequence 0 (12), sequence 1 again (its twin), sequence 0's first 4
    const rows = [
      { seq: 1, n: 4 },
      { seq: 0, n: 3 },
      { seq: 1, n: 4 },
      { seq: 0, n: 1 },
    ];
    const P = 16;
    for (let round = 0; round < 2; round++) {
      const order = round === 0 ? rows : [...rows].reverse();
      const p = plan({ pastLengths: Int32Array.from(order.map((r) => r.n * BS)), paddedPast: P, pastBlocks: order.flatMap((r) => Array.from({ length: r.n }, (_, k) => key(r.seq, k))) });
      const feeds = store.gather(p)!;
      const { data, dims } = feeds.past_0;
      expect(dims).toEqual([OUTER, order.length, HEADS, P, INNER]);
      let bad = 0;
      for (let o = 0; o < OUTER; o++)
        for (let b = 0; b < order.length; b++)
          for (let h = 0; h < HEADS; h++)
            for (let x = 0; x < P; x++)
              for (let i = 0; i < INNER; i++) {
                const start = P - order[b].n * BS;
                const want = x < start ? 0 : Math.fround(value(order[b].seq, o, h, x - start, i));
                if (data[(((o * order.length + b) * HEADS + h) * P + x) * INNER + i] !== want) bad++;
              }
      expect(bad).toBe(0);
      store.release(feeds);
    }
  });

  it('answers null when a block is missing', () => {
    expect(store.gather(plan({ pastLengths: Int32Array.of(4), paddedPast: 4, pastBlocks: ['missing'] }))).toBeNull();
  });
});
