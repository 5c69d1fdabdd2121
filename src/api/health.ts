/**
 * Liveness and readiness. /health answers from the event loop alone (it proves the HTTP thread
 * is free); /ready is 503 until every session of every scorer is loaded and warmed, and again
 * while a worker restarts or the server drains.
 */
import type { FastifyInstance } from 'fastify';
import type { RouteContext } from './context.js';
import { StatusResponse } from './schemas.js';

export function healthRoutes(app: FastifyInstance, ctx: RouteContext, state: { draining: boolean }): void {
  app.get('/health', { schema: { summary: 'Liveness', tags: ['ops'], response: { 200: StatusResponse } } }, async () => ({ status: 'ok' }));
  app.get(
    '/ready',
    { schema: { summary: 'Readiness: 200 once every model is loaded and warmed', tags: ['ops'], response: { 200: StatusResponse, 503: StatusResponse } } },
    async (_request, reply) => {
      if (state.draining) return reply.code(503).send({ status: 'draining' });
      if (!ctx.pool.ready) return reply.code(503).send({ status: ctx.pool.state === 'ready' ? 'restarting' : ctx.pool.state });
      return { status: 'ready' };
    },
  );
}
