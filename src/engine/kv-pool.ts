/**
 * Reused host buffers for one run's KV tensors (a past feed, or the new tokens' presents): a
 * fresh array per run would be faulted in page by page, which measured as most of what the
 * prefix cache cost a batch (bench/RESULTS.md, prefix). A worker runs one batch at a time, so
 * one spare set is kept; a set is taken for a run and given back once the run's data is copied.
 */
import { newKvArray, type KvArray, type KvElement } from './kv.js';

export interface KvBuffers {
  /** The whole arrays, to give back. */
  buffers: KvArray[];
  /** Views of exactly the requested sizes. */
  views: KvArray[];
}

export class KvBufferPool {
  private spare: KvArray[] | null = null;

  take(types: readonly KvElement[], sizes: readonly number[]): KvBuffers {
    const fits = this.spare !== null && this.spare.every((b, i) => b.length >= sizes[i]);
    const buffers = fits ? this.spare! : types.map((t, i) => newKvArray(t, sizes[i]));
    if (fits) this.spare = null;
    return { buffers, views: buffers.map((b, i) => (b.length === sizes[i] ? b : b.subarray(0, sizes[i]))) };
  }

  give(buffers: KvArray[]): void {
    this.spare = buffers;
  }

  clear(): void {
    this.spare = null;
  }
}
