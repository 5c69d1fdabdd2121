/**
 * POST /v1/completions: OpenAI-style prompt log-probs of one model, in the shape vLLM's echo mode
 * returns (and lm-eval-harness's local-completions reads): `echo: true`, `max_tokens: 0`,
 * `logprobs: K` (0–20), `model: "<scorer>:policy"` or `"<scorer>:reference"`. This service only
 * scores: a request that would generate (max_tokens > 0, no echo, n > 1, stream) is a 400
 * `scoring_only`.
 *
 * choices[i].logprobs, per token t of prompt i:
 *   tokens[t]          its text (or "token_id:<id>" with vLLM's return_tokens_as_token_ids)
 *   token_logprobs[t]  log p(token t | tokens < t); null for t = 0
 *   top_logprobs[t]    {text: log-prob} of the K most likely tokens at t (null for t = 0, and at
 *                      every t when K = 0). Tokens whose texts coincide keep the higher log-prob:
 *                      use return_tokens_as_token_ids for exact ids.
 *   text_offset[t]     Σ of the code-point lengths of tokens[< t] (as vLLM counts)
 */
import crypto from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../errors.js';
import { MAX_TOP_K } from '../engine/topk-head.js';
import type { ModelRole } from '../engine/topk-engine.js';
import { promptLogprobs, type CompletionPrompt, type PromptLogprobs } from '../pipeline/completions.js';
import type { Scorer } from '../pool.js';
import type { RouteContext } from './context.js';
import { TokenIds, errorResponses } from './schemas.js';

export function completionsRequestSchema(maxItems: number) {
  return Type.Object(
    {
      model: Type.String({ description: '"<scorer>:policy" or "<scorer>:reference" (scorers: GET /v1/models)' }),
      prompt: Type.Union(
        [Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems }), TokenIds, Type.Array(TokenIds, { minItems: 1, maxItems })],
        { description: 'A string, a list of strings, a list of token ids (used as given, no BOS added), or a list of such lists' },
      ),
      echo: Type.Optional(Type.Boolean({ description: 'Must be true: the answer is the prompt\'s own log-probs' })),
      max_tokens: Type.Optional(Type.Integer({ description: 'Must be 0: nothing is generated (OpenAI\'s default, 16, would generate)' })),
      logprobs: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: MAX_TOP_K }), Type.Null()], { description: 'K: the top-K log-probs at each position (0–20)' })),
      return_tokens_as_token_ids: Type.Optional(Type.Boolean({ description: 'vLLM\'s option: tokens (and top_logprobs keys) as "token_id:<id>"' })),
      n: Type.Optional(Type.Integer({ description: '1 or absent' })),
      best_of: Type.Optional(Type.Integer({ description: '1 or absent' })),
      stream: Type.Optional(Type.Boolean({ description: 'false or absent' })),
      // Sampling parameters a client sends out of habit; without generation they change nothing.
      temperature: Type.Optional(Type.Number()),
      top_p: Type.Optional(Type.Number()),
      seed: Type.Optional(Type.Integer()),
      stop: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String()), Type.Null()])),
      presence_penalty: Type.Optional(Type.Number()),
      frequency_penalty: Type.Optional(Type.Number()),
      user: Type.Optional(Type.String()),
    },
    { additionalProperties: false },
  );
}

const Logprobs = Type.Object({
  tokens: Type.Array(Type.String()),
  token_logprobs: Type.Array(Type.Union([Type.Number(), Type.Null()])),
  // additionalProperties, not Type.Record: a Record's key pattern "^(.*)$" does not match a token
  // holding "\n", and the response serializer would silently drop it.
  top_logprobs: Type.Array(Type.Union([Type.Object({}, { additionalProperties: Type.Number() }), Type.Null()])),
  text_offset: Type.Array(Type.Integer()),
});

const CompletionsResponse = Type.Object({
  id: Type.String(),
  object: Type.Literal('text_completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      text: Type.String({ description: 'The prompt (echo); nothing is generated' }),
      logprobs: Logprobs,
      finish_reason: Type.String(),
      stop_reason: Type.Null(),
      prompt_logprobs: Type.Null(),
    }),
  ),
  usage: Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() }),
});

interface CompletionsBody {
  model: string;
  prompt: string | string[] | number[] | number[][];
  echo?: boolean;
  max_tokens?: number;
  logprobs?: number | null;
  return_tokens_as_token_ids?: boolean;
  n?: number;
  best_of?: number;
  stream?: boolean;
}

const ONLY_SCORES = 'this service only scores: send echo: true, max_tokens: 0 and logprobs: K to get the prompt\'s log-probs';

function checkScoringOnly(body: CompletionsBody): void {
  if (body.max_tokens !== 0) throw badRequest('scoring_only', `max_tokens is ${body.max_tokens ?? 'absent (16 by default)'}; ${ONLY_SCORES}`);
  if (body.echo !== true) throw badRequest('scoring_only', `echo is ${body.echo ?? 'absent'}; ${ONLY_SCORES}`);
  if ((body.n ?? 1) !== 1 || (body.best_of ?? 1) !== 1) throw badRequest('scoring_only', `n and best_of must be 1; ${ONLY_SCORES}`);
  if (body.stream === true) throw badRequest('scoring_only', `stream is not supported; ${ONLY_SCORES}`);
}

/** `<scorer>:policy` / `<scorer>:reference` → the scorer and the model of it. */
function resolveModel(ctx: RouteContext, model: string): { scorer: Scorer; role: ModelRole } {
  const match = /^(.+):(policy|reference)$/.exec(model);
  if (!match) throw badRequest('invalid_model', `model must be "<scorer>:policy" or "<scorer>:reference" (got ${JSON.stringify(model.slice(0, 100))})`);
  return { scorer: ctx.pool.get(match[1]), role: match[2] as ModelRole };
}

function prompts(prompt: CompletionsBody['prompt']): CompletionPrompt[] {
  if (typeof prompt === 'string') return [prompt];
  // [] is an empty list of ids (a 422 empty_prompt), not an empty batch.
  if (prompt.length === 0 || typeof prompt[0] === 'number') return [prompt as number[]];
  return prompt as string[] | number[][];
}

/** Python's len(): code points, not UTF-16 units. */
const codePoints = (s: string) => [...s].length;

function choice(index: number, prompt: CompletionPrompt, result: PromptLogprobs, scorer: Scorer, k: number, asIds: boolean) {
  const text = (id: number) => (asIds ? `token_id:${id}` : scorer.tokenizer.tokenText(id));
  const tokens = result.ids.map(text);
  const textOffset: number[] = [];
  let offset = 0;
  for (const t of tokens) {
    textOffset.push(offset);
    offset += codePoints(t);
  }
  const top = result.top.map((entry) => {
    if (entry === null || k === 0) return null;
    const dict: Record<string, number> = {};
    entry.ids.forEach((id, j) => {
      const key = text(id);
      if (!(key in dict)) dict[key] = entry.logprobs[j];
    });
    return dict;
  });
  return {
    index,
    text: typeof prompt === 'string' ? prompt : scorer.tokenizer.decode(prompt),
    logprobs: { tokens, token_logprobs: result.tokenLogprobs, top_logprobs: top, text_offset: textOffset },
    finish_reason: 'length',
    stop_reason: null,
    prompt_logprobs: null,
  };
}

export function completionsRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post(
    '/v1/completions',
    {
      schema: {
        tags: ['protocols'],
        summary: 'OpenAI-style prompt log-probs of the policy or the reference (echo, max_tokens 0, logprobs K)',
        description:
          'vLLM\'s echo shape: choices[i].logprobs has tokens, token_logprobs (the first null), top_logprobs (K entries a position ' +
          'when K > 0) and text_offset. model is "<scorer>:policy" or "<scorer>:reference": both models of a pair from one service, ' +
          'with one tokenization. Generation is not offered: max_tokens > 0 is a 400 scoring_only.',
        body: completionsRequestSchema(ctx.config.max_items),
        response: { 200: CompletionsResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body as CompletionsBody;
      checkScoringOnly(body);
      const { scorer, role } = resolveModel(ctx, body.model);
      const k = body.logprobs ?? 0;
      const list = prompts(body.prompt);
      // A client that goes away before its rows run is dropped from the queue.
      const abort = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) abort.abort();
      };
      reply.raw.once('close', onClose);
      let results: PromptLogprobs[];
      try {
        results = await promptLogprobs(scorer, role, list, k, { signal: abort.signal });
      } finally {
        reply.raw.off('close', onClose);
      }
      request.scoredRows = (request.scoredRows ?? 0) + results.length;
      const promptTokens = results.reduce((n, r) => n + r.ids.length, 0);
      return {
        id: `cmpl-${crypto.randomUUID().replace(/-/g, '')}`,
        object: 'text_completion' as const,
        created: Math.floor(Date.now() / 1000),
        model: body.model,
        choices: results.map((r, i) => choice(i, list[i], r, scorer, k, body.return_tokens_as_token_ids === true)),
        usage: { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens },
      };
    },
  );
}
