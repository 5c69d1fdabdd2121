/**
 * Request → Sequence (design §2). Pure and synchronous: the tokenizer is the only thing consulted.
 *
 * Error codes (ServiceError; the API layer maps status and code):
 *   400 conflicting_fields        prompt with prompt_ids, step with step_ids, messages with a prompt,
 *                                 messages with segments, or text mixed with token ids
 *   400 missing_step              neither step nor step_ids
 *   400 missing_trajectory        neither messages nor segments
 *   400 invalid_ids               prompt_ids / step_ids not a list
 *   400 invalid_step / invalid_prompt   step / prompt not a string
 *   400 invalid_message           a message of the wrong shape (role, content, name, tool_calls)
 *   400 invalid_segment           a segment without exactly one of text / ids, or of the wrong type
 *   400 invalid_render            render other than "plain" / "chat_template"
 *   400 invalid_tokenization      tokenization other than "paper" / "joint"
 *   400 invalid_label             label other than "role" / "name"
 *   400 invalid_action_roles      action_roles not a list of strings
 *   422 empty_step                step "" / step_ids [] / a step that encodes or renders to no tokens
 *                                 (joint: whose text joins the token before it)
 *   422 tokenization_unaligned    joint: the tokenizer's tokens do not spell the text back (offsets.ts)
 *   422 empty_trajectory          messages [] / segments []
 *   422 no_steps                  no message or segment is scored (check action_roles / score)
 *   422 ids_out_of_vocabulary     a token id (given, or produced by the tokenizer) that is not an
 *                                 integer in [0, the model's vocabulary size)
 *   422 step_too_long             /v1/score with truncate false: the step alone has more than max_length − 1 tokens
 *   422 input_too_long            the sequence exceeds max_length and truncate is false
 *   422 no_context                /v1/score: nothing precedes the step (no BOS, empty prompt), so
 *                                 its first token cannot be scored; also a one-token step at the
 *                                 very start of a trajectory without BOS
 *   422 unsupported_content       a content part that is not text
 *   422 no_chat_template          render "chat_template" with a tokenizer that has none
 *   422 chat_template_error       the template does not parse or raised (e.g. roles must alternate)
 *   422 chat_template_not_prefix  the template has no well-defined span for a message (chat-template.ts)
 *
 * Rules chosen where the design is silent:
 *   - joint adds no special tokens to a chat-template rendering (apply_chat_template does not);
 *     with segments, each run of text segments is encoded as one text, given ids stay as they are.
 *   - Token-id input gets no BOS: the caller gave the exact tokens (put BOS in prompt_ids if the
 *     model wants it). Segments get BOS only when the first segment is text.
 *   - /v1/score with nothing before the step is refused (no_context) rather than silently
 *     dropping the step's first token, which would change the number asked for.
 *   - In a trajectory, a step at position 0 (no BOS; e.g. a Who&When log that opens with an
 *     agent's message) leaves only its first token unscored — in the plain format that is the
 *     "[" of its label — so the rest of the trajectory is still scored.
 *   - `messages` with `step` in /v1/score: the step is scored as the next assistant message of
 *     that conversation (its span is that message's rendered piece, e.g. "\n[assistant]: up").
 */
import { badRequest, unprocessable } from '../errors.js';
import type { Sequence, Span } from '../sequence.js';
import { DEFAULT_ACTION_ROLES, validateMessages, type Message } from './messages.js';
import {
  assemble,
  checkProfile,
  messagePieces,
  segmentPieces,
  type Assembled,
  type Piece,
  type PieceList,
  type RenderMode,
  type Segment,
  type TokenizationProfile,
} from './pieces.js';
import type { PlainLabel } from './render.js';
import type { SplitSteps } from './pieces.js';
import type { TextTokenizer } from './tokenizer.js';
import { truncateLeft, truncateRanges } from './truncate.js';

export type { Segment, RenderMode, TokenizationProfile } from './pieces.js';
export type { PlainLabel } from './render.js';

/** What compile produced, piece by piece: what /v1/tokenize shows, and the Sequence scoring runs. */
export interface CompiledPiece {
  /** The piece's text (rendered message, prompt, step); null for given ids. */
  text: string | null;
  start: number;
  end: number;
  scored: boolean;
  /** The step index (message/segment index; 0 for /v1/score) when scored. */
  step?: number;
  role?: string;
  /** The agent of a scored piece: its name where it has one, else its role. */
  agent?: string;
  /** Left truncation removed (some of) its tokens. */
  truncated?: boolean;
  /** long_context "truncate": a step too long for one pass, scored on its most recent tokens. */
  partial?: boolean;
}

export interface Compiled {
  sequence: Sequence;
  tokenization: TokenizationProfile;
  pieces: CompiledPiece[];
  /** Positions (after truncation) of the special tokens the service added: BOS, or joint's post-processor tokens. */
  added: number[];
  /** The first token is a BOS the service added. */
  bosAdded: boolean;
}

/**
 * How a sequence longer than max_length is scored (design §2): "window" (default) keeps it whole
 * and the pipeline scores it in overlapping windows (pipeline/windows.ts); "truncate" cuts it
 * from the left here (truncate.ts), the paper's behaviour.
 */
export type LongContext = 'window' | 'truncate';

export interface CompileLimits {
  /** Longest sequence one forward pass may take. */
  maxLength: number;
  /** The MODEL's vocabulary: ids at or above it are refused (ids_out_of_vocabulary). */
  vocabSize: number;
  /** Fit a sequence that is too long (default, by `longContext`); false → 422 input_too_long. */
  truncate: boolean;
  /** Default "window". */
  longContext?: LongContext;
}

export interface StepInput {
  prompt?: string;
  prompt_ids?: number[];
  step?: string;
  step_ids?: number[];
  /** The conversation so far; the step is scored as the next assistant message. */
  messages?: Message[];
  render?: RenderMode;
  /** Plain label: "role" (the paper) or "name" (the speaker's name where it has one). */
  label?: PlainLabel;
  tools?: unknown[];
  tokenization?: TokenizationProfile;
}

export interface TrajectoryInput {
  messages?: Message[];
  segments?: Segment[];
  render?: RenderMode;
  /** Roles (or agent names) whose messages are steps; default ["assistant"]. */
  action_roles?: string[];
  /** Speakers (message names, or roles) whose messages are observations even when action_roles selects them. */
  exclude_agents?: string[];
  /** Tool definitions for chat templates that describe them. */
  tools?: unknown[];
  label?: PlainLabel;
  tokenization?: TokenizationProfile;
  /** Internal (adapters, rank): exactly these message indices are steps; action_roles then does not apply. */
  steps?: readonly number[];
  /** Internal (Who&When): plain renders every message as `[role]: content`. */
  verbatim?: boolean;
  /** Internal (ProcessBench join_steps): one message whose parts are scored as separate steps. */
  split?: SplitSteps;
}

function checkLimits(limits: CompileLimits): void {
  if (!Number.isInteger(limits.maxLength) || limits.maxLength < 2) throw new Error(`maxLength must be an integer ≥ 2 (got ${limits.maxLength})`);
  if (!Number.isInteger(limits.vocabSize) || limits.vocabSize < 1) throw new Error(`vocabSize must be a positive integer (got ${limits.vocabSize})`);
}

function checkVocabulary(ids: readonly number[], vocabSize: number): void {
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw unprocessable(
        'ids_out_of_vocabulary',
        `token ${JSON.stringify(id)} at position ${k} is not an id of the model's vocabulary [0, ${vocabSize})` +
          ' (either given as such, or the tokenizer is larger than the model)',
      );
    }
  }
}

function checkIdList(ids: unknown, field: string): asserts ids is number[] {
  if (!Array.isArray(ids)) throw badRequest('invalid_ids', `${field} must be a list of token ids`);
}

function fit(draft: Assembled, list: PieceList, limits: CompileLimits, tokenization: TokenizationProfile): Compiled {
  if (draft.ids.length > limits.maxLength && !limits.truncate) {
    throw unprocessable(
      'input_too_long',
      `the input has ${draft.ids.length} tokens, more than the model's max length ${limits.maxLength}; shorten it or allow truncate`,
    );
  }
  // Window mode keeps every token; the pipeline cuts the sequence into windows of max length.
  const keep = (limits.longContext ?? 'window') === 'window' ? Infinity : limits.maxLength;
  const sequence = truncateLeft(draft, keep);
  const ranges = truncateRanges(draft.ranges, draft, keep);
  const shift = sequence.truncatedTokens ?? 0;
  const spanOf = new Map(sequence.spans.map((s) => [s.index, s]));
  const pieces = list.pieces.map((piece: Piece, i): CompiledPiece => {
    const out: CompiledPiece = { text: piece.text ?? null, start: ranges[i].start, end: ranges[i].end, scored: false };
    const span = piece.step ? spanOf.get(piece.step.index) : undefined;
    if (piece.step && span) {
      // The scored tokens are the span's: a step that lost tokens to the cut is not scored at all,
      // unless it is too long for one pass (partial: its most recent tokens are scored).
      Object.assign(out, { start: span.start, end: span.end, scored: span.truncated !== true, step: span.index });
      if (span.partial) out.partial = true;
      if (span.role !== undefined) out.role = span.role;
      const agent = span.name ?? span.role;
      if (agent !== undefined) out.agent = agent;
    }
    if (ranges[i].truncated || span?.truncated || span?.partial) out.truncated = true;
    return out;
  });
  const added = draft.added.map((p) => (p < draft.pinned ? p : p - shift)).filter((p) => p >= 0);
  const bosAdded = draft.added[0] === 0 && sequence.ids[0] === draft.ids[0];
  return { sequence, tokenization, pieces, added, bosAdded };
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

// ---------------------------------------------------------------------------------------------
// One step (/v1/score)

function stepPieces(input: StepInput, tok: TextTokenizer): PieceList {
  const hasMessages = present(input.messages);
  const textStep = present(input.step);
  if (hasMessages) {
    if (!textStep) throw badRequest('conflicting_fields', 'messages take a text step, not step_ids');
    validateMessages(input.messages);
    const conversation = [...input.messages, { role: 'assistant', content: input.step! }];
    const last = conversation.length - 1;
    const list = messagePieces(conversation, tok, {
      render: input.render ?? 'plain',
      label: input.label,
      actionRoles: DEFAULT_ACTION_ROLES,
      tools: input.tools,
      scoreOnly: new Set([last]),
    });
    const stepPiece = list.pieces[last];
    stepPiece.step = { ...stepPiece.step!, index: 0 };
    return list;
  }
  if (textStep) {
    if (typeof input.step !== 'string') throw badRequest('invalid_step', 'step must be a string');
    if (present(input.prompt) && typeof input.prompt !== 'string') throw badRequest('invalid_prompt', 'prompt must be a string');
    const pieces: Piece[] = [{ text: input.prompt ?? '' }, { text: input.step!, step: { index: 0 } }];
    return { pieces, wantsBos: true };
  }
  checkIdList(input.step_ids, 'step_ids');
  if (present(input.prompt_ids)) checkIdList(input.prompt_ids, 'prompt_ids');
  const pieces: Piece[] = [{ ids: [...(input.prompt_ids ?? [])] }, { ids: [...input.step_ids], step: { index: 0 } }];
  return { pieces, wantsBos: false };
}

function checkStepFields(input: StepInput): void {
  const has = (k: keyof StepInput) => present(input[k]);
  if (has('prompt') && has('prompt_ids')) throw badRequest('conflicting_fields', 'give prompt or prompt_ids, not both');
  if (has('step') && has('step_ids')) throw badRequest('conflicting_fields', 'give step or step_ids, not both');
  if (has('messages') && (has('prompt') || has('prompt_ids'))) throw badRequest('conflicting_fields', 'give messages or a prompt, not both');
  if ((has('prompt') && has('step_ids')) || (has('prompt_ids') && has('step'))) {
    throw badRequest('conflicting_fields', 'text and token ids cannot be mixed: use prompt+step or prompt_ids+step_ids');
  }
  if (!has('step') && !has('step_ids')) throw badRequest('missing_step', 'give the step to score as step (text) or step_ids');
  if (input.step === '' || (Array.isArray(input.step_ids) && input.step_ids.length === 0)) {
    throw unprocessable('empty_step', 'the step is empty');
  }
}

/**
 * One step in its context → a Sequence with a single span (index 0), with what each piece became.
 * Text, paper: ids = [BOS if named] + encode(prompt) + encode(step); the span is exactly encode(step).
 * Text, joint: ids = tokenizer(prompt + step); the span is the tokens starting inside the step.
 * Ids: ids = prompt_ids + step_ids, untouched.
 */
export function compileStepDetailed(input: StepInput, tok: TextTokenizer, limits: CompileLimits): Compiled {
  checkLimits(limits);
  checkStepFields(input);
  const tokenization = checkProfile(input.tokenization);
  const list = stepPieces(input, tok);
  const draft = assemble(list, tok, tokenization);
  const stepLength = draft.spans[0].end - draft.spans[0].start;
  // With truncate, a long step is scored across windows, or partly (long_context "truncate").
  if (!limits.truncate && stepLength > limits.maxLength - 1) {
    throw unprocessable(
      'step_too_long',
      `the step has ${stepLength} tokens; with at least one token of context it must fit in max length ${limits.maxLength} (or allow truncate)`,
    );
  }
  checkVocabulary(draft.ids, limits.vocabSize);
  if (draft.spans[0].start === 0) {
    throw unprocessable(
      'no_context',
      'nothing precedes the step and the tokenizer has no BOS, so its first token cannot be scored; give a prompt (or prompt_ids starting with a BOS id)',
    );
  }
  return fit(draft, list, limits, tokenization);
}

export function compileStep(input: StepInput, tok: TextTokenizer, limits: CompileLimits): Sequence {
  return compileStepDetailed(input, tok, limits).sequence;
}

// ---------------------------------------------------------------------------------------------
// A trajectory (/v1/trajectories/score, /v1/attribute)

function checkActionRoles(roles: unknown): readonly string[] {
  if (roles === undefined || roles === null) return DEFAULT_ACTION_ROLES;
  if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string')) {
    throw badRequest('invalid_action_roles', 'action_roles must be a list of role or agent names');
  }
  return roles;
}

function checkExcludeAgents(names: unknown): readonly string[] {
  if (names === undefined || names === null) return [];
  if (!Array.isArray(names) || names.some((r) => typeof r !== 'string')) {
    throw badRequest('invalid_action_roles', 'exclude_agents must be a list of agent names (or roles)');
  }
  return names;
}

function trajectoryPieces(input: TrajectoryInput, tok: TextTokenizer): PieceList {
  const hasMessages = present(input.messages);
  const hasSegments = present(input.segments);
  if (hasMessages && hasSegments) throw badRequest('conflicting_fields', 'give messages or segments, not both');
  if (!hasMessages && !hasSegments) throw badRequest('missing_trajectory', 'give the trajectory as messages or segments');
  if (hasSegments) {
    if (!Array.isArray(input.segments)) throw badRequest('invalid_segment', 'segments must be a list');
    if (input.segments.length === 0) throw unprocessable('empty_trajectory', 'segments is empty');
    return segmentPieces(input.segments);
  }
  validateMessages(input.messages);
  if (input.messages.length === 0) throw unprocessable('empty_trajectory', 'messages is empty');
  return messagePieces(input.messages, tok, {
    render: input.render ?? 'plain',
    label: input.label,
    actionRoles: checkActionRoles(input.action_roles),
    excludeAgents: checkExcludeAgents(input.exclude_agents),
    tools: input.tools,
    ...(input.steps ? { scoreOnly: new Set(input.steps) } : {}),
    ...(input.verbatim ? { verbatim: true } : {}),
    ...(input.split ? { split: input.split } : {}),
  });
}

/** A step at position 0 has no context for its first token: score it from its second. */
function skipUnscorableFirstToken(spans: Span[]): void {
  const first = spans[0];
  if (!first || first.start !== 0) return;
  if (first.end <= 1) {
    throw unprocessable('no_context', `step ${first.index} is a single token at the very start with no BOS before it; nothing of it can be scored`);
  }
  first.start = 1;
}

/** no_steps names what it saw and what it looked for, so a typo ("assitant") is visible at once. */
function noStepsMessage(input: TrajectoryInput): string {
  if (!present(input.messages)) return 'no segment is a step: none has score: true';
  const quoted = (xs: Iterable<string>) => [...new Set(xs)].map((x) => JSON.stringify(x.slice(0, 64))).join(', ');
  const messages = input.messages as { role?: unknown; name?: unknown }[];
  const roles = quoted(messages.map((m) => m.role).filter((r): r is string => typeof r === 'string'));
  const names = quoted(messages.map((m) => m.name).filter((n): n is string => typeof n === 'string'));
  return (
    `no message is a step: the roles seen are ${roles || 'none'}${names ? ` and the names ${names}` : ''}, ` +
    `but the action roles looked for are ${quoted(checkActionRoles(input.action_roles))} (set action_roles to change them)`
  );
}

/** A whole trajectory → one Sequence with a span per step (span.index = message/segment index), with what each piece became. */
export function compileTrajectoryDetailed(input: TrajectoryInput, tok: TextTokenizer, limits: CompileLimits): Compiled {
  checkLimits(limits);
  const tokenization = checkProfile(input.tokenization);
  const list = trajectoryPieces(input, tok);
  if (!list.pieces.some((p) => p.step)) throw unprocessable('no_steps', noStepsMessage(input));
  const draft = assemble(list, tok, tokenization);
  checkVocabulary(draft.ids, limits.vocabSize);
  skipUnscorableFirstToken(draft.spans);
  return fit(draft, list, limits, tokenization);
}

export function compileTrajectory(input: TrajectoryInput, tok: TextTokenizer, limits: CompileLimits): Sequence {
  return compileTrajectoryDetailed(input, tok, limits).sequence;
}
