/** GET /v1/models: the scorers, their β, devices and the service's limits. */
import type { FastifyInstance } from 'fastify';
import type { SessionInfo } from '../engine/session.js';
import type { RouteContext } from './context.js';
import { ModelsResponse, errorResponses } from './schemas.js';

const describe = (info: SessionInfo) => ({
  file: info.file,
  sha256: info.sha256,
  provider: info.provider,
  lm_head_gathered: info.gatherBeforeLmHead,
});

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
          vocab_size: s.vocabSize,
          device: s.device,
          policy: describe(s.engine.policyInfo),
          reference: describe(s.engine.referenceInfo),
        })),
        limits: {
          max_items: ctx.config.max_items,
          max_batch_tokens: ctx.config.max_batch_tokens,
          max_batch_rows: ctx.config.max_batch_rows,
          max_queue: ctx.config.max_queue,
          body_limit: ctx.config.body_limit,
        },
      };
    },
  );
}
