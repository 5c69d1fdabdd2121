/**
 * One model behind its own batching queue: the per-token log-probs of Sequences under a single
 * session, for work that runs the two models apart (the α sweep scores the policy once and each
 * merged reference after it). A ScorerEngine runs both models on every batch; this runs one.
 */
import type { Sequence } from '../sequence.js';
import type { BatchOutputs } from './batcher.js';
import { Batcher, type BatcherOptions } from './batcher.js';
import { EngineWorker } from './engine-worker.js';
import type { ReferenceMerge } from './merge-spec.js';
import { DEFAULT_MAX_BATCH_LOGITS, sequenceRow, splitRow } from './scorer.js';
import type { SessionInfo } from './session.js';

export interface ModelEngineSpec {
  role: 'policy' | 'reference';
  onnxFile: string;
  /** A reference served as a merge with this policy file (merge.ts). */
  merge?: ReferenceMerge & { policyOnnx: string };
  device: string;
  threads: number;
  batching: BatcherOptions & { maxBatchLogits?: number };
}

export class ModelEngine {
  private constructor(
    private readonly worker: EngineWorker,
    private readonly batcher: Batcher,
    private readonly maxBatchScored: number,
  ) {}

  static async start(spec: ModelEngineSpec): Promise<ModelEngine> {
    const worker = new EngineWorker(spec.role, {
      onnxFile: spec.onnxFile,
      stats: false,
      device: spec.device,
      intraOpThreads: spec.threads,
      ...(spec.merge ? { merge: spec.merge } : {}),
    });
    try {
      await worker.start();
    } catch (err) {
      await worker.close();
      throw err;
    }
    const maxBatchScored = Math.max(1, Math.floor((spec.batching.maxBatchLogits ?? DEFAULT_MAX_BATCH_LOGITS) / worker.info!.vocabSize));
    const batcher = new Batcher({ ...spec.batching, maxBatchScored }, async (batch): Promise<BatchOutputs> => {
      // No scored position: nothing to run (a zero-row head is a native fault, see ScorerEngine.forward).
      if (batch.scored === 0) return { logprob: new Float32Array(0) };
      return { logprob: (await worker.run(batch)).logprob };
    });
    return new ModelEngine(worker, batcher, maxBatchScored);
  }

  get info(): SessionInfo {
    return this.worker.info!;
  }

  /** log p(token) of every span token of every Sequence, in span order; resolves in input order. */
  async logprobs(sequences: readonly Sequence[]): Promise<Float64Array[]> {
    const parts = sequences.map((seq) => splitRow(sequenceRow(seq), this.maxBatchScored));
    const flat = await this.batcher.submit(parts.flat());
    let next = 0;
    return parts.map((p) => {
      const rows = flat.slice(next, (next += p.length));
      const out = new Float64Array(rows.reduce((n, r) => n + r.logprob.length, 0));
      let offset = 0;
      for (const r of rows) {
        out.set(r.logprob, offset);
        offset += r.logprob.length;
      }
      return out;
    });
  }

  async close(): Promise<void> {
    await this.batcher.whenIdle();
    await this.worker.close();
  }
}
