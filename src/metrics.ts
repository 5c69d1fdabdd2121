/**
 * Prometheus instruments (prefix `pa_`). One registry per app instance so tests and several
 * servers in one process never share counters.
 */
import client from 'prom-client';
import type { EngineObserver } from './engine/scorer.js';
import type { SessionInfo } from './engine/session.js';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new client.Registry();
  readonly requests = new client.Counter({
    name: 'pa_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'status'],
    registers: [this.registry],
  });
  readonly requestDuration = new client.Histogram({
    name: 'pa_request_duration_seconds',
    help: 'Time from request received to response sent',
    labelNames: ['route'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly failures = new client.Counter({
    name: 'pa_request_failures_total',
    help: 'Requests answered with an error, by machine-readable error code',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly queueSize = new client.Gauge({
    name: 'pa_queue_size',
    help: 'Rows waiting in the batching queues',
    registers: [this.registry],
  });
  readonly queueWait = new client.Histogram({
    name: 'pa_queue_wait_seconds',
    help: 'Time a row waited in the queue before its batch started',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly batchRows = new client.Histogram({
    name: 'pa_batch_rows',
    help: 'Rows (sequences) per forward batch',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly batchTokens = new client.Histogram({
    name: 'pa_batch_tokens',
    help: 'Padded tokens (rows × padded length) per forward batch',
    buckets: [64, 256, 1024, 4096, 16384, 65536, 262144],
    registers: [this.registry],
  });
  readonly inference = new client.Histogram({
    name: 'pa_inference_duration_seconds',
    help: 'Forward pass time of one batch, per scorer and model role',
    labelNames: ['scorer', 'role'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly tokenization = new client.Histogram({
    name: 'pa_tokenization_duration_seconds',
    help: 'Time to compile a request into token sequences',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly scoredTokens = new client.Counter({
    name: 'pa_scored_tokens_total',
    help: 'Step tokens scored, per scorer',
    labelNames: ['scorer'],
    registers: [this.registry],
  });
  readonly dropped = new client.Counter({
    name: 'pa_dropped_requests_total',
    help: 'Queued rows dropped before their forward pass, by reason (client_gone, deadline_exceeded)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly modelInfo = new client.Gauge({
    name: 'pa_model_info',
    help: 'Loaded model files (value 1), by scorer, role, file, sha256 and device; a merged reference adds its merge and the merged weights\' sha256',
    labelNames: ['scorer', 'role', 'file', 'sha256', 'device', 'merge_method', 'merge_alpha', 'merge_density', 'merge_seed', 'merged_sha256'],
    registers: [this.registry],
  });
  readonly prefixHits = new client.Counter({
    name: 'pa_prefix_cache_hit_tokens_total',
    help: 'Context tokens whose keys and values were read from the prefix cache, per scorer and model role',
    labelNames: ['scorer', 'role'],
    registers: [this.registry],
  });
  readonly prefixMisses = new client.Counter({
    name: 'pa_prefix_cache_miss_tokens_total',
    help: 'Tokens run through the model with the prefix cache on (not found in it), per scorer and model role',
    labelNames: ['scorer', 'role'],
    registers: [this.registry],
  });
  readonly prefixBytes = new client.Gauge({
    name: 'pa_prefix_cache_bytes',
    help: 'Bytes of KV blocks the prefix cache holds, per scorer and model role',
    labelNames: ['scorer', 'role'],
    registers: [this.registry],
  });
  readonly prefixEvictions = new client.Counter({
    name: 'pa_prefix_cache_evictions_total',
    help: 'Prefix-cache blocks evicted to stay within --prefix-cache-mb, per scorer and model role',
    labelNames: ['scorer', 'role'],
    registers: [this.registry],
  });
  readonly workerRestarts = new client.Counter({
    name: 'pa_worker_restarts_total',
    help: 'Engine worker threads restarted after they died',
    labelNames: ['scorer', 'role'],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) {
      client.collectDefaultMetrics({ register: this.registry, prefix: 'pa_' });
      // prom-client names three gauges *_total, which Prometheus reserves for counters (promtool
      // rejects them); each is the sum over `type` of the gauge of the same name without _total.
      for (const name of ['active_handles', 'active_requests', 'active_resources']) {
        this.registry.removeSingleMetric(`pa_nodejs_${name}_total`);
      }
    }
  }

  private readonly queuedPerScorer = new Map<string, number>();

  /** pa_model_info: one series (value 1) per loaded model file, once the pool has loaded. */
  recordModels(
    scorers: readonly { name: string; engine: { policyInfo: SessionInfo; referenceInfo: SessionInfo; caches?: Partial<Record<string, unknown>> } }[],
  ): void {
    for (const s of scorers) {
      // The prefix-cache series exist (at 0) from the start for every role that has a cache.
      for (const role of Object.keys(s.engine.caches ?? {})) {
        for (const c of [this.prefixHits, this.prefixMisses, this.prefixEvictions]) c.inc({ scorer: s.name, role }, 0);
        this.prefixBytes.set({ scorer: s.name, role }, 0);
      }
      for (const [role, info] of [['policy', s.engine.policyInfo], ['reference', s.engine.referenceInfo]] as const) {
        const m = info.merge;
        const merge = m
          ? { merge_method: m.method, merge_alpha: String(m.alpha), merge_density: m.density === null ? '' : String(m.density), merge_seed: m.seed === null ? '' : String(m.seed), merged_sha256: m.weights_sha256 }
          : {};
        this.modelInfo.set({ scorer: s.name, role, file: info.file, sha256: info.sha256, device: info.provider, ...merge }, 1);
      }
    }
  }

  /** One scorer's view of the metrics: no prom-client types cross into engine/. */
  engineObserver(scorer: string): EngineObserver {
    return {
      queueSize: (size) => {
        this.queuedPerScorer.set(scorer, size);
        let total = 0;
        for (const n of this.queuedPerScorer.values()) total += n;
        this.queueSize.set(total);
      },
      batchStarted: (r) => {
        this.batchRows.observe(r.rows);
        this.batchTokens.observe(r.paddedTokens);
        for (const w of r.queueWaits) this.queueWait.observe(w);
      },
      dropped: (reason, rows) => this.dropped.inc({ reason }, rows),
      inference: (scorer, role, seconds) => this.inference.observe({ scorer, role }, seconds),
      prefixCache: (scorer, role, r) => {
        this.prefixHits.inc({ scorer, role }, r.hitTokens);
        this.prefixMisses.inc({ scorer, role }, r.missTokens);
        this.prefixEvictions.inc({ scorer, role }, r.evictions);
        this.prefixBytes.set({ scorer, role }, r.bytes);
      },
    };
  }
}
