/**
 * Engine worker thread: owns one ScoringSession (design §3: `session.run()` is synchronous on
 * the calling thread, so sessions never live on the HTTP thread). Protocol:
 *   parent → worker  { type: 'run', id, batch }
 *   worker → parent  { type: 'ready', info } | { type: 'fatal', message }
 *                    { type: 'result', id, outputs } | { type: 'error', id, message }
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { EngineBatch, HeadOutputs } from './batch.js';
import { collectGarbage } from './collect-garbage.js';
import { presentTokens, type KvPlan } from './kv-plan.js';
import { HostBlockStore } from './kv-store.js';
import { ScoringSession, probeBatch, type SessionSpec } from './session.js';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.js';

const port = parentPort!;
const spec = workerData as SessionSpec;

function transferList(outputs: HeadOutputs): ArrayBuffer[] {
  return Object.values(outputs)
    .filter((a): a is Float32Array => a instanceof Float32Array)
    .map((a) => a.buffer as ArrayBuffer);
}

/** Row b of a packed batch alone, unpadded, with its gathered positions. */
function rowOf(batch: EngineBatch, b: number): EngineBatch {
  const n = batch.lengths[b];
  const S = batch.seqLen;
  const picked: number[] = [];
  for (let k = 0; k < batch.scored; k++) if (Math.floor(batch.gatherIndex[k] / S) === b) picked.push(k);
  return {
    rows: 1,
    seqLen: n,
    ids: batch.ids.slice(b * S, b * S + n),
    lengths: Int32Array.of(n),
    // A row with nothing scored still runs (its blocks are kept): one thrown-away gather, as packBatch pads.
    gatherIndex: picked.length ? Int32Array.from(picked, (k) => batch.gatherIndex[k] - b * S) : Int32Array.of(0),
    targets: picked.length ? Int32Array.from(picked, (k) => batch.targets[k]) : Int32Array.of(0),
    scored: picked.length,
  };
}

/** The outputs of one-row runs, in the batch's gathered order (rows are gathered in row order). */
function joinRows(batch: EngineBatch, parts: HeadOutputs[], scored: number[]): HeadOutputs {
  const join = (key: keyof HeadOutputs) => {
    if (parts.some((p) => !p[key])) return undefined;
    const out = new Float32Array(batch.gatherIndex.length);
    let offset = 0;
    for (const [i, p] of parts.entries()) {
      const n = scored[i];
      out.set(p[key]!.subarray(0, n), offset);
      offset += n;
    }
    return out;
  };
  return { logprob: join('logprob')!, entropy: join('entropy'), meanLogprob: join('meanLogprob'), topkMean: join('topkMean') };
}

async function main(): Promise<void> {
  let session: ScoringSession;
  try {
    session = await ScoringSession.load(spec);
    await session.run(probeBatch); // warm-up: first-run allocations happen before /ready
    // Loading leaves the decoded model's JS garbage behind (about the model's size), and an idle
    // worker allocates too little to trigger a collection: without one, it stays resident while
    // the next session loads and sets the process's high-water mark.
    collectGarbage();
  } catch (err) {
    port.postMessage({ type: 'fatal', message: (err as Error).message } satisfies WorkerResponse);
    return;
  }
  const kv = session.info.kv;
  // The cache's blocks live here, next to the session; a worker that dies takes them with it.
  const store = kv && spec.blockTokens ? new HostBlockStore(kv, spec.blockTokens) : null;
  let epoch = 0;
  const run = async (msg: Extract<WorkerRequest, { type: 'run' }>) => {
    const plan = msg.kv;
    const planned = epoch;
    if (!plan || !store) return { outputs: (await session.run(msg.batch, { stats: msg.stats })).outputs, recomputed: false };
    const bufferTokens = plan.transitTokens;
    if (kv!.rowsAlone && plan.paddedPast > 0 && store.holds(plan.pastBlocks)) {
      // GroupQueryAttention: one row per run, its past exactly its own (nothing to pad or mask).
      const outputs = await runRowsAlone(plan, msg.stats);
      if (outputs) {
        store.evict(plan.evict);
        return { outputs, recomputed: false };
      }
      // The store was cleared between two of its rows: the whole rows run again, below.
    }
    // null when a block is missing (also after a clear between a rows-alone batch's rows): the whole rows run again
    const tensors = plan.paddedPast > 0 ? store.gather(plan) : {};
    let result;
    let pastLengths = plan.pastLengths;
    let padded = plan.paddedPast;
    if (tensors) {
      const past = padded > 0 ? { lengths: pastLengths, padded, tensors } : undefined;
      try {
        result = await session.run(plan.batch, { stats: msg.stats, past, presentTokens: presentTokens(plan), bufferTokens });
      } finally {
        if (past) store.release(tensors);
      }
    } else {
      pastLengths = new Int32Array(pastLengths.length);
      padded = 0;
      result = await session.run(msg.batch, { stats: msg.stats, presentTokens: presentTokens({ ...plan, pastLengths }), bufferTokens });
    }
    store.evict(plan.evict);
    if (result.presents && epoch === planned) store.keep(result.presents, pastLengths, padded, plan, result.presentStart);
    result.releasePresents?.();
    return { outputs: result.outputs, recomputed: !tensors };
  };
  /** The rows one by one over their own pasts; null when a row's blocks went missing on the way (the store was cleared). */
  const runRowsAlone = async (plan: KvPlan, stats: boolean): Promise<HeadOutputs | null> => {
    const planned = epoch;
    const parts: HeadOutputs[] = [];
    const scored: number[] = [];
    const { batch } = plan;
    let block = 0;
    for (let b = 0; b < batch.rows; b++) {
      const p = plan.pastLengths[b];
      const n = p / plan.blockTokens;
      const stores = plan.storeRows.flatMap((r, i) => (r === b ? [i] : []));
      const rowPlan: KvPlan = {
        ...plan,
        batch: rowOf(batch, b),
        pastLengths: Int32Array.of(p),
        paddedPast: p,
        pastBlocks: plan.pastBlocks.slice(block, block + n),
        storeRows: stores.map(() => 0),
        storeBlocks: stores.map((i) => plan.storeBlocks[i]),
        storeHashes: stores.map((i) => plan.storeHashes[i]),
        evict: [],
      };
      block += n;
      const tensors = p > 0 ? store!.gather(rowPlan) : undefined;
      if (tensors === null || epoch !== planned) return null;
      const past = tensors ? { lengths: rowPlan.pastLengths, padded: p, tensors } : undefined;
      let result;
      try {
        result = await session.run(rowPlan.batch, { stats, past, presentTokens: presentTokens(rowPlan), bufferTokens: plan.transitTokens });
      } finally {
        store!.release(tensors);
      }
      if (result.presents && epoch === planned) store!.keep(result.presents, rowPlan.pastLengths, p, rowPlan, result.presentStart);
      result.releasePresents?.();
      parts.push(result.outputs);
      scored.push(rowPlan.batch.scored);
    }
    return joinRows(batch, parts, scored);
  };
  const handleRun = async (msg: Extract<WorkerRequest, { type: 'run' }>) => {
    try {
      const { outputs, recomputed } = await run(msg);
      port.postMessage(
        { type: 'result', id: msg.id, outputs, recomputed, cacheBytes: store?.bytes ?? 0 } satisfies WorkerResponse,
        transferList(outputs),
      );
    } catch (err) {
      port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message } satisfies WorkerResponse);
    }
  };
  // Runs one at a time, in order: ORT runs on this thread anyway, so nothing overlaps that could,
  // and a queued batch gathers its past only when it starts (one past feed alive, not one per
  // queued batch: the cache's memory bound counts it).
  let queue: Promise<void> = Promise.resolve();
  port.on('message', async (msg: WorkerRequest) => {
    if (msg.type === 'run') {
      queue = queue.then(() => handleRun(msg));
    } else if (msg.type === 'clear-cache') {
      // The main thread forgot every block (a failed or recomputed batch): so does the store, and
      // a batch planned before it keeps nothing (its blocks would be ones the index never counts).
      epoch++;
      store?.clear();
    } else if (msg.type === 'crash') {
      // Dies of an uncaught exception, between forward passes, as a JS fault would (EngineWorker.kill).
      process.nextTick(() => {
        throw new Error(msg.message);
      });
    } else if (msg.type === 'exit') {
      await session.release();
      process.exit(0);
    }
  });
  port.postMessage({ type: 'ready', info: session.info } satisfies WorkerResponse);
}

void main();
