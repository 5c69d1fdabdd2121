/**
 * The worker's host-memory store of KV blocks: for each cached block of `blockTokens` tokens,
 * the slice of every past tensor, laid out [outer, heads, blockTokens, inner]. The main thread's
 * prefix cache decides what is stored and evicted (kv-plan.ts); this only copies.
 */
import { newKvArray, pastDims, type KvArray, type KvLayout } from './kv.js';
import type { BlockStore, KvPlan } from './kv-plan.js';

export class HostBlockStore implements BlockStore {
  private readonly blocks = new Map<string, KvArray[]>();
  private held = 0;

  constructor(
    private readonly layout: KvLayout,
    readonly blockTokens: number,
  ) {}

  get bytes(): number {
    return this.held;
  }

  get size(): number {
    return this.blocks.size;
  }

  gather(plan: KvPlan): Record<string, { data: KvArray; dims: number[] }> | null {
    const { pastLengths, paddedPast: P, pastBlocks } = plan;
    const bs = this.blockTokens;
    const rows = pastLengths.length;
    const blocks: KvArray[][] = [];
    for (const h of pastBlocks) {
      const b = this.blocks.get(h);
      if (!b) return null;
      blocks.push(b);
    }
    const feeds: Record<string, { data: KvArray; dims: number[] }> = {};
    this.layout.tensors.forEach((t, ti) => {
      const { outer, heads, inner } = t;
      const data = newKvArray(t.type, outer * rows * heads * P * inner);
      let next = 0;
      for (let b = 0; b < rows; b++) {
        const n = pastLengths[b] / bs;
        const start = P - pastLengths[b]; // right-aligned: masked zeros before it
        for (let k = 0; k < n; k++) {
          const src = blocks[next + k][ti];
          for (let o = 0; o < outer; o++) {
            for (let h = 0; h < heads; h++) {
              const from = (o * heads + h) * bs * inner;
              const to = (((o * rows + b) * heads + h) * P + start + k * bs) * inner;
              data.set(src.subarray(from, from + bs * inner), to);
            }
          }
        }
        next += n;
      }
      feeds[t.past] = { data, dims: pastDims(t, rows, P) };
    });
    return feeds;
  }

  keep(presents: Record<string, { data: ArrayBufferView; dims: readonly number[] }>, pastLengths: Int32Array, paddedPast: number, plan: KvPlan): void {
    const bs = this.blockTokens;
    const rows = pastLengths.length;
    for (let i = 0; i < plan.storeHashes.length; i++) {
      const hash = plan.storeHashes[i];
      if (this.blocks.has(hash)) continue;
      const b = plan.storeRows[i];
      const first = paddedPast - pastLengths[b] + plan.storeBlocks[i] * bs; // index of the block's first token in the present
      const block = this.layout.tensors.map((t) => {
        const present = presents[t.present];
        const src = present.data as KvArray;
        const T = present.dims[t.seqAxis];
        const { outer, heads, inner } = t;
        const out = newKvArray(t.type, outer * heads * bs * inner);
        for (let o = 0; o < outer; o++) {
          for (let h = 0; h < heads; h++) {
            const from = (((o * rows + b) * heads + h) * T + first) * inner;
            out.set(src.subarray(from, from + bs * inner), (o * heads + h) * bs * inner);
          }
        }
        return out;
      });
      this.blocks.set(hash, block);
      this.held += bs * this.layout.bytesPerToken;
    }
  }

  evict(hashes: readonly string[]): void {
    for (const h of hashes) {
      if (this.blocks.delete(h)) this.held -= this.layout.bytesPerToken * this.blockTokens;
    }
  }

  clear(): void {
    this.blocks.clear();
    this.held = 0;
  }
}
