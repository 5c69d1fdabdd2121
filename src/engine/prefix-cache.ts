/**
 * The prefix cache of one scorer's model role (design §3), as the main thread sees it: which
 * KV blocks the role's worker holds, in LRU order, bounded in bytes. The tensors themselves stay
 * in the worker (kv-store.ts); each batch carries a plan (kv-plan.ts) saying which blocks it
 * reads, which it keeps and which are evicted. Nothing above engine/ knows about it.
 *
 * - A block is `blockTokens` token ids; its key chains the previous block's key, so a key names
 *   the whole prefix up to and including the block (as vLLM hashes blocks). The chain starts
 *   from the model file's sha256: no key of one model file can match another's.
 * - A row reuses its longest cached prefix that ends at or before its first scored position
 *   (the head must see every scored position) and before its last token (one token at least runs).
 * - A row keeps its full blocks that are not cached yet, in every batch: the next call of an
 *   agent loop extends this one. Eviction takes the least recently used blocks, a chain's tail
 *   first (a row touches its blocks last-to-first), and never a block the same batch reads or keeps.
 * - The memory bound limits one batch in flight too (`transitTokens`): a row reads at most that
 *   many cached tokens, and a batch keeps blocks only up to rows × that many new tokens (a long
 *   prompt is then cached over several calls).
 */
import crypto from 'node:crypto';
import { packBatch, type BatchRow } from './batch.js';
import type { KvPlan } from './kv-plan.js';

export interface PrefixCacheOptions {
  blockTokens: number;
  bytesPerToken: number;
  capacityBytes: number;
  /** The model file's sha256: the first link of every chain. */
  modelSha256: string;
  /**
   * Tokens one batch may read from the cache (rows × past) and keep (rows × the new tokens up
   * to its last kept block): its past feed and its presents are copies of that many tokens' KV,
   * which the memory bound counts. Default: no limit.
   */
  transitTokens?: number;
}

export interface PrefixCacheCounters {
  hitTokens: number;
  missTokens: number;
  evictions: number;
}

/** Rows that reuse less than this fraction of their tokens from a sibling do not wait for it. */
const MIN_SHARED_FRACTION = 0.5;

export class PrefixCache {
  readonly blockTokens: number;
  readonly blockBytes: number;
  readonly capacityBlocks: number;
  readonly transitTokens: number;
  /** Block key → true, least recently used first. */
  private readonly lru = new Map<string, true>();
  private readonly chains = new WeakMap<readonly number[], string[]>();
  readonly counters: PrefixCacheCounters = { hitTokens: 0, missTokens: 0, evictions: 0 };

  constructor(private readonly options: PrefixCacheOptions) {
    this.blockTokens = options.blockTokens;
    this.blockBytes = options.blockTokens * options.bytesPerToken;
    this.capacityBlocks = Math.floor(options.capacityBytes / this.blockBytes);
    this.transitTokens = options.transitTokens ?? Infinity;
  }

  /** Blocks one row may read: a longer cached prefix is read only this far (the rest runs again). */
  private get maxPastBlocks(): number {
    return Math.floor(this.transitTokens / this.blockTokens);
  }

  get bytes(): number {
    return this.lru.size * this.blockBytes;
  }

  get blocks(): number {
    return this.lru.size;
  }

  /** Forgets every block (the worker that held them died, or a batch of it failed). */
  clear(): void {
    this.lru.clear();
  }

  /** Keys of the first `n` full blocks of `ids` (memoised per ids array). */
  chain(ids: readonly number[], n: number): string[] {
    let keys = this.chains.get(ids);
    if (!keys) {
      keys = [];
      this.chains.set(ids, keys);
    }
    const bs = this.blockTokens;
    while (keys.length < n) {
      const k = keys.length;
      const hash = crypto.createHash('sha256');
      hash.update(k === 0 ? this.options.modelSha256 : keys[k - 1]);
      hash.update(new Uint8Array(Int32Array.from(ids.slice(k * bs, (k + 1) * bs)).buffer));
      keys.push(hash.digest('base64'));
    }
    return keys.length === n ? keys : keys.slice(0, n);
  }

  /** Blocks a row may read: they end at or before its first scored position and before its last token, within the transit limit. */
  private reusableBlocks(row: BatchRow): number {
    let first = row.ids.length - 1;
    for (const t of row.positions) if (t < first) first = t;
    return Math.min(Math.floor(Math.max(0, first) / this.blockTokens), this.maxPastBlocks);
  }

  private fullBlocks(row: BatchRow): number {
    return Math.floor(row.ids.length / this.blockTokens);
  }

  /** Leading blocks of the row's reusable prefix that are cached now (no LRU update). */
  cachedTokens(row: BatchRow): number {
    const n = this.reusableBlocks(row);
    if (n === 0 || this.lru.size === 0) return 0;
    const keys = this.chain(row.ids, n);
    let k = 0;
    while (k < n && this.lru.has(keys[k])) k++;
    return k * this.blockTokens;
  }

  private touch(key: string): void {
    this.lru.delete(key);
    this.lru.set(key, true);
  }

  /**
   * Within one request: the wave of each row. A row whose reusable prefix is mostly blocks that
   * an earlier row of the same request computes (and not cached yet) runs in a later wave than
   * that row, so it reads them instead of computing them again (rank candidates, items with one
   * prompt, the parts of a split row).
   */
  waves(rows: readonly BatchRow[]): number[] {
    const owner = new Map<string, number>();
    const waveOf: number[] = [];
    rows.forEach((row, r) => {
      const full = this.fullBlocks(row);
      const reusable = Math.min(this.reusableBlocks(row), full);
      const keys = this.chain(row.ids, full);
      let shared = 0;
      let wave = 0;
      while (shared < reusable && owner.has(keys[shared])) {
        wave = Math.max(wave, waveOf[owner.get(keys[shared])!] + 1);
        shared++;
      }
      const cached = this.cachedTokens(row) / this.blockTokens;
      if (shared <= cached || shared * this.blockTokens < MIN_SHARED_FRACTION * row.ids.length) wave = 0;
      waveOf.push(wave);
      for (let k = 0; k < full; k++) if (!owner.has(keys[k])) owner.set(keys[k], r);
    });
    return waveOf;
  }

  /** Plans one batch: what each row reads, what is kept and what is evicted; updates the LRU order. */
  plan(rows: readonly BatchRow[]): KvPlan {
    const bs = this.blockTokens;
    const pinned = new Set<string>();
    const pastLengths = new Int32Array(rows.length);
    const pastBlocks: string[] = [];
    const keysOf = rows.map((row) => this.chain(row.ids, this.fullBlocks(row)));
    rows.forEach((row, b) => {
      const keys = keysOf[b];
      const reusable = Math.min(this.reusableBlocks(row), keys.length);
      let hit = 0;
      while (hit < reusable && this.lru.has(keys[hit])) hit++;
      pastLengths[b] = hit * bs;
      for (let k = 0; k < hit; k++) {
        pinned.add(keys[k]);
        pastBlocks.push(keys[k]);
      }
      this.counters.hitTokens += hit * bs;
      this.counters.missTokens += row.ids.length - hit * bs;
    });
    const storeRows: number[] = [];
    const storeBlocks: number[] = [];
    const storeHashes: string[] = [];
    const evict: string[] = [];
    let full = this.capacityBlocks === 0;
    // The presents returned cover every row up to the last kept block's end (kv-plan.ts,
    // presentTokens): rows × that many tokens at most.
    const maxExtent = Math.floor(this.transitTokens / rows.length);
    rows.forEach((_, b) => {
      const keys = keysOf[b];
      for (let k = pastLengths[b] / bs; k < keys.length && !full; k++) {
        if ((k + 1) * bs - pastLengths[b] > maxExtent) break;
        const key = keys[k];
        if (this.lru.has(key)) continue;
        while (this.lru.size >= this.capacityBlocks) {
          const victim = this.oldestUnpinned(pinned);
          if (victim === undefined) break;
          this.lru.delete(victim);
          evict.push(victim);
          this.counters.evictions++;
        }
        if (this.lru.size >= this.capacityBlocks) {
          full = true;
          break;
        }
        this.lru.set(key, true);
        pinned.add(key);
        storeRows.push(b);
        storeBlocks.push(k);
        storeHashes.push(key);
      }
      // Last to first: the chain's head becomes the most recent, so eviction eats tails first.
      for (let k = keys.length - 1; k >= 0; k--) if (this.lru.has(keys[k])) this.touch(keys[k]);
    });
    const maxPast = pastLengths.reduce((m, p) => Math.max(m, p), 0);
    const batch = packBatch(
      rows.map((row, b) => {
        const p = pastLengths[b];
        return p === 0 ? row : { ids: row.ids.slice(p), positions: row.positions.map((t) => t - p) };
      }),
    );
    return {
      blockTokens: bs,
      batch,
      pastLengths,
      // Exact, not bucketed: a past is already a whole number of blocks (few shapes), and padding
      // it would only add attention over masked keys (bench/RESULTS.md, prefix).
      paddedPast: maxPast,
      pastBlocks,
      storeRows,
      storeBlocks,
      storeHashes,
      evict,
      transitTokens: this.transitTokens,
    };
  }

  private oldestUnpinned(pinned: ReadonlySet<string>): string | undefined {
    for (const key of this.lru.keys()) if (!pinned.has(key)) return key;
    return undefined;
  }
}
