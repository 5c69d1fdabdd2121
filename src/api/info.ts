/**
 * GET /v1/info: what is running — service version, runtime versions, each scorer (β, devices,
 * vocabulary, max length) and the request limits. For operators and for agents that adapt to
 * the limits.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PACKAGE_ROOT } from '../config.js';
import type { RouteContext } from './context.js';
import { describeModel, serviceLimits } from './models.js';
import { errorResponses, ReferenceMergeInfo } from './schemas.js';

const ModelFile = Type.Object({
  file: Type.String({ description: 'The ONNX file loaded' }),
  sha256: Type.String(),
  provider: Type.String({ description: 'Execution provider actually used (cpu, cuda, cuda:N)' }),
  merge: Type.Optional(ReferenceMergeInfo),
});

export const InfoResponse = Type.Object({
  name: Type.Literal('progress-advantage-server'),
  version: Type.String({ description: 'Service version (package.json)' }),
  runtime: Type.Object({
    node: Type.String({ description: 'Node.js version' }),
    onnxruntime: Type.String({ description: 'onnxruntime-node version' }),
  }),
  auth: Type.Object({ api_key_required: Type.Boolean({ description: '/v1/* needs Authorization: Bearer <key>' }) }),
  scorers: Type.Array(
    Type.Object({
      name: Type.String(),
      beta: Type.Number({ description: 'KL coefficient β applied by default' }),
      device: Type.String({ description: 'Configured device: cpu, cuda, cuda:N or auto' }),
      vocab_size: Type.Integer(),
      max_length: Type.Integer({ description: 'Longest sequence (context + step) one forward pass takes' }),
      policy: ModelFile,
      reference: ModelFile,
    }),
  ),
  limits: Type.Object({
    max_items: Type.Integer({ description: 'Items per request' }),
    max_batch_tokens: Type.Integer({ description: 'Rows × padded length per forward batch' }),
    max_batch_rows: Type.Integer(),
    max_queue: Type.Integer({ description: 'Queued rows before 429' }),
    max_wait_ms: Type.Number(),
    body_limit: Type.Integer({ description: 'Request body limit in bytes' }),
  }),
});

function packageVersion(file: string): string {
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

/** Read from package.json files: importing onnxruntime-node here would load its native library on the HTTP thread. */
function versions(): { service: string; onnxruntime: string } {
  const require = createRequire(import.meta.url);
  return {
    service: packageVersion(path.join(PACKAGE_ROOT, 'package.json')),
    onnxruntime: packageVersion(require.resolve('onnxruntime-node/package.json')),
  };
}

export function infoRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service, onnxruntime } = versions();
  app.get(
    '/v1/info',
    {
      schema: {
        summary: 'Service and runtime versions, scorers (β, devices, vocabulary, max length) and limits',
        tags: ['info'],
        response: { 200: InfoResponse, 503: errorResponses[503] },
      },
    },
    async () => {
      ctx.pool.get(); // 503 while the models load
      return {
        name: 'progress-advantage-server' as const,
        version: service,
        runtime: { node: process.versions.node, onnxruntime },
        auth: { api_key_required: ctx.config.api_key !== undefined },
        scorers: ctx.pool.list().map((s) => ({
          name: s.name,
          beta: s.beta,
          device: s.device,
          vocab_size: s.vocabSize,
          max_length: s.maxLength,
          policy: describeModel(s.engine.policyInfo),
          reference: describeModel(s.engine.referenceInfo),
        })),
        limits: serviceLimits(ctx.config),
      };
    },
  );
}
