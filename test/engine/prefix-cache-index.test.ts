/**
 * The prefix cache's index without ONNX: which prefix a row may read, what a batch keeps and
 * evicts, and which rows of one request wait for another.
 */
import { describe, expect, it } from 'vitest';
import { presentTokens } from '../../src/engine/kv-plan.js';
import { PrefixCache } from '../../src/engine/prefix-cache.js';

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const cache = (blocks: number, sha = 'a'.repeat(64)) => new PrefixCache({ blockTokens: 16, bytesPerToken: 10, capacityBytes: blocks * 160, modelSha256: sha });

describe('PrefixCache', () => {
  it('keys chain the whole prefix and start from the model file', () => {
    const a = cache(10);
    const ids = range(5, 64);
    const [k0, k1] = a.chain(ids, 2);
    expect(a.chain([...ids.slice(0, 32), 999], 2)).toEqual([k0, k1]);
    expect(a.chain([7, ...ids.slice(1)], 2)[1]).not.toBe(k1); // a change in block 0 changes block 1's key
    expect(cache(10, 'b'.repeat(64)).chain(ids, 2)).not.toEqual([k0, k1]);
  });

  it('a row reads at most the blocks that end at or before its first scored position', () => {
    const c = cache(100);
    const ids = range(5, 80);
    c.plan([{ ids, positions: [79 - 1] }]); // keeps blocks 0–4 (80 tokens)
    expect(c.blocks).toBe(5);
    // first scored position 20: only block 0 (tokens 0–15) may be read; positions relative to it
    const plan = c.plan([{ ids, positions: [20, 21] }]);
    expect(Array.from(plan.pastLengths)).toEqual([16]);
    expect(Array.from(plan.batch.targets.slice(0, 2))).toEqual([ids[21], ids[22]]);
    expect(plan.batch.lengths[0]).toBe(64);
    // first scored position 64 (a block boundary): all four blocks before it
    expect(Array.from(c.plan([{ ids, positions: [64] }]).pastLengths)).toEqual([64]);
    expect(c.counters.hitTokens).toBe(80);
  });

  it('stays within its bound, evicts the least recently used, and never what the batch reads', () => {
    const c = cache(3);
    const a = range(100, 48);
    c.plan([{ ids: a, positions: [47 - 1] }]); // 3 blocks of a
    expect(c.blocks).toBe(3);
    const b = range(300, 48);
    // reads a's first two blocks and wants b's three: only a's third may go, so b keeps one block
    const plan = c.plan([{ ids: a, positions: [40] }, { ids: b, positions: [46] }]);
    expect(Array.from(plan.pastLengths)).toEqual([32, 0]);
    expect(plan.evict).toHaveLength(1);
    expect(plan.storeHashes).toHaveLength(1);
    expect(c.blocks).toBeLessThanOrEqual(3);
    expect(c.bytes).toBeLessThanOrEqual(3 * 160);
    expect(c.counters.evictions).toBe(1);
  });

  it('rows of one request that share most of their prefix with an earlier row wait for it', () => {
    const c = cache(100);
    const prompt = range(10, 100);
    const rows = range(0, 8).map((i) => ({ ids: [...prompt, ...range(500 + 10 * i, 10)], positions: range(99, 10) }));
    const unrelated = { ids: range(2000, 50), positions: [40] };
    expect(c.waves([...rows, unrelated])).toEqual([0, 1, 1, 1, 1, 1, 1, 1, 0]);
    // once the prompt is cached, nobody waits
    c.plan([rows[0]]);
    expect(c.waves(rows)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('one batch reads and keeps at most transitTokens: rows × past, rows × presents up to the last kept block', () => {
    const c = new PrefixCache({ blockTokens: 16, bytesPerToken: 10, capacityBytes: 100 * 160, modelSha256: 'a'.repeat(64), transitTokens: 40 });
    const ids = range(5, 100);
    // one row of 100 tokens: it keeps blocks up to 40 new tokens, i.e. blocks 0 and 1 (tokens 0–31)
    let plan = c.plan([{ ids, positions: [98] }]);
    expect(plan.storeBlocks).toEqual([0, 1]);
    expect(presentTokens(plan)).toBe(32);
    expect(plan.transitTokens).toBe(40);
    // again: it reads those 2 blocks (32 ≤ 40 tokens) and keeps blocks 2 and 3 (new tokens 0–31 after its past)
    plan = c.plan([{ ids, positions: [98] }]);
    expect(Array.from(plan.pastLengths)).toEqual([32]);
    expect(plan.storeBlocks).toEqual([2, 3]);
    expect(presentTokens(plan)).toBe(32);
    // with 4 blocks cached it still reads only 2 (40 tokens hold 2.5 blocks)
    plan = c.plan([{ ids, positions: [98] }]);
    expect(Array.from(plan.pastLengths)).toEqual([32]);
    expect(plan.storeBlocks).toEqual([]);
    expect(presentTokens(plan)).toBe(0);
    // two rows: each keeps new tokens up to 40 / 2 = 20, one block each
    const other = range(500, 60);
    const more = range(900, 60);
    plan = c.plan([{ ids: other, positions: [50] }, { ids: more, positions: [50] }]);
    expect(plan.storeRows).toEqual([0, 1]);
    expect(plan.storeBlocks).toEqual([0, 0]);
    expect(presentTokens(plan) * 2).toBeLessThanOrEqual(40);
  });
});
