/**
 * Reused host buffers for one run's KV tensors (a past feed, or the new tokens' presents): a
 * fresh array per run would be faulted in page by page, which measured as most of what the
 * prefix cache cost a batch (bench/RESULTS.md, prefix). A worker runs one batch at a time, so
 * one spare set is kept; a set is taken for a run and given back once the run's data is copied.
 *
 * A set that is too small is replaced by one with a quarter more room than asked, but never more
 * than the caller's limit (the most a batch may hold), so a growing workload replaces it a few
 * times, not on every larger batch; the replaced set's memory is released at once
 * (buffer-release.ts).
 */
import { releaseBuffer } from './buffer-release.js';
import { newKvArray, type KvArray, type KvElement } from './kv.js';

export interface KvBuffers {
  /** The whole arrays, to give back. */
  buffers: KvArray[];
  /** Views of exactly the requested sizes. */
  views: KvArray[];
}

const HEADROOM = 1.25;

export class KvBufferPool {
  private spare: KvArray[] | null = null;

  /** `limits`: the most each buffer may ever need (the room added never goes past it). */
  take(types: readonly KvElement[], sizes: readonly number[], limits?: readonly number[]): KvBuffers {
    let buffers = this.spare;
    this.spare = null;
    if (buffers === null || !buffers.every((b, i) => b.length >= sizes[i])) {
      for (const b of buffers ?? []) releaseBuffer(b.buffer);
      buffers = types.map((t, i) => newKvArray(t, Math.max(sizes[i], Math.min(Math.ceil(sizes[i] * HEADROOM), limits?.[i] ?? Infinity))));
    }
    return { buffers, views: buffers.map((b, i) => (b.length === sizes[i] ? b : b.subarray(0, sizes[i]))) };
  }

  give(buffers: KvArray[]): void {
    this.spare = buffers;
  }

  clear(): void {
    for (const b of this.spare ?? []) releaseBuffer(b.buffer);
    this.spare = null;
  }
}
