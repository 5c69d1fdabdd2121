/**
 * A scorer is a policy/reference pair behind one batching queue. Policy and reference run in
 * separate workers so both forward passes of a batch run at the same time (design §3). It turns
 * Sequences into batch rows and batch outputs back into per-token scores; nothing here knows
 * HTTP or JSON.
 */
import { ServiceError } from '../errors.js';
import type { Sequence, TokenScores } from '../sequence.js';
import type { BatchRow, EngineBatch, HeadOutputs } from './batch.js';
import { Batcher, type BatchOutputs, type BatcherObserver, type BatcherOptions, type SubmitOptions } from './batcher.js';
import { EngineWorker } from './engine-worker.js';
import type { ReferenceMerge } from './merge-spec.js';
import type { SessionInfo } from './session.js';

export interface EngineObserver extends BatcherObserver {
  inference?(scorer: string, role: 'policy' | 'reference', seconds: number): void;
}

export interface ScorerEngineSpec {
  name: string;
  policyOnnx: string;
  referenceOnnx: string;
  /** Serve a merge of the two models' weights as the reference (merge.ts). */
  referenceMerge?: ReferenceMerge;
  device: string;
  /** Intra-op threads of each session. */
  threads: number;
  batching: BatcherOptions & { maxBatchLogits?: number };
}

/**
 * Scored tokens × vocabulary per forward batch when the config gives none: 2^25 floats, 128 MiB
 * per [scored, vocab] float32 intermediate of the scoring head (it holds several).
 */
export const DEFAULT_MAX_BATCH_LOGITS = 2 ** 25;

/**
 * A row with more scored positions than one batch may hold is split into rows over the same ids
 * with consecutive slices of its positions: the transformer body runs once per part, but the
 * head's memory stays bounded whatever the vocabulary. Outputs are concatenated back in order.
 */
export function splitRow(row: BatchRow, maxScored: number): BatchRow[] {
  if (row.positions.length <= maxScored) return [row];
  const parts: BatchRow[] = [];
  for (let i = 0; i < row.positions.length; i += maxScored) parts.push({ ids: row.ids, positions: row.positions.slice(i, i + maxScored) });
  return parts;
}

function concatOutputs(parts: readonly BatchOutputs[]): BatchOutputs {
  if (parts.length === 1) return parts[0];
  const out: BatchOutputs = {};
  for (const name of Object.keys(parts[0])) {
    const total = parts.reduce((n, p) => n + p[name].length, 0);
    const joined = new Float32Array(total);
    let offset = 0;
    for (const p of parts) {
      joined.set(p[name], offset);
      offset += p[name].length;
    }
    out[name] = joined;
  }
  return out;
}

/** Which positions a Sequence scores: token k of a span is read at position k − 1. */
export function sequenceRow(seq: Sequence): BatchRow {
  const positions: number[] = [];
  for (const span of seq.spans) for (let k = span.start; k < span.end; k++) positions.push(k - 1);
  return { ids: seq.ids, positions };
}


/**
 * The first `scored` outputs are real; the rest answer packBatch's padding positions (see
 * EngineBatch.scored) and are never handed to a row, so they are not checked either.
 */
function assertFinite(outputs: HeadOutputs, scored: number, role: string): void {
  for (const [name, values] of Object.entries(outputs)) {
    if (!values) continue;
    for (let i = 0; i < scored; i++) {
      if (!Number.isFinite(values[i])) {
        throw new ServiceError(500, 'model_output_invalid', `the ${role} model produced a non-finite ${name} (${values[i]})`);
      }
    }
  }
}

export class ScorerEngine {
  readonly batcher: Batcher;
  /** Scored positions one forward batch may hold: max_batch_logits ÷ vocabulary. */
  readonly maxBatchScored: number;

  private constructor(
    readonly spec: ScorerEngineSpec,
    readonly policy: EngineWorker,
    readonly reference: EngineWorker,
    private readonly observer: EngineObserver,
  ) {
    this.maxBatchScored = Math.max(1, Math.floor((spec.batching.maxBatchLogits ?? DEFAULT_MAX_BATCH_LOGITS) / policy.info!.vocabSize));
    this.batcher = new Batcher({ ...spec.batching, maxBatchScored: this.maxBatchScored }, (batch) => this.forward(batch), observer);
  }

  static async start(spec: ScorerEngineSpec, observer: EngineObserver = {}): Promise<ScorerEngine> {
    const session = { device: spec.device, intraOpThreads: spec.threads };
    const policy = new EngineWorker('policy', { ...session, onnxFile: spec.policyOnnx, stats: true });
    const merge = spec.referenceMerge ? { merge: { ...spec.referenceMerge, policyOnnx: spec.policyOnnx } } : {};
    const reference = new EngineWorker('reference', { ...session, onnxFile: spec.referenceOnnx, stats: false, ...merge });
    // One after the other: loading holds a model's weights more than once for a moment (file
    // bytes, ORT's copy, prepacked MatMul weights), and two loads at once add those peaks up.
    try {
      await policy.start();
      await reference.start();
    } catch (err) {
      await Promise.all([policy.close(), reference.close()]);
      throw err;
    }
    const engine = new ScorerEngine(spec, policy, reference, observer);
    const [p, r] = [policy.info!, reference.info!];
    if (p.vocabSize !== r.vocabSize) {
      await engine.close();
      throw new Error(
        `scorer "${spec.name}": policy ${p.file} has vocabulary ${p.vocabSize} but reference ${r.file} has ${r.vocabSize}; a pair must share its tokenizer`,
      );
    }
    return engine;
  }

  get policyInfo(): SessionInfo {
    return this.policy.info!;
  }

  get referenceInfo(): SessionInfo {
    return this.reference.info!;
  }

  get vocabSize(): number {
    return this.policy.info!.vocabSize;
  }

  get ready(): boolean {
    return this.policy.ready && this.reference.ready;
  }

  private async forward(batch: EngineBatch): Promise<BatchOutputs> {
    // No scored position (every step of every row truncated away): nothing to compute, and
    // the policy session's stats head on zero rows dies of SIGFPE inside onnxruntime, taking the
    // whole process down (a native fault, not a worker error).
    if (batch.scored === 0) {
      const none = () => new Float32Array(0);
      return { policy: none(), reference: none(), entropy: none(), meanLogprob: none(), topkMean: none() };
    }
    const timed = async (worker: EngineWorker, role: 'policy' | 'reference') => {
      const t0 = performance.now();
      const out = await worker.run(batch);
      this.observer.inference?.(this.spec.name, role, (performance.now() - t0) / 1000);
      assertFinite(out, batch.scored, role);
      return out;
    };
    const [p, r] = await Promise.all([timed(this.policy, 'policy'), timed(this.reference, 'reference')]);
    return {
      policy: p.logprob,
      reference: r.logprob,
      entropy: p.entropy!,
      meanLogprob: p.meanLogprob!,
      topkMean: p.topkMean!,
    };
  }

  /** Scores every span token of every Sequence; resolves in input order. */
  async score(sequences: readonly Sequence[], options: SubmitOptions = {}): Promise<TokenScores[]> {
    const parts = sequences.map((seq) => splitRow(sequenceRow(seq), this.maxBatchScored));
    const flat = await this.batcher.submit(parts.flat(), options);
    let next = 0;
    const outputs = parts.map((p) => concatOutputs(flat.slice(next, (next += p.length))));
    return outputs.map((o) => ({
      policy: Float64Array.from(o.policy),
      reference: Float64Array.from(o.reference),
      entropy: Float64Array.from(o.entropy),
      meanLogprob: Float64Array.from(o.meanLogprob),
      topkMeanLogprob: Float64Array.from(o.topkMean),
    }));
  }

  async close(): Promise<void> {
    await Promise.all([this.policy.close(), this.reference.close()]);
  }
}
