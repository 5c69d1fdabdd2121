/**
 * A bounded cache of piece encodings (the `paper` profile encodes every piece on its own, so a
 * piece's ids depend only on its text and the tokenizer). A conversation that grows by a message
 * per call, sent as `messages`, re-encodes only its new messages; the candidates of one /v1/rank
 * request, or items sharing a prompt, encode the prompt once.
 *
 * Least recently used entries go first once the entries' estimated size passes the budget (UTF-16
 * text + 8 bytes per id + a fixed overhead); one owner per tokenizer, so the key is the text.
 */
export const DEFAULT_PIECE_CACHE_BYTES = 64 * 1024 * 1024;
const ENTRY_OVERHEAD = 96;

export class PieceCache {
  private readonly entries = new Map<string, readonly number[]>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly budgetBytes: number = DEFAULT_PIECE_CACHE_BYTES) {}

  private static cost(text: string, ids: readonly number[]): number {
    return ENTRY_OVERHEAD + 2 * text.length + 8 * ids.length;
  }

  get size(): number {
    return this.entries.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** The cached ids of `text`, or `encode(text)` stored (frozen: callers copy, never change them). */
  get(text: string, encode: (text: string) => number[]): readonly number[] {
    const hit = this.entries.get(text);
    if (hit !== undefined) {
      // Re-insert: a Map iterates in insertion order, so the first key is the least recently used.
      this.entries.delete(text);
      this.entries.set(text, hit);
      this.hits++;
      return hit;
    }
    this.misses++;
    const ids = Object.freeze(encode(text));
    const cost = PieceCache.cost(text, ids);
    if (cost > this.budgetBytes) return ids;
    this.entries.set(text, ids);
    this.bytes += cost;
    for (const [key, value] of this.entries) {
      if (this.bytes <= this.budgetBytes) break;
      this.entries.delete(key);
      this.bytes -= PieceCache.cost(key, value);
    }
    return ids;
  }
}
