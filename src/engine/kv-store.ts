/**
 * The worker's host-memory store of KV blocks: for each cached block of `blockTokens` tokens,
 * the slice of every past tensor, laid out [outer, heads, blockTokens, inner]. The main thread's
 * prefix cache decides what is stored and evicted (kv-plan.ts); this only copies.
 *
 * A block's tensors sit in one slot of a slab (an array of several blocks' worth), and an evicted
 * block's slot is reused: a batch that keeps hundreds of blocks allocates a few slabs, not one
 * array per block and tensor (measured: allocation and its garbage were most of what the cache
 * cost a batch that nothing could reuse; bench/RESULTS.md, prefix).
 */
import { elementsPerToken, newKvArray, pastDims, type KvArray, type KvLayout } from './kv.js';
import type { BlockStore, KvPlan } from './kv-plan.js';
import { releaseBuffer } from './buffer-release.js';
import { KvBufferPool } from './kv-pool.js';

/** Bytes of one slab: below glibc's mmap threshold (128 KiB), so slabs come from recycled heap memory instead of fresh pages. */
const SLAB_BYTES = 64 * 2 ** 10;

/**
 * A block: its slot (every tensor's part, at partOffsets), or, for a layout of mixed element
 * types, one array per tensor. One object per block: the garbage collector walks every live one.
 */
type Block = KvArray | KvArray[];

export class HostBlockStore implements BlockStore {
  private readonly blocks = new Map<string, Block>();
  /** Past feeds are assembled in reused buffers; every element of a view is written by gather (blocks, or zeros before a right-aligned past). */
  private readonly feedPool = new KvBufferPool();
  private readonly lent = new WeakMap<object, KvArray[]>();
  private free: KvArray[] = [];
  private slabs: KvArray[] = [];
  private held = 0;
  /** Elements of each tensor's part of a block, and where each part starts in the slot. */
  private readonly partSizes: number[];
  private readonly partOffsets: number[];
  private readonly slotSize: number;
  /** Every tensor of one element type: blocks live in slabs (else one array per tensor). */
  private readonly uniform: boolean;

  constructor(
    private readonly layout: KvLayout,
    readonly blockTokens: number,
  ) {
    this.partSizes = layout.tensors.map((t) => elementsPerToken(t) * blockTokens);
    this.partOffsets = this.partSizes.map((_, i) => this.partSizes.slice(0, i).reduce((a, b) => a + b, 0));
    this.slotSize = this.partSizes.reduce((a, b) => a + b, 0);
    this.uniform = layout.tensors.every((t) => t.type === layout.tensors[0].type);
  }

  /** Tensor `ti`'s part of a block: the array and the index it starts at. */
  private part(block: Block, ti: number): [KvArray, number] {
    return Array.isArray(block) ? [block[ti], 0] : [block, this.partOffsets[ti]];
  }

  private newBlock(): Block {
    if (!this.uniform) {
      // mixed element types (never seen in an export): one array per tensor
      return this.layout.tensors.map((t, i) => newKvArray(t.type, this.partSizes[i]));
    }
    let slot = this.free.pop();
    if (!slot) {
      const type = this.layout.tensors[0].type;
      const bytes = this.slotSize * (type === 'float16' ? 2 : 4);
      const perSlab = Math.max(1, Math.floor(SLAB_BYTES / bytes));
      const slab = newKvArray(type, perSlab * this.slotSize);
      this.slabs.push(slab);
      for (let k = perSlab - 1; k > 0; k--) this.free.push(slab.subarray(k * this.slotSize, (k + 1) * this.slotSize));
      slot = slab.subarray(0, this.slotSize);
    }
    return slot;
  }

  get bytes(): number {
    return this.held;
  }

  get size(): number {
    return this.blocks.size;
  }

  /** Hands back the buffers of a gather's feeds once the run that read them is over. */
  release(feeds: Record<string, { data: ArrayBufferView }> | null | undefined): void {
    const buffers = feeds ? this.lent.get(feeds) : undefined;
    if (!buffers || !feeds) return;
    this.lent.delete(feeds);
    this.feedPool.give(buffers);
  }

  holds(hashes: readonly string[]): boolean {
    return hashes.every((h) => this.blocks.has(h));
  }

  gather(plan: KvPlan): Record<string, { data: KvArray; dims: number[] }> | null {
    const { pastLengths, paddedPast: P, pastBlocks } = plan;
    const bs = this.blockTokens;
    const rows = pastLengths.length;
    const blocks: Block[] = [];
    for (const h of pastBlocks) {
      const b = this.blocks.get(h);
      if (!b) return null;
      blocks.push(b);
    }
    // Rows whose past is the same blocks as an earlier row's (best-of-N candidates over one
    // prompt) copy that row's assembled past in one piece per head instead of block by block.
    const firstBlock: number[] = [];
    const sameAs: number[] = [];
    for (let b = 0, at = 0; b < rows; b++) {
      firstBlock.push(at);
      const n = pastLengths[b] / bs;
      let twin = -1;
      for (let e = 0; e < b && twin < 0; e++) {
        if (sameAs[e] >= 0 || pastLengths[e] !== pastLengths[b]) continue;
        let equal = true;
        for (let k = 0; k < n && equal; k++) equal = pastBlocks[firstBlock[e] + k] === pastBlocks[at + k];
        if (equal) twin = e;
      }
      sameAs.push(twin);
      at += n;
    }
    const feeds: Record<string, { data: KvArray; dims: number[] }> = {};
    const { buffers, views } = this.feedPool.take(
      this.layout.tensors.map((t) => t.type),
      this.layout.tensors.map((t) => elementsPerToken(t) * rows * P),
      this.layout.tensors.map((t) => elementsPerToken(t) * plan.transitTokens),
    );
    this.layout.tensors.forEach((t, ti) => {
      const { outer, heads, inner } = t;
      const data = views[ti];
      for (let b = 0; b < rows; b++) {
        const n = pastLengths[b] / bs;
        const next = firstBlock[b];
        if (sameAs[b] >= 0) {
          for (let o = 0; o < outer; o++) {
            for (let h = 0; h < heads; h++) {
              const from = ((o * rows + sameAs[b]) * heads + h) * P * inner;
              data.copyWithin(((o * rows + b) * heads + h) * P * inner, from, from + P * inner);
            }
          }
          continue;
        }
        const start = P - pastLengths[b]; // right-aligned: masked zeros before it
        if (start > 0) {
          for (let o = 0; o < outer; o++) {
            for (let h = 0; h < heads; h++) {
              const at = ((o * rows + b) * heads + h) * P * inner;
              data.fill(0, at, at + start * inner);
            }
          }
        }
        for (let k = 0; k < n; k++) {
          const [src, base] = this.part(blocks[next + k], ti);
          for (let o = 0; o < outer; o++) {
            for (let h = 0; h < heads; h++) {
              const from = base + (o * heads + h) * bs * inner;
              const to = (((o * rows + b) * heads + h) * P + start + k * bs) * inner;
              data.set(src.subarray(from, from + bs * inner), to);
            }
          }
        }
      }
      feeds[t.past] = { data, dims: pastDims(t, rows, P) };
    });
    this.lent.set(feeds, buffers);
    return feeds;
  }

  keep(presents: Record<string, { data: ArrayBufferView; dims: readonly number[] }>, pastLengths: Int32Array, paddedPast: number, plan: KvPlan, presentStart = 0): void {
    const bs = this.blockTokens;
    const rows = pastLengths.length;
    for (let i = 0; i < plan.storeHashes.length; i++) {
      const hash = plan.storeHashes[i];
      if (this.blocks.has(hash)) continue;
      const b = plan.storeRows[i];
      // index of the block's first token in the present (which starts at presentStart of the padded layout)
      const first = paddedPast - pastLengths[b] + plan.storeBlocks[i] * bs - presentStart;
      if (first < 0) throw new Error(`block ${plan.storeBlocks[i]} of row ${b} lies before the presents returned (they start at ${presentStart})`);
      const block = this.newBlock();
      this.layout.tensors.forEach((t, ti) => {
        const present = presents[t.present];
        const src = present.data as KvArray;
        const T = present.dims[t.seqAxis];
        const { outer, heads, inner } = t;
        const [out, base] = this.part(block, ti);
        for (let o = 0; o < outer; o++) {
          for (let h = 0; h < heads; h++) {
            const from = (((o * rows + b) * heads + h) * T + first) * inner;
            out.set(src.subarray(from, from + bs * inner), base + (o * heads + h) * bs * inner);
          }
        }
      });
      this.blocks.set(hash, block);
      this.held += bs * this.layout.bytesPerToken;
    }
  }

  evict(hashes: readonly string[]): void {
    for (const h of hashes) {
      const block = this.blocks.get(h);
      if (!block) continue;
      this.blocks.delete(h);
      if (!Array.isArray(block)) this.free.push(block);
      this.held -= this.layout.bytesPerToken * this.blockTokens;
    }
  }

  clear(): void {
    this.blocks.clear();
    this.free = [];
    this.feedPool.clear();
    this.held = 0;
    // Up to the cache's whole share, released now rather than at a collection (buffer-release.ts).
    for (const slab of this.slabs) releaseBuffer(slab.buffer);
    this.slabs = [];
  }
}
