/**
 * Whole trajectories (design §1, §2): compile → one forward pass per model → per-step
 * advantages, cumulative sums, trajectory aggregates and confidence baselines.
 * No HTTP here: the API routes and the offline `pa-server score` both call this.
 */
import type { SubmitOptions } from '../engine/batcher.js';
import { badRequest, eachItem, ServiceError } from '../errors.js';
import type { Scorer } from '../pool.js';
import {
  allStepAggregates,
  attributeFailure,
  cumulativeOverScored,
  stepBaselines,
  trajectoryBaselines,
  type AttributionMethod,
  type Baseline,
  type StepAggregate,
  type TrajectoryBaseline,
} from '../scoring/index.js';
import type { Sequence, TokenScores } from '../sequence.js';
import { adaptTrajectory, type AdaptedTrajectory, type TrajectoryFormat } from '../text/adapters.js';
import { compileTrajectoryDetailed, type Compiled, type TrajectoryInput } from '../text/compile.js';
import { advantageFor, batchItems, compileLimits, resolveBeta, resolveTokenization, tokenDetail, type ScorerSettings, type ScoringOptions } from './options.js';
import { scoreSequences } from './score-sequences.js';
import { spanScores } from './split.js';
import { stepContexts, windowRows } from './windows.js';

export interface TrajectoryRequest extends Omit<TrajectoryInput, 'steps' | 'verbatim' | 'split'>, ScoringOptions {
  /** A dataset's own record format; `data` holds the record. */
  format?: TrajectoryFormat;
  data?: unknown;
  /** ProcessBench: the steps as one assistant message with a span per step (templates that need alternating roles). */
  join_steps?: boolean;
  /** Also return the policy's confidence baselines per step and per trajectory. */
  baselines?: boolean;
  /** Internal (offline scoring): a record already adapted from its format, used as format + data would be. */
  adapted?: AdaptedTrajectory;
}

/** A step with no scored token has null advantage, log_ratio, min_context and baselines: never 0. */
export interface StepResult {
  index: number;
  role?: string;
  name?: string;
  advantage: number | null;
  log_ratio: number | null;
  num_tokens: number;
  truncated: boolean;
  /** long_context "truncate": only the step's most recent tokens were scored. */
  partial: boolean;
  /** The fewest preceding tokens any of its scored tokens was predicted from. */
  min_context: number | null;
  /** Some scored token saw less than everything before it. */
  context_truncated: boolean;
  /** Sum of the scored steps' advantages up to this one; null while none was scored. */
  cumulative: number | null;
  baselines?: Record<Baseline, number> | null;
  tokens?: ReturnType<typeof tokenDetail>;
}

export interface TrajectoryResult {
  beta: number;
  num_tokens: number;
  truncated_tokens: number;
  /** Rows the sequence went through the models in (long_context "window"; 1 when it fits). */
  windows: number;
  /** Tokens those rows hold: the cost of the trajectory in each model. */
  forward_tokens: number;
  steps: StepResult[];
  aggregates: Record<StepAggregate, number | null>;
  baselines?: Record<TrajectoryBaseline, number | null>;
  labels?: AdaptedTrajectory['labels'];
}

export interface CompiledTrajectory {
  request: TrajectoryRequest;
  sequence: Sequence;
  /** What each piece became (what /v1/tokenize shows). */
  compiled: Compiled;
  labels?: AdaptedTrajectory['labels'];
}

const ITEM_OPTION_KEYS = [
  'beta',
  'token_aggregate',
  'token_aggregate_mode',
  'return_tokens',
  'truncate',
  'long_context',
  'baselines',
  'render',
  'label',
  'action_roles',
  'tools',
  'tokenization',
  'exclude_agents',
  'join_steps',
] as const;
/** What one trajectory is made of: per item only, never request-wide. */
const TRAJECTORY_FIELDS = ['messages', 'segments', 'format', 'data'] as const;

export type TrajectoryBody = TrajectoryRequest & { model?: string; items?: TrajectoryRequest[]; timeout_ms?: number; method?: unknown };

export function trajectoryItemsOf(body: TrajectoryBody): TrajectoryRequest[] {
  if (body.items) return batchItems<TrajectoryRequest>({ ...body, items: body.items }, ITEM_OPTION_KEYS, TRAJECTORY_FIELDS);
  const { model: _m, items: _i, timeout_ms: _t, method: _method, ...single } = body;
  return [single];
}

/** Every trajectory of a body → CompiledTrajectory; an error inside `items` names the item (error.item). */
export function compileTrajectoryBody(body: TrajectoryBody, scorer: Scorer): CompiledTrajectory[] {
  return eachItem(trajectoryItemsOf(body), (item) => compileTrajectoryRequest(item, scorer), body.items !== undefined);
}

/** `format`+`data` → messages through the dataset's adapter; otherwise the request as given. */
export function resolveTrajectoryInput(request: TrajectoryRequest): { input: TrajectoryInput; labels?: AdaptedTrajectory['labels'] } {
  const { format, data, adapted: given, join_steps: joinSteps, ...rest } = request;
  if (format === undefined && data === undefined && given === undefined) return { input: rest };
  let adapted = given;
  if (adapted === undefined) {
    if (format === undefined) throw badRequest('missing_format', 'data needs a format (messages, who_and_when, tau_bench, agentprocessbench, processbench)');
    if (data === undefined) throw badRequest('missing_data', `format "${format}" needs the record in data`);
    if (request.messages !== undefined || request.segments !== undefined) {
      throw badRequest('conflicting_fields', 'give format+data, or messages, or segments; not several');
    }
    adapted = adaptTrajectory(format, data, joinSteps ? { join_steps: true } : {});
  }
  // The request's action_roles override the format's choice of steps.
  const steps = request.action_roles === undefined && adapted.steps ? { steps: adapted.steps } : {};
  return {
    input: {
      ...rest,
      messages: adapted.messages,
      action_roles: request.action_roles ?? adapted.action_roles,
      tools: request.tools ?? adapted.tools,
      ...steps,
      ...(adapted.verbatim ? { verbatim: true } : {}),
      ...(adapted.split ? { split: adapted.split } : {}),
    },
    labels: adapted.labels,
  };
}

export function compileTrajectoryRequest(request: TrajectoryRequest, scorer: ScorerSettings): CompiledTrajectory {
  resolveBeta(request.beta, scorer);
  const { input, labels } = resolveTrajectoryInput(request);
  let compiled;
  try {
    compiled = compileTrajectoryDetailed(
      { ...input, tokenization: resolveTokenization(request.tokenization, scorer) },
      scorer.tokenizer,
      compileLimits(scorer, request),
    );
  } catch (err) {
    // ProcessBench records are consecutive assistant messages: say why a template refuses them, and the way out.
    if (err instanceof ServiceError && err.code === 'chat_template_error' && request.format === 'processbench' && !request.join_steps) {
      throw new ServiceError(
        err.status,
        err.code,
        `${err.message} — ProcessBench records are one assistant message per step, which chat templates that require alternating roles (Llama-2's) refuse; ` +
          'pass join_steps: true to render the steps as one assistant message with a span per step',
        err.headers,
      );
    }
    throw err;
  }
  return { request, sequence: compiled.sequence, compiled, ...(labels ? { labels } : {}) };
}

export function trajectoryResult(compiled: CompiledTrajectory, scores: TokenScores, scorer: ScorerSettings): TrajectoryResult {
  const { request, sequence } = compiled;
  const beta = resolveBeta(request.beta, scorer);
  const perSpan = spanScores(sequence, scores);
  const contexts = stepContexts(sequence, scorer.maxLength);
  const steps: StepResult[] = sequence.spans.map((span, i) => {
    const s = perSpan[i];
    const r = advantageFor(s, beta, request);
    const step: StepResult = {
      index: span.index,
      ...(span.role !== undefined ? { role: span.role } : {}),
      ...(span.name !== undefined ? { name: span.name } : {}),
      advantage: r.advantage,
      log_ratio: r.logRatio,
      num_tokens: r.numTokens,
      truncated: span.truncated === true,
      partial: span.partial === true,
      ...contexts[i],
      cumulative: null,
    };
    if (request.baselines) step.baselines = stepBaselines(s, scorer.vocabSize);
    if (request.return_tokens) step.tokens = tokenDetail(scorer, sequence.ids.slice(span.start, span.end), s.policy, s.reference);
    return step;
  });
  const cumulative = cumulativeOverScored(steps.map((s) => s.advantage));
  steps.forEach((step, i) => (step.cumulative = cumulative[i]));
  // Steps with no scored token (fallen off the left edge) carry no information: aggregates skip them.
  const scored = steps.filter((s) => s.advantage !== null);
  const rows = windowRows(sequence, scorer.maxLength);
  const result: TrajectoryResult = {
    beta,
    num_tokens: sequence.ids.length,
    truncated_tokens: sequence.truncatedTokens ?? 0,
    windows: rows.length,
    forward_tokens: rows.reduce((n, r) => n + r.ids.length, 0),
    steps,
    aggregates: allStepAggregates(scored.map((s) => s.advantage!)),
  };
  if (request.baselines) {
    result.baselines = trajectoryBaselines(
      steps.map((s) => s.baselines ?? null),
      steps.map((s) => s.num_tokens),
    );
  }
  if (compiled.labels) result.labels = compiled.labels;
  return result;
}

/** The blamed step of a scored trajectory; a step with no scored token is never blamed. */
export function attributeResult(result: TrajectoryResult, method: AttributionMethod) {
  const candidates = result.steps.map((s, position) => ({ s, position })).filter(({ s }) => s.advantage !== null);
  const at = attributeFailure(
    candidates.map(({ s }) => s.advantage!),
    method,
  );
  const blamed = at >= 0 ? candidates[at] : undefined;
  return {
    step: blamed ? blamed.s.index : null,
    position: blamed ? blamed.position : null,
    agent: blamed ? (blamed.s.name ?? blamed.s.role ?? null) : null,
    method,
  };
}

/** Offline entry point: compile, score in one engine call (the batcher batches them), shape. */
export async function scoreTrajectories(
  scorer: Scorer,
  requests: readonly TrajectoryRequest[],
  run: SubmitOptions = {},
): Promise<TrajectoryResult[]> {
  const compiled = eachItem(requests, (r) => compileTrajectoryRequest(r, scorer));
  const { scores } = await scoreSequences(
    scorer,
    compiled.map((c) => c.sequence),
    { ...run, stats: requests.some((r) => r.baselines === true) },
  );
  return compiled.map((c, i) => trajectoryResult(c, scores[i], scorer));
}
