/**
 * Drives ScorerEngine's two workers directly, without HTTP or the batcher: the engine's ceiling
 * for the same batches the service forms (bench/limit.ts) and the engine levers (bench/levers.ts).
 */
import { bucketLength, packBatch, type BatchRow, type EngineBatch } from '../../src/engine/batch.js';
import type { BatcherOptions } from '../../src/engine/batcher.js';
import { ScorerEngine, sequenceRow } from '../../src/engine/scorer.js';
import { defaultConfig } from '../../src/config.js';
import { BENCH_MAX_BATCH_TOKENS, type Item, type Pair } from './common.js';
import { resolveModelDir } from '../../src/engine/model-dir.js';

export function serviceBatching(overrides: Partial<BatcherOptions> = {}): BatcherOptions {
  const c = defaultConfig();
  return {
    maxBatchRows: c.max_batch_rows,
    maxQueue: c.max_queue,
    maxWaitMs: c.max_wait_ms,
    maxInflight: c.max_inflight_batches,
    maxBatchTokens: BENCH_MAX_BATCH_TOKENS,
    ...overrides,
  };
}

export async function startEngine(pair: Pair, device: string, threads: number, batching: BatcherOptions): Promise<ScorerEngine> {
  return ScorerEngine.start({
    name: pair.name,
    policyOnnx: resolveModelDir(pair.policy).onnxFile,
    referenceOnnx: resolveModelDir(pair.reference).onnxFile,
    device,
    threads,
    batching,
  });
}

/** The row /v1/score compiles from prompt_ids + step_ids (no BOS: ids bypass the tokenizer). */
export function itemRow(item: Item): BatchRow {
  const ids = [...item.promptIds, ...item.stepIds];
  return sequenceRow({ ids, spans: [{ index: 0, start: item.promptIds.length, end: ids.length }] });
}

/** Padded length of a batch whose longest row has n tokens. */
export type Bucketing = (n: number) => number;
export const ladderBuckets: Bucketing = (n) => bucketLength(n);
export const exactBuckets: Bucketing = (n) => n;
export const powerOfTwoBuckets: Bucketing = (n) => 2 ** Math.ceil(Math.log2(Math.max(n, 16)));

/**
 * Splits rows into batches by the batcher's rule (FIFO; grow while rows × padded length ≤
 * maxBatchTokens and rows ≤ maxBatchRows), packed with the given bucketing.
 */
export function formBatches(rows: readonly BatchRow[], batching: BatcherOptions, bucketing: Bucketing = ladderBuckets): EngineBatch[] {
  const batches: EngineBatch[] = [];
  let taken: BatchRow[] = [];
  let longest = 0;
  const flush = () => {
    if (taken.length === 0) return;
    batches.push(bucketing === ladderBuckets ? packBatch(taken) : packWith(taken, bucketing(longest)));
    taken = [];
    longest = 0;
  };
  for (const row of rows) {
    const len = Math.max(longest, row.ids.length);
    if (taken.length > 0 && (taken.length >= batching.maxBatchRows || (taken.length + 1) * bucketing(len) > batching.maxBatchTokens)) flush();
    taken.push(row);
    longest = Math.max(longest, row.ids.length);
  }
  flush();
  return batches;
}

/** packBatch with an explicit padded length (the bucketing lever). */
function packWith(rows: readonly BatchRow[], seqLen: number): EngineBatch {
  const packed = packBatch(rows);
  if (packed.seqLen === seqLen) return packed;
  const ids = new Int32Array(rows.length * seqLen);
  const gatherIndex = new Int32Array(packed.gatherIndex.length);
  rows.forEach((row, b) => ids.set(row.ids, b * seqLen));
  for (let k = 0; k < gatherIndex.length; k++) {
    const b = Math.floor(packed.gatherIndex[k] / packed.seqLen);
    gatherIndex[k] = b * seqLen + (packed.gatherIndex[k] % packed.seqLen);
  }
  return { ...packed, seqLen, ids, gatherIndex };
}

export type Schedule = 'parallel' | 'sequential';

/**
 * One forward of both models. `parallel`: policy and reference at once in their two workers
 * (the engine's design). `sequential`: one after the other, which is what a single worker
 * holding both sessions would do.
 */
export async function forwardBoth(engine: ScorerEngine, batch: EngineBatch, schedule: Schedule = 'parallel'): Promise<void> {
  if (schedule === 'parallel') await Promise.all([engine.policy.run(batch), engine.reference.run(batch)]);
  else {
    await engine.policy.run(batch);
    await engine.reference.run(batch);
  }
}

/** Runs batches with up to `inflight` queued in the workers (the batcher's max_inflight); seconds. */
export async function runBatches(engine: ScorerEngine, batches: readonly EngineBatch[], inflight: number, schedule: Schedule = 'parallel'): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < batches.length) await forwardBoth(engine, batches[next++], schedule);
  };
  await Promise.all(Array.from({ length: Math.min(inflight, batches.length) }, lane));
  return (performance.now() - t0) / 1000;
}

/** Seconds of one item alone (a one-row batch through both workers), per item. */
export async function singleItemSeconds(engine: ScorerEngine, items: readonly Item[], schedule: Schedule = 'parallel'): Promise<number[]> {
  const seconds: number[] = [];
  for (const item of items) {
    const batch = packBatch([itemRow(item)]);
    const t0 = performance.now();
    await forwardBoth(engine, batch, schedule);
    seconds.push((performance.now() - t0) / 1000);
  }
  return seconds;
}
