/**
 * Shared plumbing of the benchmarks: options, machine facts, deterministic items, statistics,
 * tables and JSON output. Every number a bench reports is measured in the same process run, so
 * ratios between benches compare like with like.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../../src/scoring/evaluation.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BENCH_DIR = path.join(ROOT, 'bench');
export const MODELS_DIR = path.join(BENCH_DIR, 'models');

/**
 * max_batch_tokens of every bench (service and limit alike), not the service default of 16,384.
 * Measured (bench/RESULTS.md): at 16,384 these exports, whose attention materialises
 * [rows, heads, S, S] scores, took the bench past 16 GB and the OOM killer ended it; and on CPU
 * batching long rows is slower per row than running them one by one, so 1,024 (batches only
 * rows shorter than ~512 tokens) gave the best scored tokens/s in the levers sweep.
 */
export const BENCH_MAX_BATCH_TOKENS = 1024;

export interface BenchOptions {
  quick: boolean;
  device: 'cpu' | 'cuda';
  /** Where the JSON files go (bench/out unless --out is given). */
  outDir: string;
  /** Never call Python (quick mode then uses the pairs written in TypeScript). */
  noPython: boolean;
}

/** A policy/reference pair on disk. */
export interface Pair {
  name: string;
  dir: string;
  policy: string;
  reference: string;
  vocab: number;
  hidden: number;
  layers: number;
  /** Torch weights next to the ONNX files (bench/paper_pattern.py needs them). */
  torchWeights: boolean;
  maxPositions: number;
}

/** Sizes of one run: the full suite, or the smoke-test sizes of --quick. */
export interface Sizes {
  promptTokens: [number, number];
  stepTokens: [number, number];
  /** Independent items for limit, service and paper. */
  items: number;
  /** Items the paper pattern runs: the same items as limit and service, so scored tok/s compare the same mix. */
  paperItems: number;
  /** Items timed one at a time: the limit's single-item time and the service at concurrency 1. */
  singleItems: number;
  concurrency: number[];
  /** Requests per concurrency level: at least this many, and at least 2 × concurrency. */
  requests: number;
  /** Trajectory shape: a task prompt, then steps of observation + action. */
  trajectory: { steps: number; promptTokens: number; observationTokens: [number, number]; stepTokens: [number, number]; repeats: number };
}

export const FULL_SIZES: Sizes = {
  promptTokens: [200, 1500],
  stepTokens: [10, 80],
  items: 96,
  paperItems: 96,
  singleItems: 48,
  concurrency: [1, 8, 64],
  requests: 96,
  trajectory: { steps: 20, promptTokens: 1000, observationTokens: [20, 60], stepTokens: [10, 80], repeats: 3 },
};

export const QUICK_SIZES: Sizes = {
  promptTokens: [20, 60],
  stepTokens: [4, 12],
  items: 8,
  paperItems: 4,
  singleItems: 4,
  concurrency: [1, 8, 64],
  requests: 8,
  trajectory: { steps: 20, promptTokens: 16, observationTokens: [2, 4], stepTokens: [2, 4], repeats: 1 },
};

export function sizesFor(options: BenchOptions): Sizes {
  return options.quick ? QUICK_SIZES : FULL_SIZES;
}

/** Deterministic PRNG (the service's own mulberry32): every run scores the same items. */
export const rng = seededRandom;

export function randInt(next: () => number, [lo, hi]: [number, number]): number {
  return lo + Math.floor(next() * (hi - lo + 1));
}

/** Ids 0–2 are the generated tokenizers' <unk>, <s>, </s>: items use ordinary tokens only. */
export function randomIds(next: () => number, n: number, vocab: number): number[] {
  const ids = new Array<number>(n);
  for (let i = 0; i < n; i++) ids[i] = 3 + Math.floor(next() * (vocab - 3));
  return ids;
}

/** One independent step to score: a context and the step after it, as token ids. */
export interface Item {
  promptIds: number[];
  stepIds: number[];
}

export function makeItems(count: number, sizes: Sizes, vocab: number, maxPositions: number, seed = 1): Item[] {
  const next = rng(seed);
  const items: Item[] = [];
  for (let i = 0; i < count; i++) {
    const step = randInt(next, sizes.stepTokens);
    const prompt = Math.min(randInt(next, sizes.promptTokens), maxPositions - step);
    items.push({ promptIds: randomIds(next, prompt, vocab), stepIds: randomIds(next, step, vocab) });
  }
  return items;
}

export const stepTokens = (items: readonly Item[]) => items.reduce((n, it) => n + it.stepIds.length, 0);

export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

export const median = (values: readonly number[]) => percentile(values, 0.5);
export const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  onnxruntime: string;
  commit: string;
  dirty: boolean;
  date: string;
  /** 1-minute load average when the bench started and ended: other work on the machine shows here. */
  loadAverage: number[];
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  let cpuModel = cpus[0]?.model?.trim() ?? 'unknown';
  try {
    // lscpu often knows more than /proc/cpuinfo inside containers (e.g. "AMD EPYC" vs family numbers).
    const line = execFileSync('lscpu', { encoding: 'utf8' }).split('\n').find((l) => /^Model name:/.test(l));
    if (line) cpuModel = line.replace(/^Model name:\s*/, '').trim();
  } catch {
    // lscpu missing: keep os.cpus()
  }
  const ortPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8'));
  return {
    cores: os.availableParallelism(),
    cpuModel,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    onnxruntime: ortPkg.version,
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: git(['status', '--porcelain', '--untracked-files=no']).length > 0,
    date: new Date().toISOString(),
    loadAverage: [os.loadavg()[0]],
  };
}

export interface BenchResult {
  bench: string;
  quick: boolean;
  device: string;
  machine?: MachineInfo;
  pairs: Record<string, string>;
  /** 1-minute load average before and after: a high value means other work shared the cores. */
  loadAverage: { before: number; after: number };
  seconds: number;
  [key: string]: unknown;
}

export function writeJson(options: BenchOptions, name: string, data: unknown): string {
  fs.mkdirSync(options.outDir, { recursive: true });
  const file = path.join(options.outDir, `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

export type Cell = string | number | null | undefined;

function formatCell(c: Cell): string {
  if (c === null || c === undefined) return '—';
  if (typeof c === 'string') return c;
  if (!Number.isFinite(c)) return String(c);
  const abs = Math.abs(c);
  if (abs >= 1000) return Math.round(c).toLocaleString('en-US');
  if (abs >= 100) return c.toFixed(0);
  if (abs >= 10) return c.toFixed(1);
  if (abs >= 1) return c.toFixed(2);
  return c.toFixed(3);
}

/** A Markdown table (readable in a terminal, pasteable into RESULTS.md). */
export function table(title: string, header: string[], rows: Cell[][]): string {
  const cells = rows.map((r) => r.map(formatCell));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [`### ${title}`, '', line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line), ''].join('\n');
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface BenchContext {
  options: BenchOptions;
  sizes: Sizes;
}

/** What each bench hands back to bench/run.ts: its JSON (also written to bench/out) and its tables. */
export interface BenchOutput<T extends BenchResult = BenchResult> {
  result: T;
  tables: string[];
}

/** Wraps a bench body with the fields every JSON file has. */
export async function timedBench<T extends Record<string, unknown>>(
  ctx: BenchContext,
  bench: string,
  pairs: Record<string, string>,
  body: () => Promise<T>,
): Promise<BenchResult & T> {
  const before = os.loadavg()[0];
  const t0 = performance.now();
  const data = await body();
  return {
    bench,
    quick: ctx.options.quick,
    device: ctx.options.device,
    pairs,
    loadAverage: { before, after: os.loadavg()[0] },
    seconds: (performance.now() - t0) / 1000,
    ...data,
  };
}
