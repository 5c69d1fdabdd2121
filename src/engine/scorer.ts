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
import { EngineWorker, type WorkerResult } from './engine-worker.js';
import { PrefixCache } from './prefix-cache.js';
import type { ReferenceMerge } from './merge-spec.js';
import type { SessionInfo } from './session.js';

export type Role = 'policy' | 'reference';

/** Prefix-cache activity of one batch, per role. */
export interface PrefixCacheReport {
  hitTokens: number;
  missTokens: number;
  evictions: number;
  /** Bytes of KV blocks the role's worker holds. */
  bytes: number;
}

export interface EngineObserver extends BatcherObserver {
  inference?(scorer: string, role: Role, seconds: number): void;
  prefixCache?(scorer: string, role: Role, report: PrefixCacheReport): void;
}

/** Tokens per prefix-cache block. */
export const BLOCK_TOKENS = 16;

/** Past tokens (rows × longest cached prefix) per batch, as a multiple of max_batch_tokens. */
export const PAST_TOKENS_PER_NEW_TOKEN = 32;
/**
 * How a role's share of --prefix-cache-mb is spent, so that everything the cache adds stays
 * within it (bench/memory.ts measures it): half holds blocks; the batch in flight gets an
 * eighth for each copy of KV it makes: its past feed, onnxruntime's concatenation of that past
 * with the new tokens, the presents it keeps blocks of, and onnxruntime-node's copy of those
 * (released right after the run). The batch's tokens of past, and of presents, are limited to
 * what an eighth holds (`transitTokens`).
 */
export const BLOCKS_SHARE = 0.5;
export const TRANSIT_SHARE = 0.125;

export interface ScoreOptions extends SubmitOptions {
  /** Compute the policy's confidence statistics (entropy, top-k, mean log-prob); default false. */
  stats?: boolean;
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
  /** Prefix cache bound in MiB for this scorer (both roles); 0 or absent: no reuse at all. */
  prefixCacheMb?: number;
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

const ROLES: readonly Role[] = ['policy', 'reference'];

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
  /** Per role: its prefix cache, when the cache is on and the role's export has a KV cache. */
  readonly caches: Partial<Record<Role, PrefixCache>> = {};
  /** Tokens each batch row read from the cache (the fewer of the two roles). */
  private readonly cachedOf = new WeakMap<BatchRow, number>();

  private constructor(
    readonly spec: ScorerEngineSpec,
    readonly policy: EngineWorker,
    readonly reference: EngineWorker,
    private readonly observer: EngineObserver,
  ) {
    this.maxBatchScored = Math.max(1, Math.floor((spec.batching.maxBatchLogits ?? DEFAULT_MAX_BATCH_LOGITS) / policy.info!.vocabSize));
    this.setUpCaches();
    const cached = Object.values(this.caches);
    const rowCost =
      cached.length === 0
        ? undefined
        : (row: BatchRow) => {
            const past = Math.min(...ROLES.map((r) => this.caches[r]?.cachedTokens(row) ?? 0));
            return { newTokens: row.ids.length - past, pastTokens: past };
          };
    this.batcher = new Batcher(
      {
        ...spec.batching,
        maxBatchScored: this.maxBatchScored,
        rowCost,
        maxBatchPastTokens: spec.batching.maxBatchPastTokens ?? this.defaultPastBudget(),
      },
      (batch, rows) => this.forward(batch, rows),
      observer,
    );
  }

  /** Past tokens per batch: 32 × max_batch_tokens, and at most what a role's transit share holds. */
  private defaultPastBudget(): number {
    const perRole = Object.values(this.caches).map((c) => c.transitTokens);
    return Math.max(BLOCK_TOKENS, Math.min(PAST_TOKENS_PER_NEW_TOKEN * this.spec.batching.maxBatchTokens, ...perRole));
  }

  /**
   * The bound is the scorer's: split between the roles in proportion to their KV bytes per token
   * (half each for two exports of one architecture). A worker that restarts starts empty, and so
   * does its index.
   */
  private setUpCaches(): void {
    const mb = this.spec.prefixCacheMb ?? 0;
    if (mb <= 0) return;
    const kvBytes = ROLES.map((r) => this.worker(r).info!.kv?.bytesPerToken ?? 0);
    const total = kvBytes[0] + kvBytes[1];
    ROLES.forEach((role, i) => {
      if (kvBytes[i] === 0) return;
      const info = this.worker(role).info!;
      const cache = new PrefixCache({
        blockTokens: BLOCK_TOKENS,
        bytesPerToken: kvBytes[i],
        capacityBytes: (BLOCKS_SHARE * mb * 2 ** 20 * kvBytes[i]) / total,
        // the role's share is mb · kvBytes[i] / total bytes: an eighth of it, in tokens
        transitTokens: Math.floor((TRANSIT_SHARE * mb * 2 ** 20) / total),
        // A merged reference's blocks are its merged weights', not its file's.
        modelSha256: info.merge?.weights_sha256 ?? info.sha256,
      });
      this.caches[role] = cache;
      const worker = this.worker(role);
      worker.on('down', () => cache.clear());
      worker.on('ready', () => cache.clear());
    });
  }

  /** Index and worker store both start over, so neither holds a block the other does not know. */
  private forget(role: Role): void {
    this.caches[role]?.clear();
    this.worker(role).clearCache();
  }

  private worker(role: Role): EngineWorker {
    return role === 'policy' ? this.policy : this.reference;
  }

  static async start(spec: ScorerEngineSpec, observer: EngineObserver = {}): Promise<ScorerEngine> {
    const blockTokens = (spec.prefixCacheMb ?? 0) > 0 ? BLOCK_TOKENS : 0;
    const session = { device: spec.device, intraOpThreads: spec.threads, blockTokens };
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

  /** For /v1/models: the cache's bound and what it holds, both roles together. */
  prefixCacheInfo(): { capacity_bytes: number; block_capacity_bytes: number; batch_tokens: number; bytes: number; block_tokens: number } {
    const caches = Object.values(this.caches);
    return {
      capacity_bytes: caches.length > 0 ? Math.round((this.spec.prefixCacheMb ?? 0) * 2 ** 20) : 0,
      block_capacity_bytes: caches.reduce((n, c) => n + c.capacityBlocks * c.blockBytes, 0),
      batch_tokens: caches.length > 0 ? Math.min(...caches.map((c) => c.transitTokens)) : 0,
      bytes: caches.reduce((n, c) => n + c.bytes, 0),
      block_tokens: BLOCK_TOKENS,
    };
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

  private async forward(batch: EngineBatch, rows: readonly BatchRow[]): Promise<BatchOutputs> {
    // No scored position (every step of every row truncated away): nothing to compute, and
    // the policy session's stats head on zero rows dies of SIGFPE inside onnxruntime, taking the
    // whole process down (a native fault, not a worker error).
    if (batch.scored === 0) {
      const none = () => new Float32Array(0);
      return { policy: none(), reference: none(), entropy: none(), meanLogprob: none(), topkMean: none() };
    }
    const stats = rows.some((r) => this.statsRows.has(r));
    const timed = async (role: Role) => {
      const cache = this.caches[role];
      const before = cache && { ...cache.counters };
      const plan = cache?.plan(rows);
      const t0 = performance.now();
      let result: WorkerResult;
      try {
        result = await this.worker(role).runPlanned(batch, role === 'policy' && stats, plan);
      } catch (err) {
        // The worker may hold none of this plan's blocks: forget them all rather than guess.
        if (cache) this.forget(role);
        throw err;
      }
      this.observer.inference?.(this.spec.name, role, (performance.now() - t0) / 1000);
      if (cache && before) {
        if (result.recomputed) this.forget(role);
        this.observer.prefixCache?.(this.spec.name, role, {
          hitTokens: cache.counters.hitTokens - before.hitTokens,
          missTokens: cache.counters.missTokens - before.missTokens,
          evictions: cache.counters.evictions - before.evictions,
          bytes: result.cacheBytes,
        });
      }
      assertFinite(result.outputs, batch.scored, role);
      return { out: result.outputs, past: plan && !result.recomputed ? plan.pastLengths : null };
    };
    const [p, r] = await Promise.all([timed('policy'), timed('reference')]);
    rows.forEach((row, b) => this.cachedOf.set(row, Math.min(p.past?.[b] ?? 0, r.past?.[b] ?? 0)));
    const none = new Float32Array(0);
    return {
      policy: p.out.logprob,
      reference: r.out.logprob,
      entropy: p.out.entropy ?? none,
      meanLogprob: p.out.meanLogprob ?? none,
      topkMean: p.out.topkMean ?? none,
    };
  }

  /** Rows of requests that asked for the statistics. */
  private readonly statsRows = new WeakSet<BatchRow>();

  /**
   * Scores every span token of every Sequence; resolves in input order. With the cache on, rows
   * that share a prefix with an earlier row of the same call wait for it and read its blocks.
   */
  async score(sequences: readonly Sequence[], options: ScoreOptions = {}): Promise<TokenScores[]> {
    const parts = sequences.map((seq) => splitRow(sequenceRow(seq), this.maxBatchScored));
    const rows = parts.flat();
    if (options.stats) for (const row of rows) this.statsRows.add(row);
    const index = this.caches.policy ?? this.caches.reference;
    const waves = index?.waves(rows);
    const flat = await this.batcher.submit(rows, { ...options, waves });
    let next = 0;
    return parts.map((p) => {
      const first = next;
      const o = concatOutputs(flat.slice(next, (next += p.length)));
      return {
        policy: Float64Array.from(o.policy),
        reference: Float64Array.from(o.reference),
        entropy: Float64Array.from(o.entropy),
        meanLogprob: Float64Array.from(o.meanLogprob),
        topkMeanLogprob: Float64Array.from(o.topkMean),
        // A split row's parts run over the same ids: its first part says what its context reused.
        cachedTokens: this.cachedOf.get(rows[first]) ?? 0,
      };
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.policy.close(), this.reference.close()]);
  }
}
