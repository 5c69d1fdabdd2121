/**
 * `pa-server sweep`: which reference works? Scores a data set with the policy once (its log-probs
 * do not depend on α), then, for each α of a grid, with the merged reference π_α (engine/merge.ts)
 * and evaluates each with `pa-server eval`'s code (bootstrap intervals). α = 0 is always in the
 * table: the plain reference, unmerged.
 *
 * Everything goes into the output directory, and a rerun resumes from it:
 *   settings.json        what the sweep is (input, models, merge method, density, seed): a rerun
 *                        with other settings is refused
 *   policy.jsonl         per trajectory, the policy's log-prob of every scored token (or the reason
 *                        it cannot be scored)
 *   alpha-<α>.jsonl      the trajectories scored against π_α, the lines `pa-server score` writes
 *   merges.json          the merge of each α (method, α, density, seed, digest of the weights)
 *   sweep-<task>.json, .md, .svg      the reports: JSON, a Markdown table, a self-contained chart
 * Ids already in a file are skipped (a partial last line is cut), like `pa-server score`. The score
 * files do not depend on the task: a second run with another --task only evaluates.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config, ScorerConfig } from '../config.js';
import { resolveModelDir } from '../engine/model-dir.js';
import { ModelEngine, type ModelEngineSpec } from '../engine/model-engine.js';
import type { MergeInfo } from '../engine/merge.js';
import { MERGE_METHODS, mergeProblem, type MergeMethod, type ReferenceMerge } from '../engine/merge-spec.js';
import { ServiceError } from '../errors.js';
import type { ScorerSettings } from '../pipeline/options.js';
import { compileTrajectoryRequest, trajectoryResult, type CompiledTrajectory } from '../pipeline/trajectory.js';
import { scorerLimits } from '../pool.js';
import type { Interval } from '../scoring/index.js';
import { readTrajectoryFile, TrajectoryFileError, type FileTrajectory } from '../text/adapters.js';
import { loadTokenizer } from '../text/tokenizer.js';
import { EVAL_TASKS, EvalInputError, evaluate, readScores, type EvalReport, type EvalTask } from './eval.js';
import { completedIds, OutputFileError, requestFor, type ScoreRequestOptions } from './score-file.js';
import { sweepChart } from './sweep-chart.js';
import { stopOnInterrupt } from './interrupt.js';

export class SweepError extends Error {}

/** `START:STOP:STEP` (inclusive) or a comma list; values in [0, 1], sorted, with 0 added. */
export function parseAlphaGrid(spec: string): number[] {
  const round = (x: number) => Number(x.toFixed(9));
  let values: number[];
  const range = /^([^:]+):([^:]+):([^:]+)$/.exec(spec);
  if (range) {
    const [start, stop, step] = range.slice(1).map(Number);
    if (![start, stop, step].every(Number.isFinite) || step <= 0 || stop < start) {
      throw new SweepError(`--alpha ${spec}: expected START:STOP:STEP with STEP > 0 and STOP ≥ START (e.g. 0.1:0.9:0.1)`);
    }
    values = [];
    for (let i = 0; start + i * step <= stop + step * 1e-6 && i <= 1000; i++) values.push(round(start + i * step));
  } else {
    values = spec.split(',').map((v) => Number(v.trim()));
    if (values.some((v) => !Number.isFinite(v)) || spec.trim() === '') throw new SweepError(`--alpha ${spec}: expected START:STOP:STEP or a comma list of numbers`);
  }
  const bad = values.find((v) => v < 0 || v > 1);
  if (bad !== undefined) throw new SweepError(`--alpha ${spec}: α must lie in [0, 1] (got ${bad})`);
  return [...new Set([0, ...values.map(round)])].sort((a, b) => a - b);
}

export interface SweepArgs {
  input: string;
  format: string;
  task: string;
  method: string;
  alphas: string;
  density?: number;
  mergeSeed?: number;
  output: string;
  model?: string;
  request?: Omit<ScoreRequestOptions, 'baselines' | 'return_tokens'>;
  groupBy?: string;
  resamples?: number;
  seed?: number;
  /** Trajectories per engine call (default 32). */
  chunk?: number;
}

/** The headline metric of each task and where it sits in an eval report. */
const METRIC: Record<EvalTask, { label: string; pick: (r: EvalReport, method: string) => Interval | undefined }> = {
  bon: { label: 'best-of-N success', pick: (r, m) => (r.task === 'bon' ? r.methods[m] : undefined) },
  uq: { label: 'AUROC', pick: (r, m) => (r.task === 'uq' ? r.methods[m]?.auroc : undefined) },
  fa: { label: 'step accuracy', pick: (r, m) => (r.task === 'fa' ? r.methods[m]?.step_accuracy : undefined) },
};

/** Lines that do not depend on α: a random pick and the oracle (bon), a random step (fa). */
function constants(r: EvalReport): { name: string; interval: Interval }[] {
  if (r.task === 'bon') return [{ name: 'mean-of-N (random pick)', interval: r.mean_of_n }, { name: 'pass@N (oracle)', interval: r.pass_at_n }];
  if (r.task === 'fa' && r.methods.random) return [{ name: 'random step', interval: r.methods.random.step_accuracy }];
  return [];
}

const fmt = (i: Interval | undefined) => (!i || Number.isNaN(i.estimate) ? 'n/a' : `${i.estimate.toFixed(3)} [${i.low.toFixed(3)}, ${i.high.toFixed(3)}]`);

function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function sha256File(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; ) hash.update(chunk.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

interface PolicyEntry {
  id: string;
  logprobs?: number[];
  error?: { code: string; message: string };
}

/** The policy cache: one entry per id (the last line), a partial last line cut like `score` does. */
function readPolicyCache(file: string): Map<string, PolicyEntry> {
  completedIds(file); // validates the lines and cuts a partial last one
  const out = new Map<string, PolicyEntry>();
  if (!fs.existsSync(file)) return out;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const entry = JSON.parse(line) as PolicyEntry;
    out.set(entry.id, entry);
  }
  return out;
}

const alphaName = (alpha: number) => `alpha-${alpha}`;

type Compiled = { t: FileTrajectory; compiled?: CompiledTrajectory; error?: { code: string; message: string } };

function compileAll(trajectories: readonly FileTrajectory[], settings: ScorerSettings, request: ScoreRequestOptions): Compiled[] {
  return trajectories.map((t) => {
    try {
      return { t, compiled: compileTrajectoryRequest(requestFor(t, request), settings) };
    } catch (err) {
      if (err instanceof ServiceError && err.status >= 400 && err.status < 500) return { t, error: { code: err.code, message: err.message } };
      throw err;
    }
  });
}

/** Runs `fn` over `items` in chunks, appending the lines it returns to `file` after each chunk. */
async function inChunks<T>(file: string, items: readonly T[], size: number, fn: (chunk: readonly T[]) => Promise<string[]>, stop: { requested: boolean }): Promise<void> {
  const fd = fs.openSync(file, 'a');
  try {
    for (let i = 0; i < items.length && !stop.requested; i += size) {
      const lines = await fn(items.slice(i, i + size));
      fs.writeSync(fd, lines.join(''));
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface SweepRow {
  alpha: number;
  reference: 'plain' | MergeMethod;
  merge: MergeInfo | null;
  report: EvalReport;
}

export interface SweepReport {
  task: EvalTask;
  metric: string;
  method: MergeMethod;
  density: number | null;
  merge_seed: number | null;
  input: string;
  policy: string;
  reference: string;
  methods: string[];
  constants: { name: string; interval: Interval }[];
  rows: SweepRow[];
}

/** The table as Markdown (README) or plain text (stdout). */
export function formatSweep(report: SweepReport, markdown: boolean): string {
  const level = report.rows[0] ? `${Math.round(report.rows[0].report.level * 100)}% CI` : 'CI';
  const header = ['α', 'reference', ...report.methods.map((m) => `${m} [${level}]`)];
  const rows = report.rows.map((r) => [r.alpha.toFixed(2), r.reference === 'plain' ? 'plain' : r.reference, ...report.methods.map((m) => fmt(METRIC[report.task].pick(r.report, m)))]);
  const notes = report.constants.map((c) => `${c.name}: ${fmt(c.interval)} (does not depend on α)`);
  const first = report.rows[0]?.report;
  const size = first ? `${first.task === 'bon' ? `${first.groups} groups, ` : ''}${first.trajectories} trajectories` : '';
  const title = `${report.metric} against α, ${report.method}${report.density !== null ? ` density ${report.density}` : ''}${report.merge_seed !== null ? ` seed ${report.merge_seed}` : ''} (${size})`;
  if (!markdown) return [title, textTable(header, rows), ...notes].join('\n');
  const md = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
  return [`${title}\n`, ...md, '', ...notes.map((n) => `${n}  `)].join('\n');
}

export function sweepSvg(report: SweepReport): string {
  return sweepChart({
    title: `${report.metric} against α (${report.task}, ${report.method}${report.density !== null ? `, density ${report.density}` : ''})`,
    subtitle: `${path.basename(report.input)}: ${report.rows[0]?.report.trajectories ?? 0} trajectories; policy ${path.basename(path.dirname(report.policy))}, reference ${path.basename(path.dirname(report.reference))}`,
    yLabel: report.metric,
    level: report.rows[0]?.report.level ?? 0.95,
    series: report.methods.map((m) => ({
      name: m,
      points: report.rows.map((r) => {
        const i = METRIC[report.task].pick(r.report, m);
        return { alpha: r.alpha, estimate: i?.estimate ?? NaN, low: i?.low ?? NaN, high: i?.high ?? NaN };
      }),
    })),
    constants: report.constants.map((c) => ({ name: c.name, value: c.interval.estimate })),
  });
}

/** The whole command. Returns the exit code. */
export async function runSweepCommand(config: Config, args: SweepArgs, stdout: NodeJS.WritableStream = process.stdout, stderr: NodeJS.WritableStream = process.stderr): Promise<number> {
  const say = (s: string) => stderr.write(`pa-server sweep: ${s}\n`);
  try {
    return await sweep(config, args, stdout, say);
  } catch (err) {
    if (err instanceof SweepError || err instanceof TrajectoryFileError || err instanceof OutputFileError || err instanceof EvalInputError) {
      say(err.message);
      return 1;
    }
    say(`stopped: ${(err as Error).message}; what was written is kept and a rerun resumes`);
    return 1;
  }
}

async function sweep(config: Config, args: SweepArgs, stdout: NodeJS.WritableStream, say: (s: string) => void): Promise<number> {
  if (!(EVAL_TASKS as readonly string[]).includes(args.task)) throw new SweepError(`--task must be one of ${EVAL_TASKS.join(', ')}`);
  if (!(MERGE_METHODS as readonly string[]).includes(args.method)) throw new SweepError(`--merge must be one of ${MERGE_METHODS.join(', ')}`);
  const task = args.task as EvalTask;
  const method = args.method as MergeMethod;
  const alphas = parseAlphaGrid(args.alphas);
  const mergeAt = (alpha: number): ReferenceMerge => ({
    method,
    alpha,
    ...(args.density !== undefined ? { density: args.density } : {}),
    ...(args.mergeSeed !== undefined ? { seed: args.mergeSeed } : {}),
  });
  const problem = mergeProblem(mergeAt(0.5));
  if (problem) throw new SweepError(`--merge ${method}: ${problem.replace(/^seed/, '--merge-seed').replace(/^density/, '--density')}`);

  const scorer: ScorerConfig | undefined =
    args.model === undefined ? (config.scorers.find((s) => s.name === 'default') ?? config.scorers[0]) : config.scorers.find((s) => s.name === args.model);
  if (!scorer) throw new SweepError(`no scorer named "${args.model}" in the configuration`);
  if (scorer.reference_merge) throw new SweepError(`scorer "${scorer.name}" has a reference_merge; the sweep builds its own merges from the plain reference, remove it`);
  const trajectories = readTrajectoryFile(args.input, args.format);
  const policyDir = resolveModelDir(scorer.policy);
  const referenceDir = resolveModelDir(scorer.reference);
  const tokenizer = await loadTokenizer(scorer.tokenizer ?? scorer.policy);
  const request: ScoreRequestOptions = { ...args.request };

  fs.mkdirSync(args.output, { recursive: true });
  const file = (name: string) => path.join(args.output, name);
  const fingerprint = {
    input: path.resolve(args.input),
    format: args.format,
    policy: { file: policyDir.onnxFile, sha256: sha256File(policyDir.onnxFile) },
    reference: { file: referenceDir.onnxFile, sha256: sha256File(referenceDir.onnxFile) },
    tokenizer: path.resolve(scorer.tokenizer ?? scorer.policy),
    method,
    density: args.density ?? null,
    merge_seed: method === 'dare_linear' ? (args.mergeSeed ?? 0) : null,
    request,
    tokenization: scorer.tokenization ?? 'paper',
    beta: scorer.beta ?? null,
    max_length: scorer.max_length ?? null,
  };
  let settings: (typeof fingerprint & { vocab_size?: number }) | undefined;
  if (fs.existsSync(file('settings.json'))) {
    settings = JSON.parse(fs.readFileSync(file('settings.json'), 'utf8'));
    for (const [key, value] of Object.entries(fingerprint)) {
      const was = (settings as Record<string, unknown>)[key];
      if (JSON.stringify(was) !== JSON.stringify(value)) {
        throw new SweepError(`${args.output} holds a sweep with another ${key} (${JSON.stringify(was)}, now ${JSON.stringify(value)}); use another --output or remove it`);
      }
    }
  }

  const batching = {
    maxBatchTokens: config.max_batch_tokens,
    maxBatchRows: config.max_batch_rows,
    maxBatchLogits: config.max_batch_logits,
    maxQueue: config.max_queue,
    maxWaitMs: config.max_wait_ms,
    maxInflight: config.max_inflight_batches,
  };
  const engineSpec = (role: ModelEngineSpec['role'], onnxFile: string, merge?: ReferenceMerge): ModelEngineSpec => ({
    role,
    onnxFile,
    device: scorer.device ?? config.device,
    threads: config.threads,
    batching,
    ...(merge ? { merge: { ...merge, policyOnnx: policyDir.onnxFile } } : {}),
  });
  const chunk = Math.max(1, Math.min(args.chunk ?? 32, config.max_queue));
  const { stop, release } = stopOnInterrupt(say);
  try {
    // 1. The policy, once.
    const policyFile = file('policy.jsonl');
    const cache = readPolicyCache(policyFile);
    const needPolicy = trajectories.some((t) => !cache.has(t.id) || cache.get(t.id)!.error !== undefined);
    let vocabSize = settings?.vocab_size;
    let compiled: Compiled[] | undefined;
    if (needPolicy || vocabSize === undefined) {
      const started = Date.now();
      const policy = await ModelEngine.start(engineSpec('policy', policyDir.onnxFile));
      try {
        vocabSize = policy.info.vocabSize;
        fs.writeFileSync(file('settings.json'), `${JSON.stringify({ ...fingerprint, vocab_size: vocabSize }, null, 2)}\n`);
        compiled = compileAll(trajectories, { ...scorerLimits(scorer, policyDir, tokenizer), vocabSize, tokenizer, tokenization: scorer.tokenization ?? 'paper' }, request);
        const todo = compiled.filter((c) => !cache.has(c.t.id) || cache.get(c.t.id)!.error !== undefined);
        await inChunks(
          policyFile,
          todo,
          chunk,
          async (part) => {
            const scorable = part.filter((c) => c.compiled);
            const logprobs = await policy.logprobs(scorable.map((c) => c.compiled!.sequence));
            const byId = new Map(scorable.map((c, i) => [c.t.id, logprobs[i]]));
            return part.map((c) => {
              const entry: PolicyEntry = c.error ? { id: c.t.id, error: c.error } : { id: c.t.id, logprobs: Array.from(byId.get(c.t.id)!) };
              cache.set(c.t.id, entry);
              return `${JSON.stringify(entry)}\n`;
            });
          },
          stop,
        );
        if (todo.length > 0) say(`policy: ${todo.length} trajectories scored in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      } finally {
        await policy.close();
      }
    }
    if (stop.requested) return 1;
    compiled ??= compileAll(trajectories, { ...scorerLimits(scorer, policyDir, tokenizer), vocabSize: vocabSize!, tokenizer, tokenization: scorer.tokenization ?? 'paper' }, request);
    const settingsForResults: ScorerSettings = { ...scorerLimits(scorer, policyDir, tokenizer), vocabSize: vocabSize!, tokenizer, tokenization: scorer.tokenization ?? 'paper' };

    // 2. Each α: the (merged) reference.
    const mergesFile = file('merges.json');
    const merges: Record<string, MergeInfo | null> = fs.existsSync(mergesFile) ? JSON.parse(fs.readFileSync(mergesFile, 'utf8')) : {};
    for (const alpha of alphas) {
      const out = file(`${alphaName(alpha)}.jsonl`);
      const done = completedIds(out);
      const todo = compiled.filter((c) => !done.has(c.t.id));
      if (todo.length === 0) continue;
      const started = Date.now();
      const reference = await ModelEngine.start(engineSpec('reference', referenceDir.onnxFile, alpha === 0 ? undefined : mergeAt(alpha)));
      try {
        merges[String(alpha)] = reference.info.merge ?? null;
        fs.writeFileSync(mergesFile, `${JSON.stringify(merges, null, 2)}\n`);
        await inChunks(
          out,
          todo,
          chunk,
          async (part) => {
            const scorable = part.filter((c) => c.compiled && cache.get(c.t.id)?.logprobs);
            const logprobs = await reference.logprobs(scorable.map((c) => c.compiled!.sequence));
            const byId = new Map(scorable.map((c, i) => [c.t.id, logprobs[i]]));
            return part.map((c) => {
              const head = { id: c.t.id, ...(c.t.group !== undefined ? { group: c.t.group } : {}), format: args.format, labels: c.t.trajectory.labels };
              const ref = byId.get(c.t.id);
              if (!ref) {
                const error = c.error ?? cache.get(c.t.id)?.error ?? { code: 'not_scored', message: 'the policy pass has no log-probs for this trajectory' };
                return `${JSON.stringify({ ...head, error })}\n`;
              }
              const policy = Float64Array.from(cache.get(c.t.id)!.logprobs!);
              if (policy.length !== ref.length) {
                throw new SweepError(`${c.t.id}: the policy cache has ${policy.length} token log-probs but the trajectory has ${ref.length} scored tokens; remove ${policyFile} and rerun`);
              }
              // No baselines are asked for, so the policy's distribution statistics are never read.
              const none = new Float64Array(ref.length).fill(NaN);
              const result = trajectoryResult(c.compiled!, { policy, reference: ref, entropy: none, meanLogprob: none, topkMeanLogprob: none }, settingsForResults);
              return `${JSON.stringify({ ...head, ...result, labels: c.t.trajectory.labels })}\n`;
            });
          },
          stop,
        );
      } finally {
        await reference.close();
      }
      say(`α = ${alpha}${alpha === 0 ? ' (plain reference)' : ''}: ${todo.length} trajectories scored in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (stop.requested) return 1;
    }

    // 3. Evaluate each α with eval's code, and report.
    const rows: SweepRow[] = alphas.map((alpha) => {
      const scoresFile = file(`${alphaName(alpha)}.jsonl`);
      const report = evaluate(readScores(scoresFile), { task, groupBy: args.groupBy, resamples: args.resamples, seed: args.seed });
      return { alpha, reference: alpha === 0 ? 'plain' : method, merge: merges[String(alpha)] ?? null, report };
    });
    const methods = Object.keys((rows[0].report as { methods: object }).methods).filter((m) => m.startsWith('pa_'));
    const report: SweepReport = {
      task,
      metric: METRIC[task].label,
      method,
      density: fingerprint.density,
      merge_seed: fingerprint.merge_seed,
      input: fingerprint.input,
      policy: policyDir.onnxFile,
      reference: referenceDir.onnxFile,
      methods,
      constants: constants(rows[0].report),
      rows,
    };
    const base = `sweep-${task}`;
    fs.writeFileSync(file(`${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
    fs.writeFileSync(file(`${base}.md`), `${formatSweep(report, true)}\n`);
    fs.writeFileSync(file(`${base}.svg`), sweepSvg(report));
    stdout.write(`${formatSweep(report, false)}\n`);
    const refused = rows[0].report.errors_left_out;
    if (refused > 0) say(`${refused} trajectories could not be scored (error lines in ${args.output}); they are left out of every row`);
    say(`wrote ${file(`${base}.json`)}, ${file(`${base}.md`)} and ${file(`${base}.svg`)}`);
    return 0;
  } finally {
    release();
  }
}
