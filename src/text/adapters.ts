/**
 * Input adapters: one record of a published agent data set → OpenAI-form messages, the roles
 * (or agent names) whose messages are steps, and the labels the record carries. Checked against
 * the real files in ../shared/real/data (see its README for their provenance).
 *
 *   messages           an OpenAI message list, or {messages, id?, success?, mistake_step?,
 *                      mistake_agent?, action_roles?, tools?, task_id?} (also `labels: {...}`;
 *                      `first_bad_message` is read as mistake_step: the gridworld evaluation file)
 *   who_and_when       Who&When (ag2ai/Agents_Failure_Attribution): {question, history,
 *                      mistake_agent, mistake_step: "N" (0-based into history), is_correct?};
 *                      the history is rendered as it is (the question is its Hand-Crafted opening)
 *   tau_bench          τ-bench historical trajectories: {task_id, trial, reward, traj: messages}
 *   agentprocessbench  AgentProcessBench rows: {messages, step_labels: {"msg index": 1|0|-1},
 *                      final_label: 1|-1, tools}
 *   processbench       ProcessBench rows: {id, problem, steps: string[], label: first wrong step or -1}.
 *                      Each step is its own assistant message, so the messages are consecutive
 *                      assistant turns, which chat templates that require alternating roles
 *                      (Llama-2's) refuse; `join_steps` renders them as one assistant message with
 *                      a span per step (step k keeps index k + 1, as mistake_step counts).
 *
 * Who&When Algorithm-Generated logs interleave Computer_terminal turns (code-execution output)
 * with the experts' messages; by the default rule every named agent is an actor, so they are
 * steps. `exclude_agents: ["Computer_terminal"]` is the usual choice to score them as
 * observations instead.
 *
 * `mistake_step` is always an index into the returned `messages` (shifted when the adapter adds
 * a message in front). Records that do not fit their format fail with 422
 * `invalid_trajectory_data` naming the field; an unknown format is 400 `invalid_format`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badRequest, ServiceError, unprocessable } from '../errors.js';
import type { SplitSteps } from './pieces.js';
import { DEFAULT_ACTION_ROLES, validateMessages, type Message } from './messages.js';
import { annotateArguments } from './python-repr.js';

export const TRAJECTORY_FORMATS = ['messages', 'who_and_when', 'tau_bench', 'agentprocessbench', 'processbench'] as const;
export type TrajectoryFormat = (typeof TRAJECTORY_FORMATS)[number];

export interface TrajectoryLabels {
  /** Did the run reach its goal. */
  success?: boolean;
  /** Index into `messages` of the first wrong step; null when the record says there is none. */
  mistake_step?: number | null;
  /** The agent (name or role) that made the mistake. */
  mistake_agent?: string | null;
}

export interface AdaptedTrajectory {
  /** The record's own identifier, when it has one. */
  id?: string;
  /** The task the record attempts (best-of-N groups trajectories by it), when the record names one. */
  group?: string;
  messages: Message[];
  /** Roles or agent names whose messages are steps; absent means the default (assistant). */
  action_roles?: string[];
  /** The messages that are steps, by index, when the format decides it per message (Who&When); action_roles then does not apply. */
  steps?: number[];
  /** Plain rendering writes every message as `[role]: content`, without the assistant-turn rule (Who&When). */
  verbatim?: boolean;
  /** Tool definitions the record ships (for chat templates that describe them). */
  tools?: unknown[];
  /** One message holding several steps (ProcessBench with join_steps): each part is scored as its own span. */
  split?: SplitSteps;
  labels: TrajectoryLabels;
}

export interface AdaptOptions {
  /** ProcessBench: one assistant message with a span per step, for templates that need alternating roles. */
  join_steps?: boolean;
}

/** ProcessBench steps joined into one message are separated by a blank line, as the data set writes them. */
export const JOINED_STEP_SEPARATOR = '\n\n';

type Json = Record<string, unknown>;

function invalid(format: string, message: string): ServiceError {
  return unprocessable('invalid_trajectory_data', `${format} data: ${message}`);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireObject(format: string, data: unknown): Json {
  if (!isObject(data)) throw invalid(format, `must be an object (got ${describe(data)})`);
  return data;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value;
}

/** Runs the shared message checks, reporting the field the messages came from. */
function checkMessages(format: string, field: string, messages: unknown): Message[] {
  if (messages === undefined) throw invalid(format, `missing "${field}" (a list of messages)`);
  try {
    validateMessages(messages);
  } catch (err) {
    if (err instanceof ServiceError) throw invalid(format, `${field}: ${err.message}`);
    throw err;
  }
  return messages;
}

/** An id or index given as a number or a numeric string (the data sets use both). */
function optionalString(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function parseIndex(format: string, field: string, value: unknown): number {
  const n = typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw invalid(format, `"${field}" must be an integer index (got ${JSON.stringify(value)})`);
  return n;
}

function checkStepIndex(format: string, field: string, index: number, messages: readonly unknown[]): number {
  if (index < 0 || index >= messages.length) {
    throw invalid(format, `"${field}" ${index} is outside the ${messages.length} messages`);
  }
  return index;
}

// ---------------------------------------------------------------- messages

function adaptMessages(data: unknown): AdaptedTrajectory {
  const F = 'messages';
  if (Array.isArray(data)) return { messages: checkMessages(F, 'data', data), labels: {} };
  const record = requireObject(F, data);
  const messages = checkMessages(F, 'messages', record.messages);
  const given = isObject(record.labels) ? { ...record, ...record.labels } : record;
  const labels: TrajectoryLabels = {};
  if (given.success !== undefined && given.success !== null) {
    if (typeof given.success !== 'boolean') throw invalid(F, `"success" must be true or false (got ${JSON.stringify(given.success)})`);
    labels.success = given.success;
  }
  const step = given.mistake_step !== undefined ? given.mistake_step : given.first_bad_message;
  const stepField = given.mistake_step !== undefined ? 'mistake_step' : 'first_bad_message';
  if (step === null) labels.mistake_step = null;
  else if (step !== undefined) labels.mistake_step = checkStepIndex(F, stepField, parseIndex(F, stepField, step), messages);
  if (given.mistake_agent !== undefined) {
    if (given.mistake_agent !== null && typeof given.mistake_agent !== 'string') throw invalid(F, '"mistake_agent" must be a string or null');
    labels.mistake_agent = given.mistake_agent;
  }
  const out: AdaptedTrajectory = { messages, labels };
  const id = optionalString(record.id);
  if (id !== undefined) out.id = id;
  const group = optionalString(record.group) ?? optionalString(record.task_id);
  if (group !== undefined) out.group = group;
  if (record.action_roles !== undefined) {
    if (!Array.isArray(record.action_roles) || !record.action_roles.every((r) => typeof r === 'string')) {
      throw invalid(F, '"action_roles" must be a list of strings');
    }
    out.action_roles = record.action_roles;
  }
  if (record.tools !== undefined) {
    if (!Array.isArray(record.tools)) throw invalid(F, '"tools" must be a list');
    out.tools = record.tools;
  }
  return out;
}

// ---------------------------------------------------------------- Who&When

/**
 * Who&When logs come in two shapes. Algorithm-Generated (AutoGen group chats): every entry names
 * its agent in `name` (experts and Computer_terminal), with role "assistant" or "user" as AutoGen
 * recorded it. Hand-Crafted (Magentic-One): no `name`; the role is the agent, with Orchestrator's
 * sub-roles in parentheses ("Orchestrator (thought)", "Orchestrator (-> WebSurfer)"), and "human"
 * for the question, which opens the log.
 *
 * As the paper's code does (design §2): the history is the conversation as it is, each entry
 * rendered with its record's `role` (the `name` is reported as the step's agent, not rendered
 * unless `label: "name"`); every entry with non-empty content is a step, except a Hand-Crafted
 * log's opening `human` entry. `mistake_step` indexes the history directly.
 */
function whoAndWhenMessage(F: string, entry: unknown, i: number): Message {
  if (!isObject(entry)) throw invalid(F, `history[${i}] must be an object`);
  const content = entry.content;
  if (content !== null && content !== undefined && typeof content !== 'string') {
    throw invalid(F, `history[${i}].content must be a string`);
  }
  if (typeof entry.role !== 'string' || entry.role === '') throw invalid(F, `history[${i}].role must be a non-empty string`);
  const text = (content as string | null | undefined) ?? '';
  if (entry.name !== undefined && entry.name !== null) {
    if (typeof entry.name !== 'string' || entry.name === '') throw invalid(F, `history[${i}].name must be a non-empty string`);
    return { role: entry.role, name: entry.name, content: text };
  }
  return { role: entry.role, content: text };
}

function adaptWhoAndWhen(data: unknown): AdaptedTrajectory {
  const F = 'who_and_when';
  const record = requireObject(F, data);
  if (!Array.isArray(record.history)) throw invalid(F, `missing "history" (a list of {role, content, name?}; got ${describe(record.history)})`);
  const messages = record.history.map((entry, i) => whoAndWhenMessage(F, entry, i));

  const labels: TrajectoryLabels = {};
  if (record.mistake_step === null) labels.mistake_step = null;
  else if (record.mistake_step !== undefined) {
    labels.mistake_step = checkStepIndex(F, 'mistake_step', parseIndex(F, 'mistake_step', record.mistake_step), messages);
  }
  if (record.mistake_agent !== undefined) {
    if (record.mistake_agent !== null && typeof record.mistake_agent !== 'string') throw invalid(F, '"mistake_agent" must be a string or null');
    labels.mistake_agent = record.mistake_agent;
  }
  // The data set collects failed runs: success unless a field says the answer was right.
  labels.success = record.is_correct === true || record.is_correct === 'True';

  const steps: number[] = [];
  messages.forEach((m, i) => {
    const opensWithHuman = i === 0 && m.role === 'human' && m.name === undefined;
    if (m.content !== '' && !opensWithHuman) steps.push(i);
  });
  if (steps.length === 0) throw invalid(F, 'no history entry has content, so nothing is a step');
  const out: AdaptedTrajectory = { messages, steps, verbatim: true, labels };
  const group = optionalString(record.question_ID);
  if (group !== undefined) out.group = group;
  return out;
}

// ---------------------------------------------------------------- τ-bench

/** τ-bench counts a run as passed when its reward is 1 (its own check: |r − 1| ≤ 1e-6). */
const TAU_PASS = 1 - 1e-6;

function adaptTauBench(data: unknown): AdaptedTrajectory {
  const F = 'tau_bench';
  const record = requireObject(F, data);
  const field = record.traj !== undefined ? 'traj' : 'messages';
  const messages = checkMessages(F, field === 'traj' ? 'traj' : 'traj (or messages)', record[field]);
  const labels: TrajectoryLabels = {};
  if (record.reward !== undefined && record.reward !== null) {
    const reward = typeof record.reward === 'string' ? Number(record.reward) : record.reward;
    if (typeof reward !== 'number' || !Number.isFinite(reward)) throw invalid(F, `"reward" must be a number (got ${JSON.stringify(record.reward)})`);
    labels.success = reward >= TAU_PASS;
  }
  const out: AdaptedTrajectory = { messages, action_roles: [...DEFAULT_ACTION_ROLES], labels };
  const task = optionalString(record.task_id);
  if (task !== undefined) {
    out.group = task;
    const trial = optionalString(record.trial);
    out.id = trial !== undefined ? `task-${task}-trial-${trial}` : `task-${task}`;
  }
  return out;
}

// ---------------------------------------------------------------- AgentProcessBench

function adaptAgentProcessBench(data: unknown): AdaptedTrajectory {
  const F = 'agentprocessbench';
  const record = requireObject(F, data);
  const messages = checkMessages(F, 'messages', record.messages);
  const labels: TrajectoryLabels = {};
  if (record.step_labels !== undefined && record.step_labels !== null) {
    if (!isObject(record.step_labels)) throw invalid(F, '"step_labels" must be an object {message index: 1 | 0 | -1}');
    let firstBad: number | null = null;
    for (const [key, value] of Object.entries(record.step_labels)) {
      const index = checkStepIndex(F, `step_labels key "${key}"`, parseIndex(F, `step_labels key "${key}"`, key), messages);
      if (messages[index].role !== 'assistant') {
        throw invalid(F, `step_labels labels messages[${index}], a "${messages[index].role}" message; labels belong to assistant steps`);
      }
      if (value !== 1 && value !== 0 && value !== -1) throw invalid(F, `step_labels["${key}"] must be 1, 0 or -1 (got ${JSON.stringify(value)})`);
      if (value === -1 && (firstBad === null || index < firstBad)) firstBad = index;
    }
    labels.mistake_step = firstBad;
  }
  if (record.final_label !== undefined && record.final_label !== null) {
    const final = typeof record.final_label === 'string' ? Number(record.final_label) : record.final_label;
    if (final !== 1 && final !== -1 && final !== 0) throw invalid(F, `"final_label" must be 1 or -1 (got ${JSON.stringify(record.final_label)})`);
    labels.success = final === 1;
  }
  const out: AdaptedTrajectory = { messages, action_roles: [...DEFAULT_ACTION_ROLES], labels };
  const source = optionalString(record.data_source);
  const index = optionalString(record.total_index);
  if (index !== undefined) out.id = source !== undefined ? `${source}:${index}` : index;
  const query = optionalString(record.query_index);
  if (query !== undefined) out.group = source !== undefined ? `${source}:${query}` : query;
  if (Array.isArray(record.tools)) out.tools = record.tools;
  return out;
}

// ---------------------------------------------------------------- ProcessBench

function adaptProcessBench(data: unknown, options: AdaptOptions = {}): AdaptedTrajectory {
  const F = 'processbench';
  const record = requireObject(F, data);
  if (typeof record.problem !== 'string') throw invalid(F, `missing "problem" (a string; got ${describe(record.problem)})`);
  if (!Array.isArray(record.steps) || record.steps.length === 0) throw invalid(F, 'missing "steps" (a non-empty list of strings)');
  record.steps.forEach((s, i) => {
    if (typeof s !== 'string') throw invalid(F, `steps[${i}] must be a string`);
  });
  const steps = record.steps as string[];
  const joined = options.join_steps === true;
  const messages: Message[] = joined
    ? [{ role: 'user', content: record.problem }, { role: 'assistant', content: steps.join(JOINED_STEP_SEPARATOR) }]
    : [{ role: 'user', content: record.problem }, ...steps.map((s) => ({ role: 'assistant', content: s }))];
  const labels: TrajectoryLabels = {};
  if (record.label !== undefined && record.label !== null) {
    const label = parseIndex(F, 'label', record.label);
    if (label < -1 || label >= steps.length) throw invalid(F, `"label" ${label} must be -1 or a step index below ${steps.length}`);
    labels.success = label === -1;
    // Step k is message k + 1 (the problem is message 0).
    labels.mistake_step = label === -1 ? null : label + 1;
  }
  const out: AdaptedTrajectory = { messages, action_roles: [...DEFAULT_ACTION_ROLES], labels };
  if (joined) out.split = { message: 1, separator: JOINED_STEP_SEPARATOR, parts: steps.map((text, k) => ({ index: k + 1, text })) };
  const id = optionalString(record.id);
  if (id !== undefined) out.id = id;
  return out;
}

const ADAPTERS: Record<TrajectoryFormat, (data: unknown, options?: AdaptOptions) => AdaptedTrajectory> = {
  messages: adaptMessages,
  who_and_when: adaptWhoAndWhen,
  tau_bench: adaptTauBench,
  agentprocessbench: adaptAgentProcessBench,
  processbench: adaptProcessBench,
};

export function isTrajectoryFormat(format: unknown): format is TrajectoryFormat {
  return typeof format === 'string' && (TRAJECTORY_FORMATS as readonly string[]).includes(format);
}

/** One record of `format` → messages, step roles and labels. */
export function adaptTrajectory(format: string, data: unknown, options: AdaptOptions = {}): AdaptedTrajectory {
  if (!isTrajectoryFormat(format)) {
    throw badRequest('invalid_format', `format must be one of ${TRAJECTORY_FORMATS.join(', ')} (got ${JSON.stringify(format)})`);
  }
  if (options.join_steps && format !== 'processbench') throw badRequest('conflicting_fields', `join_steps applies to format "processbench", not "${format}"`);
  return ADAPTERS[format](data, options);
}

// ---------------------------------------------------------------- files

/** A file or record that cannot be read as trajectories; the message names the file and line. */
export class TrajectoryFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrajectoryFileError';
  }
}

export interface FileTrajectory {
  /** Unique within the read: the record's own id, else its file (and line or position). */
  id: string;
  /** The task, for best-of-N grouping, when the record names one. */
  group?: string;
  trajectory: AdaptedTrajectory;
}

const TRAJECTORY_FILE = /\.(jsonl|json)$/i;

/** *.json / *.jsonl under `dir`, in natural order (2.json before 10.json), hidden entries skipped. */
function listTrajectoryFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    const entries = fs.readdirSync(d, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
    entries.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && TRAJECTORY_FILE.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** An OpenAI message list written as one JSON array (the `messages` format's bare form). */
function isMessageList(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && value.every((m) => isObject(m) && typeof m.role === 'string');
}

interface RawRecord {
  data: unknown;
  /** "file:line" (JSONL), "file#i" (JSON list) or "file" (one record). */
  where: string;
}

function parseJson(text: string, where: string): unknown {
  try {
    const value = JSON.parse(text);
    annotateArguments(text, value);
    return value;
  } catch (err) {
    throw new TrajectoryFileError(`${where}: not valid JSON (${(err as Error).message})`);
  }
}

function readRecords(file: string, label: string, format: TrajectoryFormat): RawRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TrajectoryFileError(`${file}: cannot read (${(err as Error).message})`);
  }
  if (/\.jsonl$/i.test(file)) {
    const records: RawRecord[] = [];
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `${label}:${i + 1}`;
      records.push({ data: parseJson(line, where), where });
    });
    return records;
  }
  const data = parseJson(text, label);
  // A JSON file holds one record (a Who&When case), or a list of records (the τ-bench file) —
  // except that a bare message list is one `messages` record.
  if (Array.isArray(data) && !(format === 'messages' && isMessageList(data))) {
    return data.map((d, i) => ({ data: d, where: `${label}#${i}` }));
  }
  return [{ data, where: label }];
}

/**
 * Every trajectory in a .json / .jsonl file, or in the *.json / *.jsonl files under a directory
 * (Who&When ships one JSON per case), adapted from `format`, in file and line order. Fails on the
 * first record that does not fit, naming its file and line. Ids must be unique (resumable scoring
 * keys on them): a record's own id, else where it was read ("Hand-Crafted/12", "rows.jsonl:3").
 */
export function readTrajectoryFile(input: string, format: string): FileTrajectory[] {
  if (!isTrajectoryFormat(format)) {
    throw new TrajectoryFileError(`unknown format ${JSON.stringify(format)}; one of ${TRAJECTORY_FORMATS.join(', ')}`);
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(input);
  } catch {
    throw new TrajectoryFileError(`${input}: no such file or directory`);
  }
  const files = stat.isDirectory() ? listTrajectoryFiles(input) : [input];
  if (files.length === 0) throw new TrajectoryFileError(`${input}: no .json or .jsonl files in this directory`);
  const out: FileTrajectory[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    const relative = stat.isDirectory() ? path.relative(input, file) : path.basename(file);
    const label = relative.split(path.sep).join('/');
    const records = readRecords(file, label, format);
    const fallbackStem = label.replace(TRAJECTORY_FILE, '');
    for (const { data, where } of records) {
      let trajectory: AdaptedTrajectory;
      try {
        trajectory = adaptTrajectory(format, data);
      } catch (err) {
        throw new TrajectoryFileError(`${where}: ${(err as Error).message}`);
      }
      const id = trajectory.id ?? (where === label ? fallbackStem : where);
      const previous = seen.get(id);
      if (previous !== undefined) throw new TrajectoryFileError(`${where}: id "${id}" repeats ${previous}; ids must be unique`);
      seen.set(id, where);
      out.push({ id, ...(trajectory.group !== undefined ? { group: trajectory.group } : {}), trajectory });
    }
  }
  if (out.length === 0) throw new TrajectoryFileError(`${input}: no records`);
  return out;
}
