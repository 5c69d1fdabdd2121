/**
 * `pa-server score`: trajectories from a .json/.jsonl file or a directory, scored through the
 * same pipeline as POST /v1/trajectories/score without HTTP, one JSON line per trajectory:
 *
 *   {"id", "group"?, "format", "labels", ...TrajectoryResult}          scored
 *   {"id", "group"?, "format", "labels", "error": {"code", "message"}}  refused (a 4xx reason)
 *
 * Lines are written in input order. Resumable: ids that already have a scored line in the output
 * are skipped and new lines are appended; refused ids are tried again (their new line follows
 * the old one, and `pa-server eval` keeps the last line per id). A run that dies mid-write leaves
 * at most a partial last line, which the next run removes.
 *
 * Several trajectories are in flight at once (each its own engine call) so the batcher packs
 * them into shared forward passes. With `shard`, only the records whose id hashes to it are read
 * in (src/offline/shard.ts); each shard has its own output file and resumes from it.
 */
import fs from 'node:fs';
import cliProgress from 'cli-progress';
import type { Config } from '../config.js';
import { ServiceError } from '../errors.js';
import { scoreTrajectories, type TrajectoryRequest } from '../pipeline/trajectory.js';
import { ScorerPool, type Scorer } from '../pool.js';
import { readTrajectoryFile, TrajectoryFileError, type FileTrajectory, type TrajectoryFormat } from '../text/adapters.js';
import { formatShard, inShard, type Shard } from './shard.js';
import { stopOnInterrupt } from './interrupt.js';

/** The per-trajectory options of POST /v1/trajectories/score that apply to a whole file. */
export type ScoreRequestOptions = Pick<
  TrajectoryRequest,
  'render' | 'label' | 'beta' | 'token_aggregate' | 'token_aggregate_mode' | 'baselines' | 'return_tokens' | 'truncate' | 'long_context' | 'tokenization' | 'exclude_agents'
>;

export interface Progress {
  start(total: number): void;
  update(done: number, failed: number): void;
  stop(): void;
}

export interface ScoreFileOptions {
  format: TrajectoryFormat;
  output: string;
  request?: ScoreRequestOptions;
  /** Trajectories in flight at once (default 32). */
  concurrency?: number;
  progress?: Progress;
  /** Set to stop scheduling new trajectories; those in flight finish and are written. */
  stop?: { requested: boolean };
}

export interface ScoreSummary {
  /** Trajectories in the input. */
  total: number;
  /** Already scored in the output before this run. */
  skipped: number;
  scored: number;
  /** Refused with a 4xx reason; written as error lines. */
  failed: number;
  /** Not attempted because the run was stopped. */
  remaining: number;
  /** The cost of this run's scored trajectories: their tokens, and the tokens of the rows (windows) that went through each model. */
  cost: { sequence_tokens: number; forward_tokens: number; windows: number };
}

export class OutputFileError extends Error {}

/**
 * Ids with a scored line in `output` (absent file: none). A partial last line (a run killed
 * mid-write) is cut off so appending starts on a fresh line; any other unreadable line is an error.
 */
export function completedIds(output: string): Set<string> {
  const done = new Set<string>();
  if (!fs.existsSync(output)) return done;
  let text = fs.readFileSync(output, 'utf8');
  if (text.length > 0 && !text.endsWith('\n')) {
    const cut = text.lastIndexOf('\n') + 1;
    fs.truncateSync(output, Buffer.byteLength(text.slice(0, cut), 'utf8'));
    text = text.slice(0, cut);
  }
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new OutputFileError(`${output}:${i + 1}: not a JSON line; refusing to append to a file this command did not write`);
    }
    const r = record as { id?: unknown; error?: unknown };
    if (typeof r !== 'object' || r === null || typeof r.id !== 'string') {
      throw new OutputFileError(`${output}:${i + 1}: a line without a string "id"; refusing to append to a file this command did not write`);
    }
    if (r.error === undefined) done.add(r.id);
    else done.delete(r.id);
  });
  return done;
}

export function requestFor(t: FileTrajectory, options: ScoreRequestOptions): TrajectoryRequest {
  // As format + data would be: the format's steps and rendering rules (Who&When) come along.
  return { ...options, adapted: t.trajectory };
}

/**
 * Offline scoring is its own client: a full queue (429 overloaded: the trajectories in flight hold
 * more rows, e.g. many windows each, than --max-queue) is waited out, never a failed run.
 */
async function withBackpressure<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (!(err instanceof ServiceError && err.status === 429)) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(500, 10 * attempt)));
    }
  }
}

/** Scores `trajectories` not yet in `options.output`, appending their lines in input order. */
export async function scoreFile(scorer: Scorer, trajectories: readonly FileTrajectory[], options: ScoreFileOptions): Promise<ScoreSummary> {
  const done = completedIds(options.output);
  const todo = trajectories.filter((t) => !done.has(t.id));
  const concurrency = Math.max(1, options.concurrency ?? 32);
  const summary: ScoreSummary = {
    total: trajectories.length,
    skipped: trajectories.length - todo.length,
    scored: 0,
    failed: 0,
    remaining: 0,
    cost: { sequence_tokens: 0, forward_tokens: 0, windows: 0 },
  };
  const lines: (string | undefined)[] = new Array(todo.length);
  let written = 0;
  const fd = fs.openSync(options.output, 'a');
  // Lines go out in input order: a finished trajectory waits for the ones before it.
  const flush = () => {
    let chunk = '';
    while (written < todo.length && lines[written] !== undefined) {
      chunk += lines[written];
      lines[written++] = undefined;
    }
    if (chunk) fs.writeSync(fd, chunk);
  };
  let next = 0;
  let fatal: unknown;
  options.progress?.start(trajectories.length);
  options.progress?.update(summary.skipped, 0);
  const worker = async () => {
    while (next < todo.length && fatal === undefined && !options.stop?.requested) {
      const i = next++;
      const t = todo[i];
      const head = { id: t.id, ...(t.group !== undefined ? { group: t.group } : {}), format: options.format, labels: t.trajectory.labels };
      try {
        const [result] = await withBackpressure(() => scoreTrajectories(scorer, [requestFor(t, options.request ?? {})]));
        lines[i] = `${JSON.stringify({ ...head, ...result, labels: t.trajectory.labels })}\n`;
        summary.scored++;
        summary.cost.sequence_tokens += result.num_tokens;
        summary.cost.forward_tokens += result.forward_tokens;
        summary.cost.windows += result.windows;
      } catch (err) {
        if (err instanceof ServiceError && err.status >= 400 && err.status < 500 && err.status !== 429) {
          // The trajectory itself cannot be scored (no steps, ids outside the vocabulary...): say so in its line.
          lines[i] = `${JSON.stringify({ ...head, error: { code: err.code, message: err.message } })}\n`;
          summary.failed++;
        } else {
          // The engine failed: stop; what finished is written and a rerun resumes from there.
          fatal ??= err;
          return;
        }
      }
      flush();
      options.progress?.update(summary.skipped + summary.scored + summary.failed, summary.failed);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
    flush();
  } finally {
    fs.closeSync(fd);
    options.progress?.stop();
  }
  if (fatal !== undefined) throw fatal;
  summary.remaining = todo.length - summary.scored - summary.failed;
  return summary;
}

/** A bar on a terminal; otherwise a line every `intervalMs` and one at the end. */
export function createProgress(mode: 'auto' | 'bar' | 'lines' | 'none', stream: NodeJS.WriteStream = process.stderr, intervalMs = 10_000): Progress {
  const useBar = mode === 'bar' || (mode === 'auto' && stream.isTTY === true);
  if (mode === 'none') return { start() {}, update() {}, stop() {} };
  if (useBar) {
    const bar = new cliProgress.SingleBar(
      { stream, format: 'scoring [{bar}] {percentage}% | {value}/{total} | failed {failed} | {eta_formatted} left', hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    return {
      start: (total) => bar.start(total, 0, { failed: 0 }),
      update: (done, failed) => bar.update(done, { failed }),
      stop: () => bar.stop(),
    };
  }
  let total = 0;
  let done = 0;
  let failed = 0;
  let startedAt = 0;
  // Rate counts this run's work only, not the lines a resumed run skipped.
  let startDone: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const report = () => {
    const seconds = (Date.now() - startedAt) / 1000;
    const rate = seconds > 0 ? (done - (startDone ?? 0)) / seconds : 0;
    const left = rate > 0 && done < total ? ` ~${Math.ceil((total - done) / rate)} s left,` : '';
    const pct = total > 0 ? ((100 * done) / total).toFixed(1) : '100.0';
    stream.write(`pa-server score: ${done}/${total} (${pct}%), ${rate.toFixed(2)} trajectories/s,${left} ${failed} failed\n`);
  };
  return {
    start(t) {
      total = t;
      startedAt = Date.now();
      timer = setInterval(report, intervalMs);
      timer.unref();
    },
    update(d, f) {
      startDone ??= d;
      done = d;
      failed = f;
    },
    stop() {
      clearInterval(timer);
      report();
    },
  };
}

export interface ScoreCommandArgs {
  input: string;
  format: string;
  output: string;
  /** Scorer name when the config has several. */
  model?: string;
  request?: ScoreRequestOptions;
  concurrency?: number;
  progress?: 'auto' | 'bar' | 'lines' | 'none';
  progressIntervalMs?: number;
  /** Score only the records whose id hashes to this shard (src/offline/shard.ts). */
  shard?: Shard;
}

/** The whole command: read and check the input, load the models, score, report. Returns the exit code. */
export async function runScoreCommand(config: Config, args: ScoreCommandArgs, stderr: NodeJS.WriteStream = process.stderr): Promise<number> {
  const say = (s: string) => stderr.write(`pa-server score: ${s}\n`);
  let trajectories: FileTrajectory[];
  let alreadyDone: Set<string>;
  try {
    trajectories = readTrajectoryFile(args.input, args.format);
    alreadyDone = completedIds(args.output);
    if (args.shard) {
      const shard = args.shard;
      const all = trajectories.length;
      trajectories = trajectories.filter((t) => inShard(t.id, shard));
      // Resuming is per shard: an output holding another shard's ids is the wrong file.
      const foreign = [...alreadyDone].find((id) => !inShard(id, shard));
      if (foreign !== undefined) {
        throw new OutputFileError(`${args.output} holds "${foreign}", which is not in shard ${formatShard(shard)}; give each shard its own output file`);
      }
      say(`shard ${formatShard(shard)}: ${trajectories.length} of the ${all} trajectories of ${args.input}`);
    }
  } catch (err) {
    if (err instanceof TrajectoryFileError || err instanceof OutputFileError) {
      say(err.message);
      return 1;
    }
    throw err;
  }
  const pending = trajectories.filter((t) => !alreadyDone.has(t.id)).length;
  if (pending === 0) {
    // Every shard leaves its output file, even one that has no records.
    fs.closeSync(fs.openSync(args.output, 'a'));
    say(`all ${trajectories.length} trajectories of ${args.input} are already in ${args.output}; nothing to do`);
    return 0;
  }
  if (pending < trajectories.length) say(`resuming: ${trajectories.length - pending} already in ${args.output}, ${pending} to score`);

  const pool = new ScorerPool(config);
  const { stop, release } = stopOnInterrupt(say);
  try {
    try {
      await pool.load();
    } catch (err) {
      say(`cannot load the models: ${(err as Error).message}`);
      return 1;
    }
    let scorer: Scorer;
    try {
      scorer = pool.get(args.model);
    } catch (err) {
      say((err as Error).message);
      return 1;
    }
    const summary = await scoreFile(scorer, trajectories, {
      format: args.format as TrajectoryFormat,
      output: args.output,
      request: args.request,
      // More in flight than the queue holds would only earn queue_full refusals.
      concurrency: Math.min(args.concurrency ?? 32, config.max_queue),
      progress: createProgress(args.progress ?? 'auto', stderr, args.progressIntervalMs),
      stop,
    });
    say(
      `${summary.scored} scored, ${summary.failed} refused, ${summary.skipped} already done, ${summary.remaining} not started; written to ${args.output}`,
    );
    const { sequence_tokens, forward_tokens, windows } = summary.cost;
    if (summary.scored > 0) {
      say(
        `cost: ${forward_tokens} tokens through each model in ${windows} rows for ${sequence_tokens} trajectory tokens` +
          ` (${(forward_tokens / Math.max(1, sequence_tokens)).toFixed(2)}×; long_context ${args.request?.long_context ?? 'window'})`,
      );
    }
    if (summary.failed > 0) say(`the refused trajectories have an "error" line in ${args.output}; a rerun tries them again`);
    return summary.failed > 0 || summary.remaining > 0 ? 1 : 0;
  } catch (err) {
    say(`scoring stopped: ${(err as Error).message}; the lines written so far are kept and a rerun resumes`);
    return 1;
  } finally {
    release();
    await pool.close();
  }
}
