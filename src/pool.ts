/**
 * The loaded scorers: for each configured name, its tokenizer (text/) and its engine (engine/).
 * The HTTP layer asks the pool for a scorer by name; the pool knows nothing of HTTP.
 */
import type { Config, ScorerConfig } from './config.js';
import { ServiceError } from './errors.js';
import { resolveModelDir, type ModelDir } from './engine/model-dir.js';
import { ScorerEngine, type EngineObserver } from './engine/scorer.js';
import { closeTopKEngines } from './engine/topk-engine.js';
import { loadTokenizer, type TextTokenizer } from './text/tokenizer.js';
import type { TokenizationProfile } from './text/pieces.js';

export interface Scorer {
  name: string;
  beta: number;
  /** Longest sequence a forward pass may take (context + step). */
  maxLength: number;
  /** The model's vocabulary: ids at or above it are rejected before they reach the engine. */
  vocabSize: number;
  /** Where maxLength came from (the config, the policy's config.json key, the tokenizer, the fallback). */
  maxLengthSource: string;
  tokenizer: TextTokenizer;
  /** The scorer's default tokenization profile (design §2); a request's `tokenization` overrides it. */
  tokenization: TokenizationProfile;
  engine: ScorerEngine;
  device: string;
  /** Problems found at load that serving does not refuse (logged at start-up, listed by /v1/models). */
  warnings: string[];
}

function maxLengthOf(sc: ScorerConfig, policy: ReturnType<typeof resolveModelDir>, tokenizer: TextTokenizer): { maxLength: number; maxLengthSource: string } {
  if (sc.max_length !== undefined) return { maxLength: sc.max_length, maxLengthSource: 'config max_length' };
  if (policy.maxPositions !== null) return { maxLength: policy.maxPositions, maxLengthSource: `policy ${policy.maxPositionsFrom}` };
  if (tokenizer.modelMaxLength !== null) return { maxLength: tokenizer.modelMaxLength, maxLengthSource: 'tokenizer_config.json model_max_length' };
  return { maxLength: FALLBACK_MAX_LENGTH, maxLengthSource: `default ${FALLBACK_MAX_LENGTH} (no model or tokenizer file gives one)` };
}

const FALLBACK_MAX_LENGTH = 2048;

/** β and the longest sequence of a scorer: its config, else the policy's config.json, else the tokenizer's. */
export function scorerLimits(sc: ScorerConfig, policyDir: ModelDir, tokenizer: TextTokenizer): { beta: number; maxLength: number } {
  return {
    beta: sc.beta ?? policyDir.klBeta ?? 1,
    maxLength: maxLengthOf(sc, policyDir, tokenizer).maxLength,
  };
}

export type PoolState = 'loading' | 'ready' | 'failed' | 'closed';

export class ScorerPool {
  private readonly scorers = new Map<string, Scorer>();
  state: PoolState = 'loading';

  constructor(
    private readonly config: Config,
    private readonly observerFor: (scorer: string) => EngineObserver = () => ({}),
  ) {}

  /** Loads every scorer (both sessions warmed). Rejects with a message naming the bad path. */
  async load(): Promise<void> {
    try {
      for (const sc of this.config.scorers) this.scorers.set(sc.name, await this.loadScorer(sc));
      this.state = 'ready';
    } catch (err) {
      this.state = 'failed';
      await this.close();
      this.state = 'failed';
      throw err;
    }
  }

  private async loadScorer(sc: ScorerConfig): Promise<Scorer> {
    const policyDir = resolveModelDir(sc.policy);
    const referenceDir = resolveModelDir(sc.reference);
    const tokenizer = await loadTokenizer(sc.tokenizer ?? sc.policy);
    const device = sc.device ?? this.config.device;
    const engine = await ScorerEngine.start(
      {
        name: sc.name,
        policyOnnx: policyDir.onnxFile,
        referenceOnnx: referenceDir.onnxFile,
        ...(sc.reference_merge ? { referenceMerge: sc.reference_merge } : {}),
        device,
        threads: this.config.threads,
        prefixCacheMb: this.config.prefix_cache_mb,
        batching: {
          maxBatchTokens: this.config.max_batch_tokens,
          maxBatchRows: this.config.max_batch_rows,
          maxBatchLogits: this.config.max_batch_logits,
          maxQueue: this.config.max_queue,
          maxWaitMs: this.config.max_wait_ms,
          maxInflight: this.config.max_inflight_batches,
        },
      },
      this.observerFor(sc.name),
    );
    // A tokenizer larger than the model (its BOS included) is served, not refused: tiny test
    // exports such as hf-internal-testing/tiny-random-gpt2 ship the full 50k GPT-2 tokenizer with a
    // 1000-row embedding, and token-id requests (prompt_ids/step_ids) are exact for them. Any
    // request whose ids (BOS included) fall outside the model's vocabulary gets a 422
    // ids_out_of_vocabulary from compile, which names this mismatch.
    // It is reported, though: start-up logs a warning and /v1/models says so.
    const vocabSize = engine.vocabSize;
    const warnings: string[] = [];
    if (tokenizer.vocabSize > vocabSize) {
      warnings.push(
        `the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary has ${vocabSize}: text whose tokens are ids ≥ ${vocabSize} is refused (422 ids_out_of_vocabulary); check that this tokenizer belongs to this model`,
      );
    }
    return {
      name: sc.name,
      beta: sc.beta ?? policyDir.klBeta ?? 1,
      ...maxLengthOf(sc, policyDir, tokenizer),
      vocabSize,
      tokenizer,
      tokenization: sc.tokenization ?? 'paper',
      engine,
      device,
      warnings,
    };
  }

  get ready(): boolean {
    return this.state === 'ready' && [...this.scorers.values()].every((s) => s.engine.ready);
  }

  list(): Scorer[] {
    return [...this.scorers.values()];
  }

  /** The named scorer; without a name, the one called `default`, else the first configured. */
  get(name?: string): Scorer {
    if (this.state !== 'ready') {
      throw new ServiceError(503, 'not_ready', 'the models are still loading; retry when /ready answers 200', { 'retry-after': '1' });
    }
    const scorer = name === undefined ? (this.scorers.get('default') ?? this.list()[0]) : this.scorers.get(name);
    if (!scorer) {
      throw new ServiceError(404, 'model_not_found', `no scorer named "${name}"; GET /v1/models lists them`);
    }
    return scorer;
  }

  /** Resolves when no scorer has queued or running work. */
  /** Drain timeout: what is still queued is answered with `err`; running batches finish. */
  abandonQueued(err: Error): void {
    for (const s of this.list()) s.engine.batcher.abandonQueued(err);
  }

  async whenIdle(): Promise<void> {
    await Promise.all(this.list().map((s) => s.engine.batcher.whenIdle()));
  }

  async close(): Promise<void> {
    const all = this.list();
    this.scorers.clear();
    if (this.state !== 'failed') this.state = 'closed';
    await Promise.all(all.map(async (s) => Promise.all([closeTopKEngines(s.engine), s.engine.close()])));
  }
}
