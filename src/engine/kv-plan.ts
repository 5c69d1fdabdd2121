/**
 * What the main thread's prefix cache (prefix-cache.ts) tells an engine worker to do with its
 * block store (kv-store.ts) for one batch. Plain arrays and strings: structured-cloned to the worker.
 */
import type { EngineBatch } from './batch.js';

export interface KvPlan {
  blockTokens: number;
  /** The batch of each row's tokens after its cached prefix; positions are relative to that prefix. */
  batch: EngineBatch;
  /** Per row: tokens read from the cache (a multiple of blockTokens). */
  pastLengths: Int32Array;
  /** Past length of the feed: every row's past is right-aligned in it, the rest masked. */
  paddedPast: number;
  /** Hashes of the blocks each row reads, rows concatenated in order. */
  pastBlocks: string[];
  /** Blocks to keep from this run's presents: row, absolute block index (token k·blockTokens…), key. */
  storeRows: number[];
  storeBlocks: number[];
  storeHashes: string[];
  /** Blocks the cache evicted: dropped after the run, before the new ones are stored. */
  evict: string[];
  /**
   * The most tokens (rows × length) this batch's past feed may hold, and its kept presents
   * (rows × presentTokens): the memory bound's share for one batch in flight. Buffers are never
   * sized beyond it.
   */
  transitTokens: number;
}

/**
 * New tokens whose presents the run must return (from the past's end on): up to the end of
 * the last block kept, in the batch's padded layout (every row's new tokens start at the padded
 * past). 0 when nothing is kept.
 */
export function presentTokens(plan: Pick<KvPlan, 'blockTokens' | 'pastLengths' | 'storeRows' | 'storeBlocks'>): number {
  let end = 0;
  for (let i = 0; i < plan.storeRows.length; i++) {
    end = Math.max(end, (plan.storeBlocks[i] + 1) * plan.blockTokens - plan.pastLengths[plan.storeRows[i]]);
  }
  return end;
}

/**
 * The part of the store a worker exposes to the run: a device-resident store (ORT tensors on
 * the GPU through IO binding) could implement the same calls; see bench/RESULTS.md (CUDA).
 */
export interface BlockStore {
  /** Past feeds for the plan, or null when a block it reads is missing (the run then recomputes everything). */
  gather(plan: KvPlan): Record<string, { data: ArrayBufferView; dims: number[] }> | null;
  /** Copies the planned blocks out of the run's presents, whose first token sits at `presentStart` of the padded layout. */
  keep(presents: Record<string, { data: ArrayBufferView; dims: readonly number[] }>, pastLengths: Int32Array, paddedPast: number, plan: KvPlan, presentStart?: number): void;
  /** Whether every block of `hashes` is held (what gather needs, without assembling anything). */
  holds(hashes: readonly string[]): boolean;
  /** Hands back the buffers of `gather`'s feeds once the run that read them has finished. */
  release(feeds: Record<string, { data: ArrayBufferView }> | null | undefined): void;
  evict(hashes: readonly string[]): void;
  clear(): void;
  readonly bytes: number;
}
