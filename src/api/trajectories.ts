/**
 * POST /v1/trajectories/score, POST /v1/attribute and POST /v1/rank: thin HTTP over
 * pipeline/ (compile → engine → scoring/).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Scorer } from '../pool.js';
import type { AttributionMethod } from '../scoring/index.js';
import {
  attributeResult,
  compileTrajectoryBody,
  compileTrajectoryRequest,
  trajectoryResult,
  type CompiledTrajectory,
  type TrajectoryBody,
  type TrajectoryRequest,
} from '../pipeline/trajectory.js';
import { compileRank, rankResult, type RankRequest } from '../pipeline/rank.js';
import { runScoring, type RouteContext } from './context.js';
import { errorResponses } from './schemas.js';
import {
  AttributeRequest,
  AttributeResponse,
  RankResponse,
  rankRequestSchema,
  trajectoryRequestSchema,
  TrajectoryResponse,
} from './trajectory-schemas.js';

async function scoreCompiled(request: FastifyRequest, reply: FastifyReply, ctx: RouteContext, model: string | undefined, compileAll: (scorer: Scorer) => CompiledTrajectory[]) {
  const scorer = ctx.pool.get(model);
  let compiled: CompiledTrajectory[] = [];
  const { sequences, scores, report } = await runScoring(
    request,
    reply,
    ctx,
    scorer,
    () => {
      compiled = compileAll(scorer);
      return compiled.map((c) => c.sequence);
    },
    {
      get stats() {
        return compiled.some((c) => c.request.baselines === true);
      },
    },
  );
  return { scorer, compiled, sequences, scores, report };
}

export function trajectoryRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post(
    '/v1/trajectories/score',
    {
      schema: {
        tags: ['score'],
        summary: 'Per-step progress advantages of whole trajectories, one forward pass per model each',
        description:
          'Give `messages` (OpenAI form), `segments`, or `format` + `data` (one record of a supported dataset); or `items` for many. ' +
          'Steps are the messages whose role (or agent name) is in `action_roles` (default assistant).',
        body: trajectoryRequestSchema(ctx.config.max_items),
        response: { 200: TrajectoryResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body as TrajectoryBody;
      const { scorer, compiled, scores, report } = await scoreCompiled(request, reply, ctx, body.model, (s) => compileTrajectoryBody(body, s));
      const results = compiled.map((c, i) => trajectoryResult(c, scores[i], scorer));
      return body.items ? { model: scorer.name, results, ...report } : { model: scorer.name, ...results[0], ...report };
    },
  );

  app.post(
    '/v1/attribute',
    {
      schema: {
        tags: ['score'],
        summary: 'The step, and the agent, where a failed trajectory went wrong',
        description: 'Scores the trajectory like /v1/trajectories/score, then blames one step by `method` (design §1).',
        body: AttributeRequest,
        response: { 200: AttributeResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { model, method, timeout_ms: _t, ...trajectory } = request.body as TrajectoryRequest & { model?: string; method?: AttributionMethod; timeout_ms?: number };
      const { scorer, compiled, scores } = await scoreCompiled(request, reply, ctx, model, (s) => [compileTrajectoryRequest(trajectory, s)]);
      const result = trajectoryResult(compiled[0], scores[0], scorer);
      return {
        model: scorer.name,
        ...attributeResult(result, method ?? 'min_cumulative'),
        beta: result.beta,
        steps: result.steps,
        ...(result.labels ? { labels: result.labels } : {}),
      };
    },
  );

  app.post(
    '/v1/rank',
    {
      schema: {
        tags: ['score'],
        summary: 'Best-of-N: rank candidates that continue one prompt',
        description:
          'Each candidate (a step, a list of steps, or a list of messages) is scored by `step_aggregate` (default sum) of its steps\' progress advantages; all N go through the engine together.',
        body: rankRequestSchema(ctx.config.max_items),
        response: { 200: RankResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body as RankRequest & { model?: string };
      const scorer = ctx.pool.get(body.model);
      const { sequences, scores, report } = await runScoring(request, reply, ctx, scorer, () => compileRank(body, scorer).map((c) => c.sequence));
      return { model: scorer.name, ...rankResult(body, sequences, scores, scorer), ...report };
    },
  );
}
