/**
 * TypeBox schemas of the trajectory routes: /v1/trajectories/score, /v1/attribute, /v1/rank.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { Nullable, ScoreOptions, StepContextFields, TokenIds, TokenScore, Usage, Warnings } from './schemas.js';

const ToolArguments = Type.Union([Type.String(), Type.Object({}, { additionalProperties: true })]);

const ToolCall = Type.Object(
  {
    id: Type.Optional(Type.String()),
    type: Type.Optional(Type.String()),
    function: Type.Optional(Type.Object({ name: Type.String(), arguments: ToolArguments })),
    name: Type.Optional(Type.String({ description: 'τ²-bench shape {name, arguments}, instead of function' })),
    arguments: Type.Optional(ToolArguments),
  },
  { additionalProperties: true, description: 'OpenAI shape {function: {name, arguments}} or τ²-bench shape {name, arguments}' },
);

export const Message = Type.Object(
  {
    role: Type.String({ minLength: 1, description: 'user, assistant, system, tool, or any role your agent logs' }),
    content: Type.Optional(
      Type.Union([
        Type.String(),
        Type.Null(),
        Type.Array(Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) }, { additionalProperties: true }), { maxItems: 1024 }),
      ]),
    ),
    name: Type.Optional(Type.String({ description: 'The speaking agent (multi-agent logs); on tool messages the function' })),
    tool_calls: Type.Optional(Type.Array(ToolCall, { maxItems: 1024 })),
    tool_call_id: Type.Optional(Type.String()),
  },
  { additionalProperties: true, description: 'OpenAI-form chat message; other fields pass through to chat templates' },
);

const Segment = Type.Object(
  {
    text: Type.Optional(Type.String()),
    ids: Type.Optional(TokenIds),
    role: Type.Optional(Type.String()),
    name: Type.Optional(Type.String()),
    score: Type.Optional(Type.Boolean({ description: 'true: this segment is a step and is scored' })),
  },
  { additionalProperties: false },
);

export const TrajectoryFormat = Type.Union(
  ['messages', 'who_and_when', 'tau_bench', 'agentprocessbench', 'processbench'].map((v) => Type.Literal(v)),
  { description: 'Format of `data`: one record of that dataset as it is published' },
);

const RenderMode = Type.Union([Type.Literal('plain'), Type.Literal('chat_template')], {
  description: '"plain" (default): "[role]: content" lines, the paper\'s format; "chat_template": the tokenizer\'s Jinja template',
});

const PlainLabel = Type.Union([Type.Literal('role'), Type.Literal('name')], {
  description: 'Plain rendering\'s label: "role" (default, the paper\'s "[role]: ") or "name" (the speaking agent\'s name where the message has one)',
});

const MAX_MESSAGES = 4096;

/** The fields that say what the trajectory is. */
const TrajectoryFields = {
  messages: Type.Optional(Type.Array(Message, { maxItems: MAX_MESSAGES })),
  segments: Type.Optional(Type.Array(Segment, { maxItems: MAX_MESSAGES })),
  format: Type.Optional(TrajectoryFormat),
  data: Type.Optional(Type.Unknown({ description: 'One record in `format`' })),
  render: Type.Optional(RenderMode),
  label: Type.Optional(PlainLabel),
  action_roles: Type.Optional(
    Type.Array(Type.String(), { maxItems: 256, description: 'Roles or agent names whose messages are steps (default ["assistant"])' }),
  ),
  tools: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 256, description: 'Tool definitions for chat templates' })),
  join_steps: Type.Optional(
    Type.Boolean({ description: 'format processbench: the steps as one assistant message with a span per step, for chat templates that require alternating roles (Llama-2)' }),
  ),
  exclude_agents: Type.Optional(
    Type.Array(Type.String(), {
      maxItems: 256,
      description: 'Speakers (message name, else role) whose messages are observations, never steps; for Who&When usually ["Computer_terminal"] (code-execution output)',
    }),
  ),
};

const TrajectoryOptions = {
  ...ScoreOptions,
  baselines: Type.Optional(Type.Boolean({ description: 'Also return the policy\'s confidence baselines' })),
};

export const TrajectoryItem = Type.Object({ ...TrajectoryFields, ...TrajectoryOptions }, { additionalProperties: false });

export function trajectoryRequestSchema(maxItems: number): TSchema {
  return Type.Object(
    {
      model: Type.Optional(Type.String()),
      items: Type.Optional(Type.Array(TrajectoryItem, { minItems: 1, maxItems })),
      timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
      ...TrajectoryFields,
      ...TrajectoryOptions,
    },
    { additionalProperties: false },
  );
}

const StepBaselines = Type.Object(
  {
    mean_logprob: Type.Number({ description: 'Mean log π of the step tokens (higher: more confident)' }),
    neg_entropy: Type.Number({ description: '−mean entropy of π at the step tokens (higher: more confident)' }),
    self_certainty: Type.Number({ description: 'Mean KL(U‖π) (higher: more confident)' }),
    deepconf: Type.Number({ description: 'Mean DeepConf confidence −mean top-20 log π (higher: more confident)' }),
  },
  { description: 'Confidence baselines; higher always means more confident' },
);

const TrajectoryBaselines = Type.Object(
  {
    mean_logprob: Nullable(Type.Number({ description: 'Token-weighted mean log π over the scored steps' })),
    neg_entropy: Nullable(Type.Number()),
    self_certainty: Nullable(Type.Number()),
    deepconf: Nullable(Type.Number()),
    deepconf_tail: Nullable(Type.Number({ description: 'DeepConf confidence of the last scored step' })),
    deepconf_bottom10: Nullable(Type.Number({ description: 'Mean DeepConf confidence of the lowest 10% of scored steps' })),
  },
  { description: 'Confidence baselines over the scored steps; null when no step was scored' },
);

const StepAggregates = Type.Object(
  {
    mean: Nullable(Type.Number()),
    sum: Nullable(Type.Number()),
    min: Nullable(Type.Number()),
    max: Nullable(Type.Number()),
    last: Nullable(Type.Number()),
    bottom10: Nullable(Type.Number({ description: 'Mean of the lowest ceil(10%) step advantages' })),
  },
  { description: 'Over the scored steps (a step with no scored token takes no part); null when no step was scored' },
);

export const StepResult = Type.Object({
  index: Type.Integer({ description: 'Index of the step\'s message (or segment) in the input' }),
  role: Type.Optional(Type.String()),
  name: Type.Optional(Type.String({ description: 'Agent that took the step' })),
  advantage: Nullable(Type.Number({ description: 'null: no token of the step was scored (never 0 in its place)' })),
  log_ratio: Nullable(Type.Number()),
  num_tokens: Type.Integer({ description: 'Tokens of the step that were scored' }),
  truncated: Type.Boolean({ description: 'long_context "truncate": the step fell off the left edge of the context; its advantage is null' }),
  ...StepContextFields,
  cumulative: Nullable(Type.Number({ description: 'Sum of the scored steps\' advantages up to and including this step; null while none was scored' })),
  baselines: Type.Optional(Nullable(StepBaselines)),
  tokens: Type.Optional(Type.Array(TokenScore)),
});

const Labels = Type.Object(
  {
    success: Type.Optional(Type.Boolean()),
    mistake_step: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    mistake_agent: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  },
  { additionalProperties: true, description: 'Labels the dataset record carried (format + data only)' },
);

export const TrajectoryResult = Type.Object({
  beta: Type.Number(),
  num_tokens: Type.Integer({ description: 'Tokens of the whole sequence (after truncation in long_context "truncate")' }),
  truncated_tokens: Type.Integer({ description: 'Context tokens dropped from the left' }),
  windows: Type.Integer({ description: 'Rows the sequence went through the models in (1 when it fits the max length)' }),
  forward_tokens: Type.Integer({ description: 'Tokens of those rows: what the trajectory cost in each model' }),
  steps: Type.Array(StepResult),
  aggregates: StepAggregates,
  baselines: Type.Optional(TrajectoryBaselines),
  labels: Type.Optional(Labels),
});

export const TrajectoryResponse = Type.Union([
  Type.Composite([Type.Object({ model: Type.String(), usage: Usage, warnings: Warnings }), TrajectoryResult]),
  Type.Object({ model: Type.String(), results: Type.Array(TrajectoryResult), usage: Usage, warnings: Warnings }),
]);

export const AttributionMethod = Type.Union(
  ['min_cumulative', 'sharpest_drop', 'sharpest_abs_drop'].map((v) => Type.Literal(v)),
  { description: 'min_cumulative (default): argmin of the running sum; sharpest_drop: lowest step; sharpest_abs_drop: most negative change' },
);

export const AttributeRequest = Type.Object(
  {
    model: Type.Optional(Type.String()),
    method: Type.Optional(AttributionMethod),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
    ...TrajectoryFields,
    ...TrajectoryOptions,
  },
  { additionalProperties: false },
);

export const AttributeResponse = Type.Object({
  model: Type.String(),
  step: Type.Union([Type.Integer(), Type.Null()], { description: 'Input index of the blamed step ("when")' }),
  position: Type.Union([Type.Integer(), Type.Null()], { description: 'Its position in steps[]' }),
  agent: Type.Union([Type.String(), Type.Null()], { description: 'The agent (or role) that took it ("who")' }),
  method: AttributionMethod,
  beta: Type.Number(),
  steps: Type.Array(StepResult),
  labels: Type.Optional(Labels),
});

const StepAggregate = Type.Union(
  ['mean', 'sum', 'min', 'max', 'last', 'bottom10'].map((v) => Type.Literal(v)),
  { description: 'How a multi-step candidate\'s step advantages become its score (default sum)' },
);

// A ranking returns scores, not tokens.
const { return_tokens: _returnTokens, ...RankOptions } = ScoreOptions;

export function rankRequestSchema(maxItems: number): TSchema {
  return Type.Object(
    {
      model: Type.Optional(Type.String()),
      prompt: Type.Optional(Type.String()),
      messages: Type.Optional(Type.Array(Message, { maxItems: MAX_MESSAGES })),
      candidates: Type.Array(
        Type.Union([
          Type.String(),
          Type.Array(Type.String(), { minItems: 1, maxItems: MAX_MESSAGES }),
          Type.Array(Message, { minItems: 1, maxItems: MAX_MESSAGES }),
        ]),
        { minItems: 1, maxItems, description: 'Strings (one step each), step lists, or message lists' },
      ),
      render: Type.Optional(RenderMode),
      label: Type.Optional(PlainLabel),
      step_aggregate: Type.Optional(StepAggregate),
      timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
      ...RankOptions,
    },
    { additionalProperties: false },
  );
}

export const RankResponse = Type.Object({
  model: Type.String(),
  beta: Type.Number(),
  scores: Type.Array(Nullable(Type.Number()), { description: 'Score of each candidate, in input order (null: none of its steps was scored)' }),
  order: Type.Array(Type.Integer(), { description: 'Candidate indices, best first, unscored last (ties keep input order)' }),
  best: Nullable(Type.Integer({ description: 'null when no candidate was scored' })),
  candidates: Type.Array(
    Type.Object({
      advantage: Nullable(Type.Number()),
      steps: Type.Array(
        Type.Object({
          advantage: Nullable(Type.Number()),
          log_ratio: Nullable(Type.Number()),
          num_tokens: Type.Integer(),
          truncated: Type.Boolean(),
          partial: Type.Boolean(),
        }),
      ),
    }),
  ),
  usage: Usage,
  warnings: Warnings,
});
