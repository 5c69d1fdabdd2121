/**
 * `pa-server eval`: the paper's three uses of progress advantage, measured on a file written by
 * `pa-server score` (one JSON line per trajectory with `labels`, `steps`, `aggregates` and, when
 * scored with --baselines, `baselines`), each against the policy's own confidence baselines:
 *
 *   bon  best-of-N: in each group of trajectories attempting the same task (--group-by FIELD,
 *        default "group": the task id the input adapter found — task_id of a messages record such
 *        as the gridworld evaluation file, τ-bench's task_id, Who&When's question_ID,
 *        AgentProcessBench's query), pick the top-scored trajectory (first in id order on ties) and count its
 *        success; compared with mean-of-N (a random pick) and pass@N (an oracle that picks a
 *        success whenever the group has one).
 *   uq   success prediction: AUROC and Spearman of each trajectory score against success.
 *   fa   failure attribution, over failed trajectories with a labelled mistake_step that is one
 *        of their steps: step accuracy (the blamed message is the labelled one), MAE in steps,
 *        and agent accuracy where mistake_agent is labelled. Progress advantage blames with each
 *        attribution method; a baseline blames its least confident step; `random` is the
 *        expectation of a uniform pick among the scored steps.
 *
 * A null score (a trajectory or step with no scored token) is missing, never a number: bon and uq
 * leave the trajectory out of that method and count it (`unscored`); fa blames only scored steps,
 * counts the failures whose labelled step was not scored, and reports step accuracy both over the
 * failures whose labelled step was scored and over all of them (an unscored label is a miss).
 *
 * Every number comes with a percentile-bootstrap 95% interval over groups (tasks), seeded.
 * A later line for an id replaces an earlier one (a resumed run retries refused trajectories);
 * lines with an `error` are left out and counted. Several files (or directories of them, such as
 * the outputs of `pa-server score --shard I/N`) are read as one set, and the lines are taken in
 * id order, so the report is the same however the trajectories were split into files.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  ATTRIBUTION_METHODS,
  attributeFailure,
  auroc,
  BASELINES,
  bestOfN,
  bootstrapInterval,
  spearman,
  STEP_AGGREGATES,
  TRAJECTORY_BASELINES,
  type Interval,
} from '../scoring/index.js';
import type { TrajectoryLabels } from '../text/adapters.js';

export const EVAL_TASKS = ['bon', 'uq', 'fa'] as const;
export type EvalTask = (typeof EVAL_TASKS)[number];

export interface ScoredStep {
  index: number;
  role?: string;
  name?: string;
  /** null: no token of the step was scored. */
  advantage: number | null;
  truncated?: boolean;
  baselines?: Record<string, number | null> | null;
}

export interface ScoreLine {
  id: string;
  labels?: TrajectoryLabels;
  steps?: ScoredStep[];
  aggregates?: Record<string, number | null>;
  baselines?: Record<string, number | null>;
  error?: unknown;
  [field: string]: unknown;
}

export class EvalInputError extends Error {}

export interface ScoresFile {
  /** One entry per id (its last line), in id order (natural: "case-2" before "case-10"). */
  lines: ScoreLine[];
  /** Ids whose last line is an error. */
  errors: number;
  /** Lines replaced by a later line with the same id. */
  replaced: number;
  /** The files read, in reading order (a directory expanded to its *.jsonl files). */
  files: string[];
}

/** Natural order of ids: digit runs compare as numbers, the rest by code unit; ties by code unit. */
export function compareIds(a: string, b: string): number {
  const chunks = (s: string) => s.match(/\d+|\D+/g) ?? [];
  const x = chunks(a);
  const y = chunks(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] === y[i]) continue;
    const dx = /^\d/.test(x[i]);
    const dy = /^\d/.test(y[i]);
    if (dx && dy) {
      const nx = x[i].replace(/^0+(?=\d)/, '');
      const ny = y[i].replace(/^0+(?=\d)/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      continue;
    }
    return x[i] < y[i] ? -1 : 1;
  }
  if (x.length !== y.length) return x.length - y.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The files behind `paths`: a file as given; a directory's *.jsonl files (not hidden, not nested) in natural order. */
export function scoreFilesOf(paths: readonly string[]): string[] {
  if (paths.length === 0) throw new EvalInputError('no scores file given');
  return paths.flatMap((p) => {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch (err) {
      throw new EvalInputError(`${p}: cannot read (${(err as Error).message})`);
    }
    if (!stat.isDirectory()) return [p];
    const files = fs
      .readdirSync(p, { withFileTypes: true })
      .filter((e) => e.isFile() && !e.name.startsWith('.') && /\.jsonl$/i.test(e.name))
      .map((e) => e.name)
      .sort(compareIds)
      .map((name) => path.join(p, name));
    if (files.length === 0) throw new EvalInputError(`${p}: a directory without *.jsonl score files`);
    return files;
  });
}

/**
 * The scores of one or several files (or directories of them), read as if concatenated in the
 * given order: one entry per id (its last line), error lines counted and left out. The lines are
 * put in id order, so the report does not depend on how they were split into files (the shards
 * of `pa-server score --shard`) or on the order of the files.
 */
export function readScores(input: string | readonly string[]): ScoresFile {
  const files = scoreFilesOf(typeof input === 'string' ? [input] : input);
  const byId = new Map<string, ScoreLine>();
  let replaced = 0;
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new EvalInputError(`${file}: cannot read (${(err as Error).message})`);
    }
    text.split('\n').forEach((raw, i) => {
      if (raw.trim() === '') return;
      let line: ScoreLine;
      try {
        line = JSON.parse(raw);
      } catch {
        throw new EvalInputError(`${file}:${i + 1}: not valid JSON`);
      }
      if (typeof line !== 'object' || line === null || typeof line.id !== 'string') {
        throw new EvalInputError(`${file}:${i + 1}: a line without a string "id" (is this a pa-server score output?)`);
      }
      if (line.error === undefined && (!Array.isArray(line.steps) || typeof line.aggregates !== 'object' || line.aggregates === null)) {
        throw new EvalInputError(`${file}:${i + 1}: no "steps"/"aggregates" (is this a pa-server score output?)`);
      }
      if (byId.has(line.id)) replaced++;
      byId.set(line.id, line);
    });
  }
  const all = [...byId.values()].sort((a, b) => compareIds(a.id, b.id));
  const lines = all.filter((l) => l.error === undefined);
  if (lines.length === 0) throw new EvalInputError(`${files.join(', ')}: no scored trajectories`);
  return { lines, errors: all.length - lines.length, replaced, files };
}

export interface EvalOptions {
  task: EvalTask;
  /** Field of each line naming its task; default "group". */
  groupBy?: string;
  resamples?: number;
  level?: number;
  seed?: number;
  /**
   * fa: also attribute with these speakers' steps left out (Who&When: Computer_terminal), as
   * `exclude_agents` does at scoring time: the other steps' advantages are the same numbers (the
   * token sequence does not change), so dropping the steps here is exact. Rows get a suffix.
   */
  excludeAgents?: string[];
}

/** A trajectory score method: progress advantage with a step aggregate, or a confidence baseline. */
interface Method {
  name: string;
  /** null: the trajectory has no such score (nothing of it was scored); it is never ranked. */
  score(line: ScoreLine): number | null;
}

/** A score, or null when it is missing (null in the file, absent, or not a finite number). */
function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function trajectoryMethods(lines: readonly ScoreLine[]): Method[] {
  const methods: Method[] = STEP_AGGREGATES.map((a) => ({ name: `pa_${a}`, score: (l: ScoreLine) => finite(l.aggregates?.[a]) }));
  // Baselines only when every trajectory was scored with them (--baselines).
  if (lines.every((l) => l.baselines && typeof l.baselines === 'object')) {
    for (const b of TRAJECTORY_BASELINES) methods.push({ name: b, score: (l) => finite(l.baselines?.[b]) });
  }
  return methods;
}

interface Grouped<T> {
  key: string;
  items: T[];
}

/**
 * Lines grouped by `field`. bon needs real groups (a missing field is an error); uq and fa only
 * bootstrap over groups, so without the default field each trajectory is its own group.
 */
function groupLines<T extends { line: ScoreLine }>(items: readonly T[], field: string, required: boolean, explicit: boolean): { groups: Grouped<T>[]; by: string } {
  const missing = items.find((it) => it.line[field] === undefined || it.line[field] === null);
  if (missing) {
    if (required || explicit) {
      throw new EvalInputError(
        `trajectory "${missing.line.id}" has no "${field}" field to group by; pass --group-by FIELD naming the task (e.g. task_id)`,
      );
    }
    return { groups: items.map((it) => ({ key: it.line.id, items: [it] })), by: 'id' };
  }
  const map = new Map<string, T[]>();
  for (const it of items) {
    const key = String(it.line[field]);
    const list = map.get(key);
    if (list) list.push(it);
    else map.set(key, [it]);
  }
  return { groups: [...map].map(([key, list]) => ({ key, items: list })), by: field };
}

function mean(values: readonly number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
}

/** Mean of the values that exist; NaN when none does (the bootstrap skips such resamples). */
function meanOfPresent(values: readonly (number | undefined)[]): number {
  return mean(values.filter((v): v is number => v !== undefined));
}

// ---------------------------------------------------------------- bon

export interface BonReport {
  task: 'bon';
  group_by: string;
  groups: number;
  trajectories: number;
  group_size: { min: number; max: number; mean: number };
  mean_of_n: Interval;
  pass_at_n: Interval;
  /** Best-of-N success over the groups with a scored trajectory; unscored trajectories are never picked. */
  methods: Record<string, Interval>;
  /** Per method: trajectories it could not score (left out of its picks). */
  unscored: Record<string, number>;
}

function evalBon(lines: readonly ScoreLine[], options: Required<Omit<EvalOptions, 'groupBy'>> & { groupBy: string; explicit: boolean }): BonReport {
  const labelled = lines.filter((l) => typeof l.labels?.success === 'boolean').map((line) => ({ line, success: line.labels!.success! }));
  if (labelled.length === 0) throw new EvalInputError('bon needs labels.success on the trajectories; none has it');
  const { groups, by } = groupLines(labelled, options.groupBy, true, options.explicit);
  const boot = (stat: (g: (typeof groups)[number]) => number) =>
    bootstrapInterval(groups, (sample) => mean(sample.map(stat)), { resamples: options.resamples, level: options.level, seed: options.seed });
  const methods: Record<string, Interval> = {};
  const unscored: Record<string, number> = {};
  for (const m of trajectoryMethods(labelled.map((x) => x.line))) {
    const pick = new Map(
      groups.map((g) => {
        const scored = g.items.map((it) => ({ score: m.score(it.line), success: it.success })).filter((x): x is { score: number; success: boolean } => x.score !== null);
        // A group none of whose trajectories was scored has no pick: it takes no part in this method.
        const value = scored.length === 0 ? undefined : bestOfN(scored.map((x) => x.score), scored.map((x) => x.success)) ? 1 : 0;
        return [g, value] as const;
      }),
    );
    methods[m.name] = bootstrapInterval(groups, (sample) => meanOfPresent(sample.map((g) => pick.get(g))), {
      resamples: options.resamples,
      level: options.level,
      seed: options.seed,
    });
    unscored[m.name] = labelled.filter((x) => m.score(x.line) === null).length;
  }
  const sizes = groups.map((g) => g.items.length);
  return {
    task: 'bon',
    group_by: by,
    groups: groups.length,
    trajectories: labelled.length,
    group_size: { min: Math.min(...sizes), max: Math.max(...sizes), mean: mean(sizes) },
    mean_of_n: boot((g) => mean(g.items.map((it) => (it.success ? 1 : 0)))),
    pass_at_n: boot((g) => (g.items.some((it) => it.success) ? 1 : 0)),
    methods,
    unscored,
  };
}

// ---------------------------------------------------------------- uq

export interface UqReport {
  task: 'uq';
  group_by: string;
  trajectories: number;
  successes: number;
  failures: number;
  /** Over the trajectories each method scored. */
  methods: Record<string, { auroc: Interval; spearman: Interval }>;
  /** Per method: trajectories it could not score (left out of its AUROC and Spearman). */
  unscored: Record<string, number>;
}

function evalUq(lines: readonly ScoreLine[], options: Required<Omit<EvalOptions, 'groupBy'>> & { groupBy: string; explicit: boolean }): UqReport {
  const labelled = lines.filter((l) => typeof l.labels?.success === 'boolean').map((line) => ({ line, success: line.labels!.success! }));
  const successes = labelled.filter((x) => x.success).length;
  if (successes === 0 || successes === labelled.length) {
    throw new EvalInputError(`uq needs both successes and failures in labels.success (found ${successes} of ${labelled.length})`);
  }
  const { groups, by } = groupLines(labelled, options.groupBy, false, options.explicit);
  const methods: UqReport['methods'] = {};
  const unscored: Record<string, number> = {};
  for (const m of trajectoryMethods(labelled.map((x) => x.line))) {
    const stat = (fn: (scores: number[], ok: boolean[]) => number) => (sample: readonly (typeof groups)[number][]) => {
      const items = sample
        .flatMap((g) => g.items)
        .map((it) => ({ score: m.score(it.line), success: it.success }))
        .filter((x): x is { score: number; success: boolean } => x.score !== null);
      return fn(
        items.map((it) => it.score),
        items.map((it) => it.success),
      );
    };
    unscored[m.name] = labelled.filter((x) => m.score(x.line) === null).length;
    const o = { resamples: options.resamples, level: options.level, seed: options.seed };
    methods[m.name] = {
      auroc: bootstrapInterval(groups, stat(auroc), o),
      spearman: bootstrapInterval(
        groups,
        stat((s, ok) => spearman(s, ok.map(Number))),
        o,
      ),
    };
  }
  return { task: 'uq', group_by: by, trajectories: labelled.length, successes, failures: labelled.length - successes, methods, unscored };
}

// ---------------------------------------------------------------- fa

interface FaCase {
  line: ScoreLine;
  /** Position of the labelled step. */
  label: number;
  agent: string | null;
}

interface FaOutcome {
  /** The labelled step was among the steps this predictor could blame (it was scored). */
  labelScored: boolean;
  correct: number;
  /** Only where the label was scored. */
  error?: number;
  agent?: number;
}

export interface FaMetrics {
  /** Over the failures whose labelled step was scored. */
  step_accuracy: Interval;
  /** Over all failures with a labelled step: an unscored label counts as a miss. */
  step_accuracy_all: Interval;
  mae: Interval;
  agent_accuracy?: Interval;
}

export interface FaReport {
  task: 'fa';
  group_by: string;
  /** Failed trajectories whose labelled mistake_step is one of their steps. */
  trajectories: number;
  /** Of those, how many had their labelled step scored (a non-null advantage), and how many not. */
  scored_labels: number;
  unscored_labels: number;
  /** Of the unscored: trajectories with no scored step at all (nothing can be blamed). */
  no_scored_steps: number;
  /** Failed trajectories with a labelled mistake_step left out, and why. */
  excluded: { label_not_a_step: number };
  with_agent_label: number;
  methods: Record<string, FaMetrics>;
}

/**
 * The step's agent: its name, else its role. Who&When's Hand-Crafted (Magentic-One) roles carry
 * Orchestrator's sub-role in parentheses ("Orchestrator (thought)"), which mistake_agent omits.
 */
const agentOf = (s: ScoredStep) => {
  const agent = s.name ?? s.role ?? null;
  return agent === null ? null : agent.replace(/\s*\(.*\)\s*$/, '') || agent;
};

/**
 * Positions that can be blamed by a per-step value: those where it is a number (never a truncated
 * step), less the steps of `exclude`d agents while any other is left. `scored` keeps them all.
 */
function blameable(c: FaCase, value: (s: ScoredStep) => unknown, exclude: readonly string[] = []): { positions: number[]; values: number[]; scored: number[] } {
  const scored: number[] = [];
  const all: number[] = [];
  c.line.steps!.forEach((s, p) => {
    const v = finite(value(s));
    if (v !== null && !s.truncated) {
      scored.push(p);
      all.push(v);
    }
  });
  const kept = scored.map((p, i) => i).filter((i) => !exclude.includes(agentOf(c.line.steps![scored[i]]) ?? ''));
  if (exclude.length === 0 || kept.length === 0) return { positions: scored, values: all, scored };
  return { positions: kept.map((i) => scored[i]), values: kept.map((i) => all[i]), scored };
}

/** `scored`: every step with a number, whether or not it could be blamed (the label's step counts as scored). */
function blameOutcome(c: FaCase, scored: readonly number[], blamed: number | undefined): FaOutcome {
  const labelScored = scored.includes(c.label);
  if (blamed === undefined) return { labelScored, correct: 0 };
  const out: FaOutcome = { labelScored, correct: blamed === c.label ? 1 : 0 };
  if (labelScored) {
    out.error = Math.abs(blamed - c.label);
    if (c.agent !== null) out.agent = agentOf(c.line.steps![blamed]) === c.agent ? 1 : 0;
  }
  return out;
}

/** A uniform pick among the scored steps, in expectation. */
function randomOutcome(c: FaCase, exclude: readonly string[] = []): FaOutcome {
  const steps = c.line.steps!;
  const { positions, scored } = blameable(c, (s) => s.advantage, exclude);
  const k = positions.length;
  const labelScored = scored.includes(c.label);
  if (!labelScored) return { labelScored, correct: 0 };
  const out: FaOutcome = { labelScored, correct: positions.includes(c.label) ? 1 / k : 0, error: mean(positions.map((p) => Math.abs(p - c.label))) };
  if (c.agent !== null) out.agent = positions.filter((p) => agentOf(steps[p]) === c.agent).length / k;
  return out;
}

function evalFa(lines: readonly ScoreLine[], options: Required<Omit<EvalOptions, 'groupBy'>> & { groupBy: string; explicit: boolean }): FaReport {
  const excluded = { label_not_a_step: 0 };
  const cases: FaCase[] = [];
  for (const line of lines) {
    const { success, mistake_step, mistake_agent } = line.labels ?? {};
    if (success !== false || typeof mistake_step !== 'number') continue;
    const label = line.steps!.findIndex((s) => s.index === mistake_step);
    if (label < 0) {
      excluded.label_not_a_step++;
      continue;
    }
    cases.push({ line, label, agent: typeof mistake_agent === 'string' ? mistake_agent : null });
  }
  if (cases.length === 0) {
    throw new EvalInputError('fa needs failed trajectories (labels.success false) with a labelled mistake_step that is one of their steps; none found');
  }
  const predictors: { name: string; outcome: (c: FaCase) => FaOutcome }[] = ATTRIBUTION_METHODS.map((method) => ({
    name: `pa_${method}`,
    outcome: (c: FaCase) => {
      const { positions, values, scored } = blameable(c, (s) => s.advantage);
      return blameOutcome(c, scored, positions[attributeFailure(values, method)]);
    },
  }));
  // Per-step baselines exist when the file was scored with --baselines (null on an unscored step).
  if (cases.every((c) => c.line.steps!.every((s) => s.baselines !== undefined))) {
    for (const b of BASELINES) {
      predictors.push({
        name: b,
        // The least confident scored step.
        outcome: (c) => {
          const { positions, values, scored } = blameable(c, (s) => s.baselines?.[b]);
          return blameOutcome(c, scored, positions[attributeFailure(values, 'sharpest_drop')]);
        },
      });
    }
  }
  predictors.push({ name: 'random', outcome: randomOutcome });
  if (options.excludeAgents.length > 0) {
    // The same cases, blamed among the steps of the other speakers only (all of them if none is left).
    const suffix = ` excluding ${options.excludeAgents.join(', ')}`;
    const exclude = options.excludeAgents;
    for (const method of ATTRIBUTION_METHODS) {
      predictors.push({
        name: `pa_${method}${suffix}`,
        outcome: (c) => {
          const { positions, values, scored } = blameable(c, (s) => s.advantage, exclude);
          return blameOutcome(c, scored, positions[attributeFailure(values, method)]);
        },
      });
    }
    predictors.push({ name: `random${suffix}`, outcome: (c) => randomOutcome(c, exclude) });
  }

  const { groups, by } = groupLines(cases, options.groupBy, false, options.explicit);
  const withAgent = cases.filter((c) => c.agent !== null).length;
  const scoredLabels = cases.filter((c) => blameable(c, (s) => s.advantage).positions.includes(c.label)).length;
  const noScoredSteps = cases.filter((c) => blameable(c, (s) => s.advantage).positions.length === 0).length;
  const o = { resamples: options.resamples, level: options.level, seed: options.seed };
  const methods: Record<string, FaMetrics> = {};
  for (const p of predictors) {
    const outcomes = new Map(cases.map((c) => [c, p.outcome(c)]));
    const stat = (pick: (x: FaOutcome) => number | undefined) => (sample: readonly Grouped<FaCase>[]) =>
      meanOfPresent(
        sample
          .flatMap((g) => g.items)
          .map((c) => pick(outcomes.get(c)!)),
      );
    methods[p.name] = {
      step_accuracy: bootstrapInterval(groups, stat((x) => (x.labelScored ? x.correct : undefined)), o),
      step_accuracy_all: bootstrapInterval(groups, stat((x) => x.correct), o),
      mae: bootstrapInterval(groups, stat((x) => x.error), o),
      ...(withAgent > 0 ? { agent_accuracy: bootstrapInterval(groups, stat((x) => x.agent), o) } : {}),
    };
  }
  return {
    task: 'fa',
    group_by: by,
    trajectories: cases.length,
    scored_labels: scoredLabels,
    unscored_labels: cases.length - scoredLabels,
    no_scored_steps: noScoredSteps,
    excluded,
    with_agent_label: withAgent,
    methods,
  };
}

// ---------------------------------------------------------------- report

export type EvalReport = (BonReport | UqReport | FaReport) & {
  /** The score files read. */
  scores: string[];
  errors_left_out: number;
  resamples: number;
  level: number;
  seed: number;
};

export function evaluate(file: ScoresFile, options: EvalOptions): EvalReport {
  const resolved = {
    task: options.task,
    groupBy: options.groupBy ?? 'group',
    explicit: options.groupBy !== undefined,
    resamples: options.resamples ?? 1000,
    level: options.level ?? 0.95,
    seed: options.seed ?? 0,
    excludeAgents: options.excludeAgents ?? [],
  };
  const body = options.task === 'bon' ? evalBon(file.lines, resolved) : options.task === 'uq' ? evalUq(file.lines, resolved) : evalFa(file.lines, resolved);
  return { ...body, scores: file.files, errors_left_out: file.errors, resamples: resolved.resamples, level: resolved.level, seed: resolved.seed };
}

const fmt = (i: Interval) => (Number.isNaN(i.estimate) ? 'n/a' : `${i.estimate.toFixed(3)} [${i.low.toFixed(3)}, ${i.high.toFixed(3)}]`);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The report as a plain-text table, estimates with their bootstrap intervals. */
export function formatReport(r: EvalReport): string {
  const ci = `${Math.round(r.level * 100)}% CI`;
  const notes = r.errors_left_out ? `\n(${r.errors_left_out} trajectories with an error line left out)` : '';
  const unscoredNote = (unscored: Record<string, number>) =>
    Object.values(unscored).some((n) => n > 0) ? '\n(unscored: trajectories a method could not score, left out of its numbers and never picked)' : '';
  if (r.task === 'bon') {
    const rows = Object.entries(r.methods).map(([name, i]) => [name, fmt(i), String(r.unscored[name])]);
    rows.push(['mean-of-N (random pick)', fmt(r.mean_of_n), '—'], ['pass@N (oracle)', fmt(r.pass_at_n), '—']);
    return (
      `best-of-N success: ${r.groups} groups by "${r.group_by}", ${r.trajectories} trajectories, N ${r.group_size.min}–${r.group_size.max}\n` +
      table(['method', `success [${ci}]`, 'unscored'], rows) +
      unscoredNote(r.unscored) +
      notes
    );
  }
  if (r.task === 'uq') {
    const rows = Object.entries(r.methods).map(([name, m]) => [name, fmt(m.auroc), fmt(m.spearman), String(r.unscored[name])]);
    return (
      `success prediction: ${r.trajectories} trajectories (${r.successes} successes, ${r.failures} failures), bootstrap over "${r.group_by}"\n` +
      table(['method', `AUROC [${ci}]`, `Spearman [${ci}]`, 'unscored'], rows) +
      unscoredNote(r.unscored) +
      notes
    );
  }
  const withAgent = r.with_agent_label > 0;
  const rows = Object.entries(r.methods).map(([name, m]) => [
    name,
    fmt(m.step_accuracy),
    fmt(m.step_accuracy_all),
    fmt(m.mae),
    ...(withAgent ? [fmt(m.agent_accuracy!)] : []),
  ]);
  return (
    `failure attribution: ${r.trajectories} failed trajectories with a labelled step, bootstrap over "${r.group_by}"` +
    (r.excluded.label_not_a_step ? ` (left out: ${r.excluded.label_not_a_step} labelled a message that is not a step)` : '') +
    `\nlabelled step scored in ${r.scored_labels}, not scored in ${r.unscored_labels}` +
    (r.no_scored_steps ? ` (${r.no_scored_steps} with no scored step at all)` : '') +
    '; accuracy over scored labels, and over all failures counting an unscored label as a miss; MAE and agent accuracy over scored labels\n' +
    table(
      ['method', `step acc., scored labels [${ci}]`, `step acc., all failures [${ci}]`, `MAE in steps [${ci}]`, ...(withAgent ? [`agent accuracy [${ci}]`] : [])],
      rows,
    ) +
    notes
  );
}

export interface EvalCommandArgs {
  /** Score files or directories of them; read together as one set of trajectories. */
  scores: string | string[];
  task: string;
  output?: string;
  groupBy?: string;
  resamples?: number;
  seed?: number;
  excludeAgents?: string[];
}

/** The whole command: read, evaluate, print the table on stdout, write JSON. Returns the exit code. */
export function runEvalCommand(args: EvalCommandArgs, stdout: NodeJS.WritableStream = process.stdout, stderr: NodeJS.WritableStream = process.stderr): number {
  if (!(EVAL_TASKS as readonly string[]).includes(args.task)) {
    stderr.write(`pa-server eval: --task must be one of ${EVAL_TASKS.join(', ')} (got ${JSON.stringify(args.task)})\n`);
    return 1;
  }
  let report: EvalReport;
  try {
    report = evaluate(readScores(args.scores), { task: args.task as EvalTask, groupBy: args.groupBy, resamples: args.resamples, seed: args.seed, excludeAgents: args.excludeAgents });
  } catch (err) {
    if (err instanceof EvalInputError) {
      stderr.write(`pa-server eval: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  stdout.write(`${formatReport(report)}\n`);
  if (args.output) {
    // NaN (e.g. an interval with no valid resample) is written as null.
    fs.writeFileSync(args.output, `${JSON.stringify(report, null, 2)}\n`);
    stderr.write(`pa-server eval: wrote ${args.output}\n`);
  }
  return 0;
}
