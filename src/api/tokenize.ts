/**
 * POST /v1/tokenize: takes any body /v1/score, /v1/trajectories/score, /v1/rank or /v1/attribute
 * takes and answers what that route would score (ids, BOS, pieces with their spans, truncation),
 * through the same pipeline compile functions, without running the models.
 */
import { Type, type TObject, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../errors.js';
import { tokenizeBody, tokenizeResult, type TokenizeKind } from '../pipeline/tokenize.js';
import type { RouteContext } from './context.js';
import { errorResponses, ScoreItem, scoreRequestSchema } from './schemas.js';
import { AttributeRequest, rankRequestSchema, TrajectoryItem, trajectoryRequestSchema } from './trajectory-schemas.js';

const STEP_FIELDS = ['prompt', 'prompt_ids', 'step', 'step_ids'];

const TokenizedPiece = Type.Object({
  text: Type.Union([Type.String(), Type.Null()], { description: 'The piece\'s rendered text (message, prompt, step); null for given ids' }),
  start: Type.Integer({ description: 'First token of the piece in ids' }),
  end: Type.Integer({ description: 'One past its last token' }),
  scored: Type.Boolean({ description: 'Its tokens are scored (a step)' }),
  step: Type.Optional(Type.Integer({ description: 'The step index (message/segment index; 0 for /v1/score)' })),
  role: Type.Optional(Type.String()),
  agent: Type.Optional(Type.String({ description: 'The step\'s agent: its name where it has one, else its role' })),
  truncated: Type.Optional(Type.Boolean({ description: 'Left truncation removed (some of) its tokens' })),
  partial: Type.Optional(Type.Boolean({ description: 'long_context "truncate": a step too long for one pass; only its most recent tokens are scored' })),
});

export const TokenizeResult = Type.Object({
  tokenization: Type.Union([Type.Literal('paper'), Type.Literal('joint')]),
  ids: Type.Array(Type.Integer(), { description: 'Exactly the ids one forward pass sees' }),
  bos_added: Type.Boolean({ description: 'ids[0] is a BOS the service put in front' }),
  added_tokens: Type.Array(Type.Integer(), { description: 'Positions of the special tokens the service added (BOS; joint: the post-processor\'s)' }),
  num_tokens: Type.Integer(),
  truncated_tokens: Type.Integer({ description: 'Context tokens dropped from the left to fit the max length' }),
  pieces: Type.Array(TokenizedPiece),
  spans: Type.Array(
    Type.Object({
      index: Type.Integer(),
      start: Type.Integer(),
      end: Type.Integer(),
      truncated: Type.Optional(Type.Boolean()),
      partial: Type.Optional(Type.Boolean()),
    }),
    { description: 'The scored spans: token k of a span is scored by the log-prob at position k − 1' },
  ),
  windows: Type.Array(
    Type.Object({
      start: Type.Integer({ description: 'The row is the pinned BOS (if any), then ids[start..end)' }),
      end: Type.Integer(),
      scored: Type.Array(Type.Array(Type.Integer(), { minItems: 2, maxItems: 2 }), { description: '[start, end) of the tokens this window scores, in ids' }),
    }),
    {
      description:
        'The rows the models run: one when the sequence fits the max length; long_context "window": overlapping windows of at most max length tokens, each token scored in exactly one',
    },
  ),
});

const TokenizeResponse = Type.Union([
  Type.Composite([Type.Object({ model: Type.String() }), TokenizeResult]),
  Type.Object({ model: Type.String(), results: Type.Array(TokenizeResult, { description: 'One per item or candidate, in order' }) }),
]);

const props = (schema: TSchema) => (schema as TObject).properties;
/** Every field optional: which route's fields a body needs is checked by that route's compile. */
const optional = (fields: Record<string, TSchema>) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Type.Optional(v)]));

function kindOf(body: Record<string, unknown>): TokenizeKind {
  if (body.candidates !== undefined) return 'rank';
  if (body.method !== undefined) return 'attribute';
  if (Array.isArray(body.items)) {
    const stepLike = body.items.some((it) => it && typeof it === 'object' && STEP_FIELDS.some((f) => (it as Record<string, unknown>)[f] !== undefined));
    return stepLike || STEP_FIELDS.some((f) => body[f] !== undefined) ? 'score' : 'trajectories';
  }
  return STEP_FIELDS.some((f) => body[f] !== undefined) ? 'score' : 'trajectories';
}

export function tokenizeRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const max = ctx.config.max_items;
  const routes: Record<TokenizeKind, { route: string; fields: Record<string, TSchema>; item?: Record<string, TSchema> }> = {
    score: { route: '/v1/score', fields: props(scoreRequestSchema(max)), item: props(ScoreItem) },
    trajectories: { route: '/v1/trajectories/score', fields: props(trajectoryRequestSchema(max)), item: props(TrajectoryItem) },
    rank: { route: '/v1/rank', fields: props(rankRequestSchema(max)) },
    attribute: { route: '/v1/attribute', fields: props(AttributeRequest) },
  };
  const items = Type.Array(Type.Object(optional({ ...props(ScoreItem), ...props(TrajectoryItem) }), { additionalProperties: false }), { minItems: 1, maxItems: max });
  const body = Type.Object(
    optional({ ...routes.attribute.fields, ...routes.rank.fields, ...routes.trajectories.fields, ...routes.score.fields, items }),
    { additionalProperties: false, description: 'Any body of /v1/score, /v1/trajectories/score, /v1/rank or /v1/attribute' },
  );

  app.post(
    '/v1/tokenize',
    {
      schema: {
        tags: ['score'],
        summary: 'What a scoring route would score: ids, BOS, pieces and their spans, truncation',
        description:
          'Takes any body that /v1/score, /v1/trajectories/score, /v1/rank or /v1/attribute takes (which one is read from its fields: ' +
          '`candidates` → rank, `method` → attribute, a step → score, else trajectories) and compiles it exactly as that route does, without running the models.',
        body,
        response: { 200: TokenizeResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body as Record<string, unknown>;
      const scorer = ctx.pool.get(b.model as string | undefined);
      const kind = kindOf(b);
      const { route, fields, item } = routes[kind];
      for (const key of Object.keys(b)) {
        if (!(key in fields)) throw badRequest('unknown_field', `field ${JSON.stringify(key)} is not part of a ${route} body`);
      }
      if (Array.isArray(b.items) && item) {
        b.items.forEach((it, i) => {
          for (const key of Object.keys(it as object)) {
            if (!(key in item)) throw badRequest('unknown_field', `field ${JSON.stringify(key)} at /items/${i} is not part of a ${route} item`);
          }
        });
      }
      const t0 = performance.now();
      const { compiled, many } = tokenizeBody(kind, b, scorer);
      reply.header('x-tokenization-time', (performance.now() - t0).toFixed(3));
      const results = compiled.map((c) => tokenizeResult(c, scorer.maxLength));
      return many ? { model: scorer.name, results } : { model: scorer.name, ...results[0] };
    },
  );
}
