/**
 * POST /get_reward: OpenRLHF's remote reward model protocol (openrlhf/utils/remote_rm_utils.py
 * sends `{query, prompts, labels}`; openrlhf/cli/serve_rm.py answers `{rewards, scores,
 * extra_logs}`). Each query is its prompt followed by the response; the reward is the response's
 * progress advantage, computed exactly as POST /v1/score computes it for that prompt and step.
 *
 * Options travel in the URL, since OpenRLHF sends a fixed body: `--remote_rm_url
 * http://host:8080/get_reward?model=NAME&token_aggregate=mean&beta=0.05`.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ServiceError, badRequest, unprocessable } from '../errors.js';
import { resolveBeta } from '../pipeline/options.js';
import { compileScoreRequest, scoreResult, type ScoreItem } from '../pipeline/score.js';
import type { TokenAggregate } from '../scoring/index.js';
import { runScoring, type RouteContext } from './context.js';
import { TokenAggregate as TokenAggregateSchema, errorResponses } from './schemas.js';

export function rewardRequestSchema(maxItems: number) {
  return Type.Object(
    {
      query: Type.Array(Type.String(), { minItems: 1, maxItems, description: 'Each prompt followed by its response (OpenRLHF: prompt + response, decoded)' }),
      prompts: Type.Optional(Type.Array(Type.String(), { maxItems, description: 'The prompt of each query; query[i] must start with prompts[i]' })),
      labels: Type.Optional(Type.Union([Type.Array(Type.Unknown(), { maxItems }), Type.Null()], { description: 'Accepted and ignored (the pair needs no reference answer)' })),
    },
    { additionalProperties: false },
  );
}

const RewardQuery = Type.Object(
  {
    model: Type.Optional(Type.String({ description: 'Scorer name; default: "default"' })),
    token_aggregate: Type.Optional(TokenAggregateSchema),
    beta: Type.Optional(Type.String({ pattern: '^[0-9]*\\.?[0-9]+([eE][-+]?[0-9]+)?$', description: 'KL coefficient β; default: the scorer\'s' })),
  },
  { additionalProperties: false },
);

const RewardResponse = Type.Object({
  rewards: Type.Array(Type.Number(), { description: 'Progress advantage of each response (β · aggregated log π/π_ref over its tokens)' }),
  scores: Type.Array(Type.Number(), { description: 'The same values (OpenRLHF reads scores for dynamic filtering)' }),
  extra_logs: Type.Object({
    policy_logprob: Type.Array(Type.Number(), { description: 'Σ log π over each response\'s tokens' }),
    reference_logprob: Type.Array(Type.Number(), { description: 'Σ log π_ref over each response\'s tokens' }),
    num_tokens: Type.Array(Type.Integer(), { description: 'Response tokens scored' }),
  }),
});

interface RewardBody {
  query: string[];
  prompts?: string[];
  labels?: unknown[] | null;
}

/** The response of each query: what follows its prompt. */
export function splitQueries(query: readonly string[], prompts: readonly string[] | undefined): { prompt: string; response: string }[] {
  if (prompts === undefined) {
    throw badRequest('missing_prompts', 'give prompts (the prompt of each query): the response is the query after its prompt');
  }
  if (prompts.length !== query.length) {
    throw badRequest('length_mismatch', `query has ${query.length} entries but prompts has ${prompts.length}; they must pair up`);
  }
  return query.map((q, i) => {
    if (!q.startsWith(prompts[i])) {
      const err = unprocessable('prompt_not_prefix', `prompts[${i}] is not a prefix of query[${i}]; each query must be its prompt followed by the response`);
      err.item = i;
      throw err;
    }
    return { prompt: prompts[i], response: q.slice(prompts[i].length) };
  });
}

export function openrlhfRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post(
    '/get_reward',
    {
      schema: {
        tags: ['protocols'],
        summary: 'OpenRLHF remote reward model: the progress advantage of each response',
        description:
          'The body OpenRLHF\'s remote_rm_utils sends; the answer serve_rm gives. rewards[i] is the progress advantage of ' +
          'query[i] after prompts[i], the number POST /v1/score gives for {prompt, step: response}. Options go in the query string ' +
          '(model, token_aggregate, beta), since OpenRLHF\'s body is fixed.',
        querystring: RewardQuery,
        body: rewardRequestSchema(ctx.config.max_items),
        response: { 200: RewardResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body as RewardBody;
      const options = request.query as { model?: string; token_aggregate?: TokenAggregate; beta?: string };
      const scorer = ctx.pool.get(options.model);
      const beta = options.beta === undefined ? undefined : Number(options.beta);
      resolveBeta(beta, scorer); // the URL's β is no query's fault
      const pairs = splitQueries(body.query, body.prompts);
      // Exactly /v1/score's items: {prompt, step: response}, with the URL's options for all of them.
      const score = {
        items: pairs.map((p): ScoreItem => ({ prompt: p.prompt, step: p.response })),
        token_aggregate: options.token_aggregate,
        beta,
      };
      let items: ScoreItem[] = [];
      const { sequences, scores } = await runScoring(request, reply, ctx, scorer, () => {
        try {
          const compiled = compileScoreRequest(score, scorer);
          items = compiled.items;
          return compiled.compiled.map((c) => c.sequence);
        } catch (err) {
          // error.item is the query's index; the message says so too.
          if (err instanceof ServiceError && err.item !== undefined) err.message = `query[${err.item}]: ${err.message}`;
          throw err;
        }
      });
      const results = items.map((item, i) => scoreResult(item, sequences[i], scores[i], scorer) as { advantage: number; policy_logprob: number; reference_logprob: number; num_tokens: number });
      const rewards = results.map((r) => r.advantage);
      return {
        rewards,
        scores: rewards,
        extra_logs: {
          policy_logprob: results.map((r) => r.policy_logprob),
          reference_logprob: results.map((r) => r.reference_logprob),
          num_tokens: results.map((r) => r.num_tokens),
        },
      };
    },
  );
}
