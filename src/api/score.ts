/**
 * POST /v1/score (and its alias POST /score): one step, or {items:[...]} many.
 * Thin: compile (text/) → engine → scoring/ → JSON.
 */
import type { FastifyInstance } from 'fastify';
import { advantageFor, batchItems, compileLimits, resolveBeta, tokenDetail, type ScoringOptions } from '../pipeline/options.js';
import { stepContexts } from '../pipeline/windows.js';
import type { Scorer } from '../pool.js';
import type { Sequence, TokenScores } from '../sequence.js';
import { compileStep } from '../text/compile.js';
import { errorResponses, ScoreResponse, scoreRequestSchema, type ScoreItem, type ScoreRequest } from './schemas.js';
import { runScoring, type RouteContext } from './context.js';

const OPTION_KEYS = ['beta', 'token_aggregate', 'token_aggregate_mode', 'return_tokens', 'truncate', 'long_context'] as const;
/** What one step is made of: per item only, never request-wide. */
const STEP_FIELDS = ['prompt', 'prompt_ids', 'step', 'step_ids'] as const;


function scoreResult(item: ScoreItem, seq: Sequence, scores: TokenScores, scorer: Scorer) {
  const beta = resolveBeta(item.beta, scorer);
  const r = advantageFor(scores, beta, item as ScoringOptions);
  const span = seq.spans[0];
  const result: Record<string, unknown> = {
    advantage: r.advantage,
    log_ratio: r.logRatio,
    beta,
    policy_logprob: r.policyLogprob,
    reference_logprob: r.referenceLogprob,
    num_tokens: span.end - span.start,
    truncated: (seq.truncatedTokens ?? 0) > 0,
    partial: span.partial === true,
    ...stepContexts(seq, scorer.maxLength)[0],
  };
  if (item.return_tokens) result.tokens = tokenDetail(scorer, seq.ids.slice(span.start, span.end), scores.policy, scores.reference);
  return result;
}

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
    const body = request.body as ScoreRequest;
    const scorer = ctx.pool.get(body.model);
    const items = body.items ? batchItems<ScoreItem>({ ...body, items: body.items }, OPTION_KEYS, STEP_FIELDS) : [body as ScoreItem];
    for (const item of items) resolveBeta(item.beta, scorer); // reject a bad β before any work
    const { sequences, scores, usage } = await runScoring(request, reply, ctx, scorer, () =>
      items.map((item) => compileStep(item, scorer.tokenizer, compileLimits(scorer, item))),
    );
    const results = items.map((item, i) => scoreResult(item, sequences[i], scores[i], scorer));
    return body.items ? { model: scorer.name, results, usage } : { model: scorer.name, ...results[0], usage };
  };
  app.post('/v1/score', { schema: { ...schema, tags: ['score'] } }, handler);
  app.post('/score', { schema: { ...schema, tags: ['score'], summary: 'Alias of POST /v1/score' } }, handler);
}
