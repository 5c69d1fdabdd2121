/**
 * buildApp(config, pool): the fastify instance with its plugins and routes, never listening.
 * Tests drive it with app.inject(); cli.ts calls listen().
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { apiKeyAuth, requiresApiKey } from './api/auth.js';
import { completionsRoutes } from './api/completions.js';
import { errorHandling } from './api/errors.js';
import { infoRoutes } from './api/info.js';
import { jsonBodyParser } from './api/json-body.js';
import { healthRoutes } from './api/health.js';
import { modelRoutes } from './api/models.js';
import { openrlhfRoutes } from './api/openrlhf.js';
import { ErrorBody } from './api/schemas.js';
import { scoreRoutes } from './api/score.js';
import { SESSION_HEADER, sessionHeaderSchema, sessionIds } from './api/session.js';
import { tokenizeRoutes } from './api/tokenize.js';
import { trajectoryRoutes } from './api/trajectories.js';
import { uiRoutes } from './api/ui.js';
import { weaveRoutes } from './api/weave.js';
import type { RouteContext } from './api/context.js';
import { PACKAGE_ROOT, type Config } from './config.js';
import { ServiceError } from './errors.js';
import { Metrics } from './metrics.js';
import type { ScorerPool } from './pool.js';

export interface AppOptions {
  metrics?: Metrics;
  /** Fastify logger options, or a ready pino logger (cli.ts passes one). */
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger | false;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Sequences this request sent to the engine (set by runScoring), for the request log line. */
    scoredRows?: number;
  }
}

export interface App extends FastifyInstance {
  /** Set by the shutdown path: /ready answers 503 and new scoring requests are refused. */
  drainState: { draining: boolean };
}

function openapiOptions() {
  const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8'));
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'progress-advantage-server',
        version: pkg.version as string,
        description:
          'Scores agent steps with the progress advantage β·log π(a|s)/π_ref(a|s) of an RL-trained policy π and its reference π_ref. ' +
          'Every error answers `{ "error": { "code", "message" } }`.',
      },
      tags: [
        { name: 'score', description: 'Scoring' },
        { name: 'protocols', description: 'Other frameworks\' protocols over the same scoring (OpenRLHF, W&B Weave, OpenAI-style log-probs)' },
        { name: 'info', description: 'Scorers and limits' },
        { name: 'ops', description: 'Health and readiness' },
      ],
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http' as const,
            scheme: 'bearer',
            description: 'Needed only when the server runs with --api-key / PA_API_KEY / --api-key-file',
          },
        },
      },
    },
    // Routes behind the API key carry bearer security and its 401 in the document (src/api/auth.ts decides).
    transform: ({ schema, url }: { schema: any; url: string }) => {
      schema = withSessionHeader(schema);
      if (!requiresApiKey(url) || schema?.hide) return { schema, url };
      const response = { ...(schema.response ?? {}), 401: { $ref: 'ErrorBody' } };
      return { schema: { ...schema, security: [{ apiKey: [] }], response }, url };
    },
  };
}

/** Scoring routes (tag `score`) document the `x-session-id` header (src/api/session.ts). */
function withSessionHeader(schema: any): any {
  if (!schema || schema.hide || !Array.isArray(schema.tags) || !schema.tags.includes('score')) return schema;
  const headers = schema.headers ?? { type: 'object', properties: {} };
  return { ...schema, headers: { ...headers, properties: { ...headers.properties, [SESSION_HEADER]: sessionHeaderSchema } } };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** CSP hash of the one <style> element @fastify/swagger-ui's bundle (swagger-ui 5) inserts at run time. */
const SWAGGER_UI_STYLE_HASH = 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w=';

export function buildApp(config: Config, pool: ScorerPool, options: AppOptions = {}): App {
  const metrics = options.metrics ?? new Metrics();
  const logger = options.logger;
  const isLoggerInstance = typeof logger === 'object' && logger !== null && typeof (logger as FastifyBaseLogger).child === 'function';
  const app = Fastify({
    // fastify 5 takes a ready logger only as loggerInstance.
    ...(isLoggerInstance ? { loggerInstance: logger as FastifyBaseLogger } : { logger: (logger as FastifyServerOptions['logger']) ?? false }),
    bodyLimit: config.body_limit,
    // While closing, fastify's own 503 body is not our error shape; the drain hook below answers
    // 503 shutting_down instead (and /ready says draining).
    return503OnClosing: false,
    // Our own onResponse hook writes the one line per request; fastify's own lines are off.
    logController: new LogController({ disableRequestLogging: true }),
    // An honest contract: no type coercion, no silently dropped fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    },
  }) as unknown as App;
  app.drainState = { draining: false };
  const ctx: RouteContext = { config, pool, metrics };

  app.addSchema(ErrorBody);
  errorHandling(app, metrics);
  jsonBodyParser(app);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  sessionIds(app);
  apiKeyAuth(app, config);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-total-time', (reply.elapsedTime).toFixed(3));
    // While draining, a keep-alive socket left open after its last answer would hold server.close()
    // (and so the process exit) until keepAliveTimeout; ask the client to close it instead.
    if (app.drainState.draining) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    metrics.requestDuration.observe({ route }, reply.elapsedTime / 1000);
    // request.log already binds reqId (fastify's child logger): not repeated here.
    request.log.info(
      {
        route,
        method: request.method,
        status: reply.statusCode,
        total_ms: Number(reply.elapsedTime.toFixed(3)),
        queue_ms: Number(reply.getHeader('x-queue-time') ?? 0) || undefined,
        inference_ms: Number(reply.getHeader('x-inference-time') ?? 0) || undefined,
        tokenization_ms: Number(reply.getHeader('x-tokenization-time') ?? 0) || undefined,
        rows: request.scoredRows,
      },
      'request',
    );
  });

  // swagger first: its onRoute hook must see every route registered after it.
  app.register(swagger, openapiOptions());
  app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { deepLinking: false },
    // Offline: every asset is served from /docs/static; the policy allows nothing else (no CDN, no
    // validator.swagger.io) and does not upgrade to https, which would break plain-HTTP sidecars.
    // swagger-ui-bundle.js inserts one <style> element of its own: allowed by its hash, nothing
    // else inline (test/ui/pages.test.ts loads the page in Chromium and fails on any violation).
    staticCSP:
      "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; frame-ancestors 'self'; " +
      "img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; " +
      `style-src 'self' '${SWAGGER_UI_STYLE_HASH}'`,
  });
  app.register(async (scoped) => healthRoutes(scoped, ctx, app.drainState));
  app.register(async (scoped) => {
    scoped.addHook('onRequest', async () => {
      if (app.drainState.draining) {
        throw new ServiceError(503, 'shutting_down', 'the server is shutting down', { connection: 'close' });
      }
    });
    scoreRoutes(scoped, ctx);
    trajectoryRoutes(scoped, ctx);
    tokenizeRoutes(scoped, ctx);
    modelRoutes(scoped, ctx);
    infoRoutes(scoped, ctx);
    openrlhfRoutes(scoped, ctx);
    weaveRoutes(scoped, ctx);
    completionsRoutes(scoped, ctx);
  });

  app.register(async (scoped) => {
    scoped.get('/metrics', { schema: { hide: true } as object }, async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
    scoped.get('/openapi.yaml', { schema: { hide: true } as object }, async (_request, reply) => {
      reply.type('application/yaml');
      return fs.readFileSync(path.join(PACKAGE_ROOT, 'openapi.yaml'), 'utf8');
    });
    uiRoutes(scoped);
  });
  return app;
}
