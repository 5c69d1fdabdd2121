/**
 * `npm run bench`: generates the benchmark pairs if bench/models lacks them, builds if needed,
 * runs every bench, prints each table and the ratios between benches measured in this run, and
 * writes bench/out/<bench>.json plus bench/out/summary.json.
 *
 *   npm run bench                       the full suite (vocab 32,000 and 151,936, hidden 128)
 *   npm run bench -- --quick            smoke sizes on tiny pairs written from TypeScript
 *   npm run bench -- --only service     one bench (repeatable, or comma-separated)
 *   npm run bench -- --device cuda      sessions on the CUDA execution provider
 *   npm run bench -- --no-python        never call Python (the paper pattern is then skipped)
 *   npm run bench -- --out DIR          write the JSON files elsewhere
 */
import fs from 'node:fs';
import path from 'node:path';
import { BENCH_DIR, log, machineInfo, table, writeJson, type BenchContext, type BenchOptions, type BenchOutput, type Cell, sizesFor } from './lib/common.js';
import { runLevers } from './levers.js';
import { runLimit, type LimitResult } from './limit.js';
import { runMemory, type MemoryResult } from './memory.js';
import { runPaper, type PaperResult } from './paper.js';
import { runPrefix, type PrefixBenchResult } from './prefix.js';
import { runService, type ServiceResult } from './service.js';
import { runTrajectory, type TrajectoryBenchResult } from './trajectory.js';

const BENCHES = {
  limit: runLimit,
  paper: runPaper,
  service: runService,
  trajectory: runTrajectory,
  memory: runMemory,
  levers: runLevers,
  prefix: runPrefix,
} as const;
type BenchName = keyof typeof BENCHES;

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\nusage: npm run bench -- [--quick] [--only NAME[,NAME]] [--device cpu|cuda] [--no-python] [--out DIR]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): { options: BenchOptions; only: BenchName[] } {
  const options: BenchOptions = { quick: false, device: 'cpu', outDir: path.join(BENCH_DIR, 'out'), noPython: false };
  const only: BenchName[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i] ?? usage(`${arg} needs a value`);
    if (arg === '--quick') options.quick = true;
    else if (arg === '--no-python') options.noPython = true;
    else if (arg === '--device') {
      const d = value();
      if (d !== 'cpu' && d !== 'cuda') usage(`--device must be cpu or cuda, not ${d}`);
      options.device = d;
    } else if (arg === '--out') options.outDir = path.resolve(value());
    else if (arg === '--only') {
      for (const name of value().split(',')) {
        if (!(name in BENCHES)) usage(`unknown bench "${name}" (${Object.keys(BENCHES).join(', ')})`);
        only.push(name as BenchName);
      }
    } else usage(`unknown argument ${arg}`);
  }
  return { options, only };
}

interface Ratio {
  name: string;
  value: number | null;
  target: string;
  met: boolean | null;
  detail: string;
}

function ratios(results: Partial<Record<BenchName, BenchOutput['result']>>): Ratio[] {
  const limit = results.limit as LimitResult | undefined;
  const paper = results.paper as PaperResult | undefined;
  const service = results.service as ServiceResult | undefined;
  const trajectory = results.trajectory as TrajectoryBenchResult | undefined;
  const memory = results.memory as MemoryResult | undefined;
  const prefix = results.prefix as PrefixBenchResult | undefined;
  const at = (c: number) => service?.levels.find((l) => l.concurrency === c);
  const top = service ? service.levels.reduce((a, b) => (b.concurrency > a.concurrency ? b : a)) : undefined;
  const out: Ratio[] = [];
  const missing = (name: string, target: string, needs: string): Ratio => ({ name, value: null, target, met: null, detail: `needs ${needs} in this run` });

  if (top && limit) {
    const v = top.scoredTokensPerSecond / limit.scoredTokensPerSecond;
    out.push({ name: `service ÷ limit, scored tok/s at concurrency ${top.concurrency}`, value: v, target: '≥ 0.9', met: v >= 0.9, detail: `${top.scoredTokensPerSecond.toFixed(0)} / ${limit.scoredTokensPerSecond.toFixed(0)}` });
  } else out.push(missing('service ÷ limit at concurrency 64', '≥ 0.9', 'service and limit'));

  if (top && paper?.scoredTokensPerSecond) {
    const v = top.scoredTokensPerSecond / paper.scoredTokensPerSecond;
    out.push({ name: `service ÷ paper pattern, scored step tok/s (concurrency ${top.concurrency})`, value: v, target: '≥ 4', met: v >= 4, detail: `${top.scoredTokensPerSecond.toFixed(0)} / ${paper.scoredTokensPerSecond.toFixed(0)}` });
  } else out.push(missing('service ÷ paper pattern', '≥ 4', paper?.skipped ? `the paper pattern (skipped: ${paper.skipped})` : 'service and paper'));

  const c1 = at(1);
  if (c1 && limit) {
    const bound = 1.2 * limit.singleItem.p50Ms + 1;
    const v = c1.p50Ms / bound;
    out.push({ name: 'p50 at concurrency 1 ÷ (1.2 × limit single-item p50 + 1 ms)', value: v, target: '≤ 1', met: v <= 1, detail: `${c1.p50Ms.toFixed(1)} ms vs ${bound.toFixed(1)} ms` });
  } else out.push(missing('p50 at concurrency 1 vs 1.2 × single-item + 1 ms', '≤ 1', 'service (concurrency 1) and limit'));

  if (trajectory) {
    const v = trajectory.ratio;
    out.push({ name: `trajectory: ${trajectory.steps} /v1/score calls ÷ 1 /v1/trajectories/score`, value: v, target: `≥ ${0.8 * trajectory.steps}`, met: v >= 0.8 * trajectory.steps, detail: `${trajectory.callsMs.toFixed(0)} ms / ${trajectory.trajectoryMs.toFixed(0)} ms; token ratio ${trajectory.tokenRatio.toFixed(1)}` });
  } else out.push(missing('trajectory ratio', '≥ 16', 'trajectory'));

  if (memory) {
    const [small, large] = memory.runs;
    const v = large.peakMiB / small.peakMiB;
    out.push({ name: `peak RSS, vocab ${large.vocab} ÷ vocab ${small.vocab}`, value: v, target: '≤ 1.25', met: v <= 1.25, detail: `${large.peakMiB.toFixed(0)} MiB / ${small.peakMiB.toFixed(0)} MiB` });
    const bounded = memory.cacheBound?.runs.filter((r) => r.boundMiB > 0) ?? [];
    if (bounded.length > 0) {
      const worst = bounded.reduce((w, r) => (r.overBoundMiB > w.overBoundMiB ? r : w));
      out.push({ name: 'prefix cache under load: peak − (cache-off peak + bound), worst bound', value: worst.overBoundMiB, target: '≤ 0 MiB', met: worst.overBoundMiB <= 0, detail: bounded.map((r) => `${r.overBoundMiB.toFixed(1)} MiB at ${r.boundMiB} MiB`).join(', ') });
    }
  } else out.push(missing('peak RSS 151,936 vs 32,000', '≤ 1.25', 'memory'));

  if (prefix) {
    const { agentLoop: a, bestOf8: b, independent: i, trajectory: t } = prefix;
    out.push({ name: 'agent loop, 20 calls: cache off ÷ cache on', value: a.ratio, target: '≥ 5', met: a.ratio >= 5, detail: `${a.offMs.toFixed(0)} ms / ${a.onMs.toFixed(0)} ms` });
    out.push({ name: `agent loop, cache on: calls at ~${a.lastContext} ÷ calls at ~${a.firstContext} tokens`, value: a.lastOverFirst, target: '≤ 2', met: a.lastOverFirst <= 2, detail: `last two ÷ first two calls` });
    const m = prefix.messageLoop;
    out.push({ name: 'agent loop as messages (/v1/rank), 20 calls: cache off ÷ cache on', value: m.ratio, target: '≥ 5', met: m.ratio >= 5, detail: `${m.offMs.toFixed(0)} ms / ${m.onMs.toFixed(0)} ms` });
    out.push({ name: `agent loop as messages, cache on: calls at ~${m.lastWords} ÷ calls at ~${m.firstWords} words`, value: m.lastOverFirst, target: '≤ 2', met: m.lastOverFirst <= 2, detail: 'last two ÷ first two calls' });
    out.push({ name: 'best-of-8 /v1/rank: cache off ÷ cache on', value: b.ratio, target: '≥ 4', met: b.ratio >= 4, detail: `${b.offMs.toFixed(0)} ms / ${b.onMs.toFixed(0)} ms` });
    out.push({ name: 'independent items: cache off ÷ cache on', value: i.ratio, target: '≥ 0.95', met: i.ratio >= 0.95, detail: `${i.offMs.toFixed(0)} ms / ${i.onMs.toFixed(0)} ms` });
    out.push({ name: 'whole trajectories: raw full-logits forward ÷ service', value: t.ratio, target: '≥ 1.0', met: t.ratio >= 1, detail: `${t.rawMs.toFixed(0)} ms / ${t.serviceMs.toFixed(0)} ms` });
  } else out.push(missing('prefix cache ratios', '≥ 5, ≤ 2, ≥ 4, ≥ 0.95, ≥ 1.0', 'prefix'));
  return out;
}

async function main(): Promise<void> {
  const { options, only } = parseArgs(process.argv.slice(2));
  const selected = only.length > 0 ? only : (Object.keys(BENCHES) as BenchName[]);
  const ctx: BenchContext = { options, sizes: sizesFor(options) };
  const machine = machineInfo();
  const started = performance.now();
  log(`${options.quick ? 'quick' : 'full'} run on ${machine.cores} cores (${machine.cpuModel}), device ${options.device}, commit ${machine.commit}${machine.dirty ? ' (dirty)' : ''}, load ${machine.loadAverage[0].toFixed(2)}`);
  const results: Partial<Record<BenchName, BenchOutput['result']>> = {};
  const tables: string[] = [];
  for (const name of selected) {
    log(`${name}: running`);
    const out = await BENCHES[name](ctx);
    out.result.machine = machine;
    writeJson(options, name, out.result);
    results[name] = out.result;
    for (const t of out.tables) {
      tables.push(t);
      process.stdout.write(`${t}\n`);
    }
    log(`${name}: ${out.result.seconds.toFixed(1)} s`);
  }
  const summary = ratios(results);
  const ratioTable = table(
    `ratios measured in this run${options.quick ? ' (QUICK: smoke-test sizes on tiny models, not meaningful)' : ''}`,
    ['ratio', 'value', 'target', 'met', 'measured'],
    summary.map((r): Cell[] => [r.name, r.value, r.target, r.met === null ? 'not measured' : r.met ? 'yes' : 'NO', r.detail]),
  );
  process.stdout.write(`${ratioTable}\n`);
  const seconds = (performance.now() - started) / 1000;
  writeJson(options, 'summary', { machine, quick: options.quick, device: options.device, benches: selected, seconds, ratios: summary, tables: [...tables, ratioTable] });
  // The same tables as Markdown with the machine facts on top: what bench/RESULTS.md is made from.
  const loads = Object.values(results).map((r) => `${r!.bench} ${r!.loadAverage.before.toFixed(1)}→${r!.loadAverage.after.toFixed(1)}`);
  const header = [
    `Run of ${machine.date} · commit ${machine.commit}${machine.dirty ? ' (uncommitted changes present)' : ''} · ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB · Node ${machine.node}, onnxruntime-node ${machine.onnxruntime} · device ${options.device} · ${seconds.toFixed(0)} s`,
    '',
    `1-minute load average before→after each bench: ${loads.join(', ')}`,
    '',
  ];
  fs.writeFileSync(path.join(options.outDir, 'results.md'), [...header, ...tables, ratioTable].join('\n'));
  log(`done in ${seconds.toFixed(0)} s; JSON in ${path.relative(process.cwd(), options.outDir) || '.'}`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
