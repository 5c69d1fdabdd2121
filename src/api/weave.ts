/**
 * POST /v1/weave/score: a W&B Weave remote scorer (wandb/weave examples/remote_scorer/README.md).
 *
 * Dispatch: the top-level `schema_version` first (1: the call is `original_call`; 2: the target
 * is `scoring_target`), then the pair `(scoring_target.type, scoring_target.schema_version)`:
 * `("call", 1)` (the same object V1 sends) or `("agent_turn", 1)`. Any other pair is a 400
 * `unsupported_scoring_target_type`, which Weave does not retry.
 *
 * What is scored (through the /v1/rank pipeline, the output as the one candidate):
 *   call        inputs → a user message, output → the assistant message that is the step
 *   agent_turn  messages.system_instructions → a system message, messages.input → the context,
 *               messages.output → the turn; its assistant messages are the scored steps
 * A value is its own text when it is a string, else its JSON; an object with one field is that
 * field's value. A `content` that is a JSON-encoded array of parts is decoded (text parts → text,
 * tool_call parts → tool calls, anything else → its JSON).
 *
 * Answer: HTTP 200 `{schema_version: <the request's>, result: [rating, tag]}`, where
 *   rating = σ(A / scale) ∈ [0, 1], A the progress advantage of the output (sum over its steps)
 *   tag    = "advancing" when rating ≥ 0.6, "regressing" when rating ≤ 0.4, else "neutral"
 *            (|A| < scale · ln 1.5 is neutral)
 * and each carries a `reason` with the raw advantage and log-ratio. `scorer.config` (the mapping
 * set on the RemoteScorer) may hold `model`, `scale` (> 0, default 1), `beta` and
 * `token_aggregate`; other keys, and every field this route does not read, are ignored, as the
 * contract asks.
 *
 * Errors keep the service's shape (Weave only logs them); 429 and 5xx only for temporary
 * conditions (overload, loading, shutting down, timeouts), which Weave retries.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { badRequest, unprocessable } from '../errors.js';
import { compileRank, rankResult, type RankRequest } from '../pipeline/rank.js';
import type { TokenAggregate } from '../scoring/index.js';
import type { Message, ToolCall } from '../text/messages.js';
import { runScoring, type RouteContext } from './context.js';
import { errorResponses } from './schemas.js';

/** Weave's limit on request and response bodies. */
export const WEAVE_BODY_LIMIT = 1024 * 1024;
export const TAG_MAX_LENGTH = 36;
const TAG_UPPER = 0.6;
const TAG_LOWER = 0.4;

const OpenObject = (description: string) => Type.Object({}, { additionalProperties: true, description });

const WeaveRequest = Type.Object(
  {
    schema_version: Type.Integer({ description: '1: the call is in original_call; 2: the target is in scoring_target' }),
    original_call: Type.Optional(OpenObject('V1: the traced call (inputs, output, ...)')),
    scoring_target: Type.Optional(
      Type.Object(
        {
          type: Type.String({ description: '"call" or "agent_turn"' }),
          schema_version: Type.Integer({ description: 'Version of the payload for that type (1)' }),
          payload: OpenObject('The call, or the agent turn (messages.system_instructions, input, output)'),
        },
        { additionalProperties: true },
      ),
    ),
    scorer: Type.Optional(
      Type.Object(
        { config: Type.Optional(OpenObject('model, scale, beta, token_aggregate; other keys are ignored')) },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true, description: 'The Weave remote scorer envelope; fields not listed are ignored, as the contract asks' },
);

const ScoreObject = Type.Object({
  value: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.String({ maxLength: TAG_MAX_LENGTH })]),
  reason: Type.String(),
});

const WeaveResponse = Type.Object({
  schema_version: Type.Integer({ description: 'The request\'s schema_version' }),
  result: Type.Array(ScoreObject, { description: 'A rating σ(A / scale) in [0, 1], then a tag: advancing, neutral or regressing' }),
});

interface ScorerSettings {
  model?: string;
  scale: number;
  beta?: number;
  token_aggregate?: TokenAggregate;
}

const TOKEN_AGGREGATES = new Set(['sum', 'mean', 'min', 'max', 'last']);

function settingsOf(body: Record<string, any>): ScorerSettings {
  const config = body.scorer?.config;
  if (config === undefined || config === null) return { scale: 1 };
  if (typeof config !== 'object' || Array.isArray(config)) throw badRequest('invalid_scorer_config', 'scorer.config must be an object');
  const { model, scale = 1, beta, token_aggregate } = config as Record<string, unknown>;
  if (model !== undefined && typeof model !== 'string') throw badRequest('invalid_scorer_config', 'scorer.config.model must be a scorer name');
  if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale)) {
    throw badRequest('invalid_scorer_config', 'scorer.config.scale must be a number > 0 (the advantage per logistic unit)');
  }
  if (beta !== undefined && typeof beta !== 'number') throw badRequest('invalid_scorer_config', 'scorer.config.beta must be a number');
  if (token_aggregate !== undefined && !TOKEN_AGGREGATES.has(token_aggregate as string)) {
    throw badRequest('invalid_scorer_config', 'scorer.config.token_aggregate must be sum, mean, min, max or last');
  }
  return { model: model as string | undefined, scale, beta: beta as number | undefined, token_aggregate: token_aggregate as TokenAggregate | undefined };
}

/** `(type, schema_version, payload)` of either envelope version. */
export function scoringTarget(body: Record<string, any>): { type: string; version: number; payload: Record<string, any> } {
  const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (body.schema_version === 1) {
    if (!isObject(body.original_call)) throw badRequest('invalid_request', 'a schema_version 1 request carries the call in original_call');
    return { type: 'call', version: 1, payload: body.original_call };
  }
  if (body.schema_version === 2) {
    const target = body.scoring_target;
    if (!isObject(target)) throw badRequest('invalid_request', 'a schema_version 2 request carries scoring_target');
    if (!isObject(target.payload)) throw badRequest('invalid_request', 'scoring_target.payload must be an object');
    return { type: target.type, version: target.schema_version, payload: target.payload };
  }
  throw badRequest('unsupported_schema_version', `schema_version ${JSON.stringify(body.schema_version)} is not supported (1 or 2)`);
}

/** A value as text: a string is itself; an object with one field is that field's text; anything else its JSON. */
export function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1) return valueText((value as Record<string, unknown>)[keys[0]]);
  }
  return JSON.stringify(value) ?? '';
}

function callMessages(call: Record<string, any>): { context: Message[]; turn: Message[] } {
  if (call.output === undefined || call.output === null) throw unprocessable('no_output', 'the call has no output to score');
  return {
    context: [{ role: 'user', content: valueText(call.inputs ?? {}) }],
    turn: [{ role: 'assistant', content: valueText(call.output) }],
  };
}

const isPartList = (v: unknown): v is Record<string, unknown>[] =>
  Array.isArray(v) && v.length > 0 && v.every((p) => p && typeof p === 'object' && !Array.isArray(p) && typeof (p as { type?: unknown }).type === 'string');

/** A Weave message `content`: plain text, or a JSON-encoded array of parts (decoded). */
export function decodeContent(content: unknown): { text: string; toolCalls: ToolCall[] } {
  if (content === null || content === undefined) return { text: '', toolCalls: [] };
  if (typeof content !== 'string') return { text: valueText(content), toolCalls: [] };
  let parts: unknown;
  if (/^\s*\[/.test(content)) {
    try {
      parts = JSON.parse(content);
    } catch {
      parts = undefined;
    }
  }
  if (!isPartList(parts)) return { text: content, toolCalls: [] };
  const texts: string[] = [];
  const toolCalls: ToolCall[] = [];
  for (const part of parts) {
    if (part.type === 'tool_call' && typeof part.name === 'string') {
      const args = part.arguments;
      toolCalls.push({
        ...(typeof part.id === 'string' ? { id: part.id } : {}),
        type: 'function',
        function: { name: part.name, arguments: typeof args === 'string' || (args && typeof args === 'object' && !Array.isArray(args)) ? (args as string | Record<string, unknown>) : JSON.stringify(args ?? {}) },
      });
    } else if (typeof part.content === 'string') texts.push(part.content);
    else if (typeof part.text === 'string') texts.push(part.text);
    else if (part.type === 'tool_call_response' && part.response !== undefined) texts.push(valueText(part.response));
    else texts.push(JSON.stringify(part));
  }
  return { text: texts.join('\n'), toolCalls };
}

function weaveMessage(m: unknown, where: string): Message {
  if (!m || typeof m !== 'object' || Array.isArray(m) || typeof (m as { role?: unknown }).role !== 'string' || (m as { role: string }).role === '') {
    throw badRequest('invalid_message', `${where} must be a message with a role`);
  }
  const { text, toolCalls } = decodeContent((m as { content?: unknown }).content);
  return { role: (m as { role: string }).role, content: text, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
}

function messageList(value: unknown, where: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw badRequest('invalid_message', `${where} must be a list`);
  return value;
}

function agentTurnMessages(turn: Record<string, any>): { context: Message[]; turn: Message[] } {
  const messages = turn.messages;
  if (!messages || typeof messages !== 'object' || Array.isArray(messages)) throw badRequest('invalid_request', 'the agent turn has no messages object');
  const where = 'scoring_target.payload.messages';
  const system = messageList(messages.system_instructions, `${where}.system_instructions`).map((s) =>
    typeof s === 'string' ? s : decodeContent((s as { content?: unknown })?.content ?? s).text,
  );
  const context: Message[] = system.length > 0 ? [{ role: 'system', content: system.join('\n') }] : [];
  messageList(messages.input, `${where}.input`).forEach((m, i) => context.push(weaveMessage(m, `${where}.input[${i}]`)));
  const output = messageList(messages.output, `${where}.output`).map((m, i) => weaveMessage(m, `${where}.output[${i}]`));
  if (!output.some((m) => m.role === 'assistant')) throw unprocessable('no_steps', `${where}.output has no assistant message to score`);
  return { context, turn: output };
}

/** The documented monotone map of an advantage to [0, 1]. */
export function rating(advantage: number, scale: number): number {
  return 1 / (1 + Math.exp(-advantage / scale));
}

export function tagOf(value: number): 'advancing' | 'neutral' | 'regressing' {
  if (value >= TAG_UPPER) return 'advancing';
  if (value <= TAG_LOWER) return 'regressing';
  return 'neutral';
}

export function weaveRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post(
    '/v1/weave/score',
    {
      bodyLimit: Math.min(ctx.config.body_limit, WEAVE_BODY_LIMIT),
      schema: {
        tags: ['protocols'],
        summary: 'W&B Weave remote scorer: a rating and a tag from the progress advantage of a call or an agent turn',
        description:
          'The contract of wandb/weave examples/remote_scorer: schema_version 1 (original_call) or 2 (scoring_target ("call", 1) or ' +
          '("agent_turn", 1)). result[0].value = σ(A / scale); result[1].value = advancing (≥ 0.6), neutral, or regressing (≤ 0.4). ' +
          'scorer.config may set model, scale, beta and token_aggregate. Bodies over 1 MiB answer 413; Idempotency-Key is logged.',
        body: WeaveRequest,
        response: { 200: WeaveResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body as Record<string, any>;
      const header = (name: string) => (typeof request.headers[name] === 'string' ? (request.headers[name] as string) : undefined);
      request.log.info(
        { reqId: request.id, idempotency_key: header('idempotency-key'), correlation_id: header('x-correlation-id'), weave_schema_version: header('x-weave-schema-version') },
        'weave remote scorer request',
      );
      const target = scoringTarget(body);
      const settings = settingsOf(body);
      const key = `${JSON.stringify(target.type)}, ${JSON.stringify(target.version)}`;
      let parts: { context: Message[]; turn: Message[] };
      if (target.type === 'call' && target.version === 1) parts = callMessages(target.payload);
      else if (target.type === 'agent_turn' && target.version === 1) parts = agentTurnMessages(target.payload);
      else throw badRequest('unsupported_scoring_target_type', `scoring target (${key}) is not supported; this scorer takes ("call", 1) and ("agent_turn", 1)`);

      const scorer = ctx.pool.get(settings.model);
      const rank: RankRequest = { messages: parts.context, candidates: [parts.turn], beta: settings.beta, token_aggregate: settings.token_aggregate };
      const { sequences, scores } = await runScoring(request, reply, ctx, scorer, () => compileRank(rank, scorer).map((c) => c.sequence));
      const scored = rankResult(rank, sequences, scores, scorer).candidates[0];
      // Steps the model's max length left unscored are null, never 0: the rating is of the scored ones.
      const kept = scored.steps.filter((s) => s.advantage !== null && s.log_ratio !== null);
      const advantage = scored.advantage;
      if (kept.length === 0 || advantage === null) throw unprocessable('output_truncated', 'the output does not fit in the model\'s max length; nothing of it could be scored');
      const logRatio = kept.reduce((a, s) => a + s.log_ratio!, 0);
      const tokens = kept.reduce((a, s) => a + s.num_tokens, 0);
      const value = rating(advantage, settings.scale);
      const what = `progress advantage A = ${advantage.toPrecision(6)} (log π/π_ref = ${logRatio.toPrecision(6)} over ${tokens} tokens of ${kept.length} assistant message${kept.length === 1 ? '' : 's'}, scorer "${scorer.name}")`;
      return {
        schema_version: body.schema_version,
        result: [
          { value, reason: `${what}; rating = σ(A / ${settings.scale})` },
          { value: tagOf(value), reason: `${what}; advancing when the rating is ≥ ${TAG_UPPER}, regressing when ≤ ${TAG_LOWER}` },
        ],
      };
    },
  );
}
