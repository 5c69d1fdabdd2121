/**
 * TypeBox schemas shared by the routes. They are the single source of the request/response
 * contract: fastify validates with them and tools/gen-openapi.ts writes openapi.yaml from them.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable machine-readable code, e.g. empty_step, overloaded' }),
      message: Type.String({ description: 'Human-readable explanation' }),
      item: Type.Optional(Type.Integer({ description: 'Index of the `items` entry at fault, when the error is about one item' })),
    }),
  },
  { $id: 'ErrorBody', description: 'Every non-2xx answer has this body' },
);

export const TokenIds = Type.Array(Type.Integer({ minimum: -2147483648, maximum: 2147483647 }), {
  description: 'Exact token ids; they bypass the tokenizer (no BOS is added)',
});

export const TokenAggregate = Type.Union(
  ['sum', 'mean', 'min', 'max', 'last'].map((v) => Type.Literal(v)),
  { description: 'How per-token log-ratios become one step score (default sum: the progress advantage)' },
);

export const TokenAggregateMode = Type.Union([Type.Literal('ratio'), Type.Literal('separate')], {
  description:
    '"ratio" (default) aggregates the per-token log-ratios; "separate" aggregates each model\'s log-probs first and subtracts (the paper\'s released code; equal for sum and mean)',
});

export const LongContext = Type.Union([Type.Literal('window'), Type.Literal('truncate')], {
  description:
    'A sequence longer than the max length L: "window" (default) scores it in overlapping windows, every token seeing ≥ ⌊L/2⌋ preceding tokens (about 2× the tokens); ' +
    '"truncate" cuts it from the left (the paper), an unscored step is null (README: Long trajectories)',
});

/** A number that is null when nothing was scored (never 0 in its place). */
export const Nullable = (schema: TSchema) => Type.Union([schema, Type.Null()]);

/** Options that can be given once for a whole request and overridden per item. */
export const ScoreOptions = {
  beta: Type.Optional(Type.Number({ description: 'KL coefficient β (> 0); default: the scorer\'s' })),
  token_aggregate: Type.Optional(TokenAggregate),
  token_aggregate_mode: Type.Optional(TokenAggregateMode),
  return_tokens: Type.Optional(Type.Boolean({ description: 'Include per-token log-probs and log-ratios' })),
  truncate: Type.Optional(
    Type.Boolean({ description: 'Score a sequence longer than the model by `long_context` (default true); false answers 422 instead' }),
  ),
  long_context: Type.Optional(LongContext),
  tokenization: Type.Optional(
    Type.Union([Type.Literal('paper'), Type.Literal('joint')], {
      description:
        'How text becomes tokens (default: the scorer\'s, GET /v1/models). "paper": BOS whenever the tokenizer names one, each piece encoded on its own; ' +
        '"joint": the whole rendering encoded once with the tokenizer\'s own special tokens, a piece\'s tokens those starting inside it',
    }),
  ),
};

export const ScoreItem = Type.Object(
  {
    prompt: Type.Optional(Type.String({ description: 'Context text (encoded without special tokens, after BOS)' })),
    prompt_ids: Type.Optional(TokenIds),
    step: Type.Optional(Type.String({ description: 'The step (action) text to score' })),
    step_ids: Type.Optional(TokenIds),
    ...ScoreOptions,
  },
  { additionalProperties: false },
);
export type ScoreItem = Static<typeof ScoreItem>;

export function scoreRequestSchema(maxItems: number): TSchema {
  return Type.Object(
    {
      model: Type.Optional(Type.String({ description: 'Scorer name (GET /v1/models); default: "default"' })),
      prompt: Type.Optional(Type.String()),
      prompt_ids: Type.Optional(TokenIds),
      step: Type.Optional(Type.String()),
      step_ids: Type.Optional(TokenIds),
      items: Type.Optional(Type.Array(ScoreItem, { minItems: 1, maxItems, description: 'Score many steps in one call' })),
      timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'Give up (504) after this long' })),
      ...ScoreOptions,
    },
    { additionalProperties: false },
  );
}
export type ScoreRequest = ScoreItem & { model?: string; items?: ScoreItem[]; timeout_ms?: number };

export const TokenScore = Type.Object({
  id: Type.Integer(),
  text: Type.String(),
  policy_logprob: Type.Number(),
  reference_logprob: Type.Number(),
  log_ratio: Type.Number(),
});

export const StepContextFields = {
  min_context: Nullable(Type.Integer({ description: 'The fewest preceding tokens any scored token of the step was predicted from (null: none scored)' })),
  context_truncated: Type.Boolean({ description: 'Some scored token of the step saw less than everything before it (a window, or left truncation)' }),
  partial: Type.Boolean({ description: 'long_context "truncate": the step is longer than one pass, only its most recent tokens were scored' }),
};

export const ScoreResult = Type.Object(
  {
    advantage: Nullable(Type.Number({ description: 'β · log_ratio: the progress advantage of the step (null: no token scored)' })),
    log_ratio: Nullable(Type.Number({ description: 'Aggregated log π/π_ref of the step, unscaled' })),
    beta: Type.Number(),
    policy_logprob: Nullable(Type.Number({ description: 'Σ log π over the step tokens' })),
    reference_logprob: Nullable(Type.Number({ description: 'Σ log π_ref over the step tokens' })),
    num_tokens: Type.Integer({ description: 'Step tokens scored' }),
    truncated: Type.Boolean({ description: 'Context tokens were dropped from the left to fit (long_context "truncate")' }),
    ...StepContextFields,
    tokens: Type.Optional(Type.Array(TokenScore)),
  },
  {},
);

export const Usage = Type.Object({
  prompt_tokens: Type.Integer({ description: 'Context tokens that went through the models (every window of a long sequence counts)' }),
  scored_tokens: Type.Integer({ description: 'Step tokens scored' }),
  cached_tokens: Type.Optional(
    Type.Integer({ description: 'Context tokens read from the prefix KV cache instead of run through the models (0 with the cache off)' }),
  ),
  unknown_tokens: Type.Integer({ description: "Tokens (context and scored) that are the tokenizer's unknown-word token: text it cannot represent" }),
});

/** Present only when something needs saying, e.g. unknown-word tokens in the input. */
export const Warnings = Type.Optional(Type.Array(Type.String(), { description: 'Things the numbers do not show, e.g. text the tokenizer could not represent' }));

export const ScoreResponse = Type.Union([
  Type.Composite([Type.Object({ model: Type.String() }), ScoreResult, Type.Object({ usage: Usage, warnings: Warnings })]),
  Type.Object({ model: Type.String(), results: Type.Array(ScoreResult), usage: Usage, warnings: Warnings }),
]);

/** A merged reference π_α (scorer config reference_merge): what was merged, and a digest of the result. */
export const ReferenceMergeInfo = Type.Object(
  {
    method: Type.Union([Type.Literal('linear'), Type.Literal('ties'), Type.Literal('dare_linear')]),
    alpha: Type.Number(),
    density: Type.Union([Type.Number(), Type.Null()], { description: 'ties / dare_linear: fraction of τ kept per tensor' }),
    seed: Type.Union([Type.Integer(), Type.Null()], { description: 'dare_linear: seed of the mask' }),
    policy: Type.String({ description: 'The policy file merged with the reference file' }),
    weights_sha256: Type.String({ description: 'sha256 over the merged floating-point initializers (name, NUL, stored bytes, in graph order)' }),
    tensors: Type.Integer({ description: 'Floating-point initializers' }),
    merged_tensors: Type.Integer({ description: 'Of those, the ones that differ between the graphs (the others are shared as they are)' }),
  },
  { description: 'Present when the reference served is a weight-space merge of policy and reference' },
);

const ModelFile = Type.Object({
  file: Type.String(),
  sha256: Type.String(),
  provider: Type.String(),
  lm_head_gathered: Type.Boolean(),
  kv_bytes_per_token: Type.Union([Type.Integer(), Type.Null()], {
    description: 'Bytes of keys and values one cached token holds (all layers); null: the export has no KV cache',
  }),
  merge: Type.Optional(ReferenceMergeInfo),
});

export const ModelsResponse = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object({
      id: Type.String(),
      object: Type.Literal('scorer'),
      beta: Type.Number(),
      max_length: Type.Integer(),
      max_length_source: Type.String({ description: 'Where max_length came from: the config, the policy\'s config.json key, the tokenizer, or the default' }),
      vocab_size: Type.Integer({ description: 'The model\'s vocabulary (ids at or above it are refused)' }),
      tokenization: Type.Object(
        {
          profile: Type.Union([Type.Literal('paper'), Type.Literal('joint')], { description: 'The default profile of this scorer\'s requests' }),
          bos_token: Type.Union([Type.String(), Type.Null()], { description: 'The tokenizer\'s bos_token' }),
          bos_id: Type.Union([Type.Integer(), Type.Null()]),
          bos_added: Type.Object(
            { paper: Type.Boolean(), joint: Type.Boolean() },
            { description: 'Whether text input gets BOS in front under each profile (paper: whenever the tokenizer names one; joint: as the tokenizer adds it)' },
          ),
          add_bos_token: Type.Union([Type.Boolean(), Type.Null()], { description: 'tokenizer_config.json add_bos_token as written' }),
          tokenizer_size: Type.Integer({ description: 'The tokenizer\'s ids, added tokens included: max id + 1' }),
          tokenizer_exceeds_model: Type.Boolean({ description: 'The tokenizer can produce ids the model does not have (tokenizer_size > vocab_size)' }),
        },
        { description: 'How this scorer turns text into tokens (design §2)' },
      ),
      warnings: Type.Array(Type.String(), { description: 'Problems found at load that serving does not refuse (also logged at start-up)' }),
      device: Type.String(),
      policy: ModelFile,
      reference: ModelFile,
      prefix_cache: Type.Object(
        {
          capacity_bytes: Type.Integer({ description: 'Bound of everything the scorer\'s prefix KV cache adds to memory (both roles; --prefix-cache-mb); 0: off' }),
          block_capacity_bytes: Type.Integer({ description: 'Of the bound, what cached blocks may hold (half: the rest is kept for the copies of KV that the batch being run makes)' }),
          batch_tokens: Type.Integer({
            description:
              'The most cached tokens one batch reads (rows × past; a single row too), and the most new tokens it keeps blocks of: an eighth of the bound over both roles\' KV bytes per token; 0: off',
          }),
          bytes: Type.Integer({ description: 'Bytes of KV blocks held now' }),
          block_tokens: Type.Integer({ description: 'Tokens per cached block' }),
        },
        { description: 'Prefix KV cache: with-past exports reuse the keys and values of earlier requests\' prefixes' },
      ),
    }),
  ),
  limits: Type.Object({
    max_items: Type.Integer(),
    max_batch_tokens: Type.Integer(),
    max_batch_rows: Type.Integer(),
    max_queue: Type.Integer(),
    body_limit: Type.Integer(),
  }),
});

export const StatusResponse = Type.Object({ status: Type.String() });

export const errorResponses = {
  400: Type.Ref(ErrorBody),
  404: Type.Ref(ErrorBody),
  413: Type.Ref(ErrorBody),
  422: Type.Ref(ErrorBody),
  429: Type.Ref(ErrorBody),
  503: Type.Ref(ErrorBody),
  504: Type.Ref(ErrorBody),
};
