/**
 * paper: what the paper's released code does, in PyTorch on the same weights (bench/paper_pattern.py):
 * one sequence per forward, logits.float(), full-vocabulary log_softmax at every position, gather.
 * Run with OMP_WAIT_POLICY=PASSIVE and 2 threads: Debian's torch otherwise makes its OpenMP and
 * OpenBLAS pools fight over the cores and runs far slower, which would flatter the service.
 *
 * The same items are then scored by our engine, and the advantages must agree: proof that both
 * sides of the ratio run the same weights and compute the same thing.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { defaultConfig } from '../src/config.js';
import { BENCH_DIR, log, makeItems, ROOT, table, timedBench, writeJson, type BenchContext, type BenchOutput, type BenchResult } from './lib/common.js';
import { serviceBatching, startEngine } from './lib/engine.js';
import { paperPair, PYTHON, torchAvailable } from './lib/pairs.js';

export interface PaperResult extends BenchResult {
  skipped?: string;
  items?: number;
  threads?: number;
  scoredTokensPerSecond?: number;
  tokensPerSecond?: number;
  peakRssMiB?: number;
  /** max |advantage(paper) − advantage(engine)| over the items (β = 1). */
  maxAdvantageDifference?: number;
}

const THREADS = 2;

function runPython(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, {
      cwd: ROOT,
      env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(THREADS) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`paper_pattern.py exited ${code}: ${err.slice(-2000)}`))));
  });
}

export async function runPaper(ctx: BenchContext): Promise<BenchOutput<PaperResult>> {
  const { options, sizes } = ctx;
  if (!torchAvailable(options)) {
    const reason = options.noPython ? 'Python disabled (--no-python)' : `${PYTHON} cannot import torch`;
    log(`paper: skipped (${reason})`);
    const result = await timedBench(ctx, 'paper', {}, async () => ({ skipped: reason }));
    writeJson(options, 'paper', result);
    return { result, tables: [`### paper: skipped (${reason})\n`] };
  }
  const pair = paperPair(options);
  // The same item distribution as limit and service: the first items of the same deterministic list.
  const items = makeItems(sizes.items, sizes, pair.vocab, pair.maxPositions).slice(0, sizes.paperItems);
  const result = await timedBench(ctx, 'paper', { paper: pair.name }, async () => {
    const itemsFile = path.join(options.outDir, 'paper-items.json');
    fs.mkdirSync(options.outDir, { recursive: true });
    fs.writeFileSync(itemsFile, JSON.stringify(items.map((it) => ({ ids: [...it.promptIds, ...it.stepIds], step_start: it.promptIds.length }))));
    const out = await runPython([path.join(BENCH_DIR, 'paper_pattern.py'), '--pair', pair.dir, '--items', itemsFile, '--threads', String(THREADS)]);
    const paper = JSON.parse(out.trim().split('\n').pop()!);

    const engine = await startEngine(pair, options.device, defaultConfig().threads, serviceBatching());
    let maxDiff = 0;
    try {
      const scores = await engine.score(
        items.map((it) => ({ ids: [...it.promptIds, ...it.stepIds], spans: [{ index: 0, start: it.promptIds.length, end: it.promptIds.length + it.stepIds.length }] })),
      );
      scores.forEach((s, i) => {
        let ours = 0;
        for (let k = 0; k < s.policy.length; k++) ours += s.policy[k] - s.reference[k];
        maxDiff = Math.max(maxDiff, Math.abs(ours - paper.advantages[i]));
      });
    } finally {
      await engine.close();
    }
    return {
      items: paper.items as number,
      threads: THREADS,
      scoredTokensPerSecond: paper.scored_tokens_per_s as number,
      tokensPerSecond: paper.tokens_per_s as number,
      peakRssMiB: paper.peak_rss_mb as number,
      maxAdvantageDifference: maxDiff,
    };
  });
  writeJson(options, 'paper', result);
  const tables = [
    table(
      `paper pattern: PyTorch, one sequence per forward, full-vocabulary log_softmax (${pair.name}, ${THREADS} threads, OMP_WAIT_POLICY=PASSIVE)`,
      ['items', 'scored tok/s', 'all tok/s', 'peak RSS MiB', 'max |Δ advantage| vs engine'],
      [[result.items, result.scoredTokensPerSecond, result.tokensPerSecond, result.peakRssMiB, result.maxAdvantageDifference?.toExponential(2)]],
    ),
  ];
  return { result, tables };
}
