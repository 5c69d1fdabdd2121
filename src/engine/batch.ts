/**
 * The tensor-shaped batch that crosses from the batcher to the engine workers, and what comes
 * back. Plain typed arrays only: they are structured-cloned (or transferred) between threads.
 */
export interface EngineBatch {
  rows: number;
  /** Padded sequence length S (a bucket ≥ the longest row). */
  seqLen: number;
  /** Row-major [rows, seqLen] token ids, right-padded. */
  ids: Int32Array;
  /** Real length of each row; positions ≥ length are padding (mask 0). */
  lengths: Int32Array;
  /** Flat index b·S + t of each scored position t (its log-prob is of ids[b, t + 1]). */
  gatherIndex: Int32Array;
  /** The token scored at each gathered position. */
  targets: Int32Array;
  /**
   * Real scored positions: gatherIndex and targets are padded past this to a bucket size, so
   * the head's [scored, vocab] intermediates take few distinct shapes and ORT's arena reuses
   * its blocks instead of growing with every new count. Outputs past it are discarded.
   */
  scored: number;
}

export interface HeadOutputs {
  logprob: Float32Array;
  entropy?: Float32Array;
  meanLogprob?: Float32Array;
  topkMean?: Float32Array;
  /** Top-K head variant (topk-head.ts): [scored, K] row-major log-probs, descending, and their ids. */
  topkValues?: Float32Array;
  topkIndices?: Float32Array;
}

/** One row of a batch, before padding: the ids and which next-token positions to score. */
export interface BatchRow {
  ids: readonly number[];
  /** Positions t (0-based) whose next token ids[t + 1] is scored, in output order. */
  positions: readonly number[];
}

/**
 * Smallest padded length ≥ n from a geometric ladder with four steps per doubling (16, 20, 24,
 * 28, 32, 40, …): at most 25% padding, and few distinct shapes so ORT's arena stops growing.
 */
export function bucketLength(n: number, minBucket = 16): number {
  if (n <= minBucket) return minBucket;
  const octave = 2 ** Math.floor(Math.log2(n));
  const step = Math.max(1, octave / 4);
  return Math.ceil(n / step) * step;
}

export function packBatch(rows: readonly BatchRow[], padId = 0): EngineBatch {
  const longest = rows.reduce((m, r) => Math.max(m, r.ids.length), 0);
  const seqLen = bucketLength(longest);
  const ids = new Int32Array(rows.length * seqLen).fill(padId);
  const lengths = new Int32Array(rows.length);
  const scored = rows.reduce((n, r) => n + r.positions.length, 0);
  // Padding entries gather position 0 of row 0 for token 0: valid, cheap, and thrown away.
  const gathered = scored === 0 ? 0 : bucketLength(scored, 8);
  const gatherIndex = new Int32Array(gathered);
  const targets = new Int32Array(gathered);
  let k = 0;
  rows.forEach((row, b) => {
    ids.set(row.ids, b * seqLen);
    lengths[b] = row.ids.length;
    for (const t of row.positions) {
      gatherIndex[k] = b * seqLen + t;
      targets[k] = row.ids[t + 1];
      k++;
    }
  });
  return { rows: rows.length, seqLen, ids, lengths, gatherIndex, targets, scored };
}
