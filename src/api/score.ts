/**
 * POST /v1/score (and its alias POST /score): one step, or {items:[...]} many.
 * Thin: pipeline/score (compile) → engine → pipeline/score (result) → JSON.
 */
import type { FastifyInstance } from 'fastify';
import { compileScoreRequest, scoreResult, type ScoreBody } from '../pipeline/score.js';
import { errorResponses, ScoreResponse, scoreRequestSchema } from './schemas.js';
import { runScoring, type RouteContext } from './context.js';

export function scoreRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const schema = {
    summary: 'Progress advantage of one step, or of many steps',
    description:
      'advantage = β · Σ_k [log π(y_k | context) − log π_ref(y_k | context)] over the step tokens y_k (design §1). ' +
      'Give `prompt`+`step` as text, or `prompt_ids`+`step_ids` as exact token ids, or `items` for many.',
    body: scoreRequestSchema(ctx.config.max_items),
    response: { 200: ScoreResponse, ...errorResponses },
  };
  const handler = async (request: any, reply: any) => {
    const body = request.body as ScoreBody;
    const scorer = ctx.pool.get(body.model);
    let items: ReturnType<typeof compileScoreRequest>['items'] = [];
    const { sequences, scores, report } = await runScoring(request, reply, ctx, scorer, () => {
      const compiled = compileScoreRequest(body, scorer);
      items = compiled.items;
      return compiled.compiled.map((c) => c.sequence);
    });
    const results = items.map((item, i) => scoreResult(item, sequences[i], scores[i], scorer));
    return body.items ? { model: scorer.name, results, ...report } : { model: scorer.name, ...results[0], ...report };
  };
  app.post('/v1/score', { schema: { ...schema, tags: ['score'] } }, handler);
  app.post('/score', { schema: { ...schema, tags: ['score'], summary: 'Alias of POST /v1/score' } }, handler);
}
