/**
 * One model (a scorer's policy or its reference) with the top-K head variant (topk-head.ts), for
 * /v1/completions' echo log-probs: per scored position, the target token's log-prob and the K
 * largest log-probs over the vocabulary with their ids.
 *
 * It runs in its own engine worker, started on first use for that (scorer, role) and closed with
 * the scorer's engine: the scoring sessions keep their head (no top-K work on scoring requests),
 * at the cost of one more copy of that model in memory once /v1/completions has asked for it.
 * Its own Batcher gives it the same queue bound (429), deadlines and dropped-client handling.
 */
import { ServiceError } from '../errors.js';
import type { BatchRow, EngineBatch } from './batch.js';
import { Batcher, type BatchOutputs, type SubmitOptions } from './batcher.js';
import { EngineWorker } from './engine-worker.js';
import { DEFAULT_MAX_BATCH_LOGITS, splitRow, type ScorerEngine } from './scorer.js';
import { MAX_TOP_K } from './topk-head.js';

export type ModelRole = 'policy' | 'reference';

/** One row's outputs: n scored positions, K columns of top log-probs (descending) and ids. */
export interface TopKRow {
  logprob: Float32Array;
  /** Row-major [n, k]. */
  values: Float32Array;
  indices: Float32Array;
  k: number;
}

const value = (j: number) => `v${j}`;
const index = (j: number) => `i${j}`;

export class TopKEngine {
  private readonly batcher: Batcher;
  private readonly maxScored: number;

  private constructor(
    private readonly worker: EngineWorker,
    readonly k: number,
    spec: ScorerEngine['spec'],
  ) {
    const vocab = worker.info!.vocabSize;
    this.maxScored = Math.max(1, Math.floor((spec.batching.maxBatchLogits ?? DEFAULT_MAX_BATCH_LOGITS) / vocab));
    this.batcher = new Batcher({ ...spec.batching, maxBatchScored: this.maxScored }, (batch) => this.forward(batch));
  }

  static async start(spec: ScorerEngine['spec'], role: ModelRole): Promise<TopKEngine> {
    // A merged reference (π_α, merge.ts) is built the same way as the scoring worker builds it.
    const merge = role === 'reference' && spec.referenceMerge ? { merge: { ...spec.referenceMerge, policyOnnx: spec.policyOnnx } } : {};
    const worker = new EngineWorker(`${role} top-k`, {
      onnxFile: role === 'policy' ? spec.policyOnnx : spec.referenceOnnx,
      device: spec.device,
      intraOpThreads: spec.threads,
      stats: false,
      topK: MAX_TOP_K,
      ...merge,
    });
    try {
      await worker.start();
    } catch (err) {
      await worker.close();
      throw err;
    }
    return new TopKEngine(worker, Math.min(MAX_TOP_K, worker.info!.vocabSize), spec);
  }

  get vocabSize(): number {
    return this.worker.info!.vocabSize;
  }

  /** The batcher hands each row one value per position and name, so the K columns travel as 2K named arrays. */
  private async forward(batch: EngineBatch): Promise<BatchOutputs> {
    const out = await this.worker.run(batch);
    const rows = out.logprob.length;
    const named: BatchOutputs = { logprob: out.logprob };
    for (let j = 0; j < this.k; j++) {
      const v = new Float32Array(rows);
      const ix = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        v[r] = out.topkValues![r * this.k + j];
        ix[r] = out.topkIndices![r * this.k + j];
      }
      named[value(j)] = v;
      named[index(j)] = ix;
    }
    for (let r = 0; r < batch.scored; r++) {
      if (!Number.isFinite(out.logprob[r]) || !Number.isFinite(named[value(0)][r])) {
        throw new ServiceError(500, 'model_output_invalid', `the model produced a non-finite log-prob (${out.logprob[r]})`);
      }
    }
    return named;
  }

  /** Each row's outputs, in input order. */
  async run(rows: readonly BatchRow[], options: SubmitOptions = {}): Promise<TopKRow[]> {
    const parts = rows.map((row) => splitRow(row, this.maxScored));
    const flat = await this.batcher.submit(parts.flat(), options);
    let next = 0;
    return parts.map((p) => {
      const pieces = flat.slice(next, (next += p.length));
      const n = pieces.reduce((m, o) => m + o.logprob.length, 0);
      const row: TopKRow = { logprob: new Float32Array(n), values: new Float32Array(n * this.k), indices: new Float32Array(n * this.k), k: this.k };
      let at = 0;
      for (const o of pieces) {
        row.logprob.set(o.logprob, at);
        for (let r = 0; r < o.logprob.length; r++) {
          for (let j = 0; j < this.k; j++) {
            row.values[(at + r) * this.k + j] = o[value(j)][r];
            row.indices[(at + r) * this.k + j] = o[index(j)][r];
          }
        }
        at += o.logprob.length;
      }
      return row;
    });
  }

  async close(): Promise<void> {
    await this.batcher.whenIdle();
    await this.worker.close();
  }
}

const started = new WeakMap<ScorerEngine, Map<ModelRole, Promise<TopKEngine>>>();

/** The top-K engine of a scorer's policy or reference, started on first use. */
export function topKEngineFor(engine: ScorerEngine, role: ModelRole): Promise<TopKEngine> {
  let roles = started.get(engine);
  if (!roles) started.set(engine, (roles = new Map()));
  let pending = roles.get(role);
  if (!pending) {
    pending = TopKEngine.start(engine.spec, role);
    roles.set(role, pending);
    // A failed start is not remembered: the next request tries again.
    pending.catch(() => roles!.delete(role));
  }
  return pending;
}

/** Closes the top-K engines started for `engine` (the pool calls this when it closes). */
export async function closeTopKEngines(engine: ScorerEngine): Promise<void> {
  const roles = started.get(engine);
  if (!roles) return;
  started.delete(engine);
  await Promise.all([...roles.values()].map((p) => p.then((e) => e.close(), () => undefined)));
}
