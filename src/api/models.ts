/** GET /v1/models: the scorers, their β, devices and the service's limits. */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { SessionInfo } from '../engine/session.js';
import type { Scorer } from '../pool.js';
import type { RouteContext } from './context.js';
import { ModelsResponse, errorResponses } from './schemas.js';

/** One model file of a scorer, as /v1/models and /v1/info describe it (each schema keeps its fields). */
export const describeModel = (info: SessionInfo) => ({
  file: info.file,
  sha256: info.sha256,
  provider: info.provider,
  lm_head_gathered: info.gatherBeforeLmHead,
  kv_bytes_per_token: info.kv?.bytesPerToken ?? null,
  ...(info.merge ? { merge: info.merge } : {}),
});

/** A scorer's tokenization facts, as /v1/models reports them. */
export function describeTokenization(s: Scorer) {
  const tok = s.tokenizer;
  return {
    profile: s.tokenization,
    bos_token: tok.specialTokens.bos_token ?? null,
    bos_id: tok.bosId,
    bos_added: { paper: tok.bosId !== null, joint: tok.bosId !== null && tok.jointPrefix[0] === tok.bosId },
    add_bos_token: tok.addBosToken,
    tokenizer_size: tok.vocabSize,
    tokenizer_exceeds_model: tok.vocabSize > s.vocabSize,
  };
}

export function modelRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    '/v1/models',
    { schema: { summary: 'Scorers, β, devices and limits', tags: ['info'], response: { 200: ModelsResponse, 503: errorResponses[503] } } },
    async () => {
      ctx.pool.get(); // 503 while loading
      return {
        object: 'list' as const,
        data: ctx.pool.list().map((s) => ({
          id: s.name,
          object: 'scorer' as const,
          beta: s.beta,
          max_length: s.maxLength,
          max_length_source: s.maxLengthSource,
          vocab_size: s.vocabSize,
          tokenization: describeTokenization(s),
          warnings: s.warnings,
          device: s.device,
          policy: describeModel(s.engine.policyInfo),
          reference: describeModel(s.engine.referenceInfo),
          prefix_cache: s.engine.prefixCacheInfo(),
        })),
        limits: serviceLimits(ctx.config),
      };
    },
  );
}

/** The request and batching limits clients can plan around (each schema keeps its fields). */
export function serviceLimits(config: Config) {
  return {
    max_items: config.max_items,
    max_batch_tokens: config.max_batch_tokens,
    max_batch_rows: config.max_batch_rows,
    max_queue: config.max_queue,
    max_wait_ms: config.max_wait_ms,
    body_limit: config.body_limit,
  };
}
