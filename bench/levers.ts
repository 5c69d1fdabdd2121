/**
 * levers: the engine settings issue 5 names, each measured on the same items in this run.
 *   - intra-op threads per session, and two workers side by side vs one after the other (what one
 *     worker holding both sessions does);
 *   - max_batch_tokens (batch size) and the padded-length bucketing;
 *   - ORT's enableCpuMemArena / enableMemPattern (one session per fresh process: time + peak RSS);
 *   - the LM head only at scored positions vs the full projection (the fallback path);
 *   - sending batches to a worker by structured clone vs transferring the buffers.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { decodeModel, encodeModel } from '../src/engine/scoring-head.js';
import { resolveModelDir } from '../src/engine/model-dir.js';
import { makeItems, median, ROOT, stepTokens, table, timedBench, writeJson, type BenchContext, type BenchOutput, type BenchResult, type Pair } from './lib/common.js';
import {
  exactBuckets,
  formBatches,
  itemRow,
  ladderBuckets,
  powerOfTwoBuckets,
  runBatches,
  serviceBatching,
  singleItemSeconds,
  startEngine,
  type Bucketing,
  type Schedule,
} from './lib/engine.js';
import { mainPair } from './lib/pairs.js';
import type { ProbeSpec } from './lib/session-probe.js';

interface EngineLever {
  lever: string;
  setting: string;
  threadsPerSession: number;
  schedule: Schedule;
  maxBatchTokens: number;
  bucketing: string;
  scoredTokensPerSecond: number;
  singleP50Ms: number | null;
  meanBatchRows: number;
  paddedFraction: number;
}

interface SessionLever {
  setting: string;
  singleP50Ms: number;
  batchedScoredTokensPerSecond: number;
  peakRssMiB: number;
  gatherBeforeLmHead: boolean;
}

export interface LeversResult extends BenchResult {
  engine: EngineLever[];
  session: SessionLever[];
  transfer: { batchBytes: number; cloneUs: number; transferUs: number };
}

const BUCKETINGS: Record<string, Bucketing> = { ladder: ladderBuckets, exact: exactBuckets, 'power of two': powerOfTwoBuckets };

/**
 * A copy of the policy whose logits pass through an Identity, so the scoring head cannot see the
 * LM-head MatMul and takes its fallback: full projection at every position, then gather.
 */
function fullHeadCopy(pair: Pair): string {
  const dir = path.join(pair.dir, 'policy-full-head');
  const file = path.join(dir, 'model.onnx');
  if (fs.existsSync(file)) return file;
  const model = decodeModel(fs.readFileSync(resolveModelDir(pair.policy).onnxFile));
  const graph = model.graph!;
  const producer = graph.node!.find((n) => n.output!.includes('logits'))!;
  producer.output = producer.output!.map((o) => (o === 'logits' ? 'logits_projected' : o));
  graph.node!.push({ opType: 'Identity', name: 'bench/full_head', input: ['logits_projected'], output: ['logits'] } as never);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, encodeModel(model));
  return file;
}

function probe(spec: ProbeSpec): Promise<Omit<SessionLever, 'setting'>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'lib', 'session-probe.ts'), JSON.stringify(spec)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`session probe exited ${code}: ${err.slice(-1500)}`))));
  });
}

/** Microseconds per message to an echo worker: structured clone of the batch vs transferring its buffers. */
async function transferCost(batch: { ids: Int32Array; lengths: Int32Array; gatherIndex: Int32Array; targets: Int32Array }, rounds: number) {
  const worker = new Worker('const { parentPort } = require("node:worker_threads"); parentPort.on("message", () => parentPort.postMessage(0));', { eval: true });
  const roundTrip = (transfer: boolean) =>
    new Promise<void>((resolve) => {
      worker.once('message', () => resolve());
      if (transfer) {
        const copy = { ids: batch.ids.slice(), lengths: batch.lengths.slice(), gatherIndex: batch.gatherIndex.slice(), targets: batch.targets.slice() };
        worker.postMessage(copy, [copy.ids.buffer, copy.lengths.buffer, copy.gatherIndex.buffer, copy.targets.buffer]);
      } else worker.postMessage(batch);
    });
  const time = async (transfer: boolean) => {
    for (let i = 0; i < 20; i++) await roundTrip(transfer);
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) await roundTrip(transfer);
    return ((performance.now() - t0) * 1000) / rounds;
  };
  // The transfer variant pays for a fresh copy each time (the batch goes to two workers, so one
  // copy is unavoidable): what is measured is what the engine could save.
  const cloneUs = await time(false);
  const transferUs = await time(true);
  await worker.terminate();
  return { batchBytes: batch.ids.byteLength + batch.lengths.byteLength + batch.gatherIndex.byteLength + batch.targets.byteLength, cloneUs, transferUs };
}

export async function runLevers(ctx: BenchContext): Promise<BenchOutput<LeversResult>> {
  const { options } = ctx;
  const pair = mainPair(options);
  const count = options.quick ? 8 : 32;
  const singles = options.quick ? 2 : 12;
  const items = makeItems(count, ctx.sizes, pair.vocab, pair.maxPositions, 3);
  const rows = items.map(itemRow);
  const scored = stepTokens(items);
  const cores = os.availableParallelism();
  const half = Math.max(1, Math.floor(cores / 2));
  const defaults = serviceBatching();

  const result = await timedBench(ctx, 'levers', { main: pair.name }, async () => {
    const engine: EngineLever[] = [];
    const threadConfigs: { threads: number; schedule: Schedule }[] = [
      { threads: half, schedule: 'parallel' },
      { threads: cores, schedule: 'parallel' },
      { threads: cores, schedule: 'sequential' },
      { threads: half, schedule: 'sequential' },
    ];
    for (const [i, tc] of threadConfigs.entries()) {
      const eng = await startEngine(pair, options.device, tc.threads, defaults);
      try {
        const measure = async (lever: string, setting: string, maxBatchTokens: number, bucketName: string, withSingles: boolean, maxBatchRows = defaults.maxBatchRows) => {
          const batches = formBatches(rows, { ...defaults, maxBatchTokens, maxBatchRows }, BUCKETINGS[bucketName]);
          await runBatches(eng, batches.slice(0, 2), 1, tc.schedule); // warm the shapes
          const seconds = await runBatches(eng, batches, defaults.maxInflight, tc.schedule);
          const single = withSingles ? median(await singleItemSeconds(eng, items.slice(0, singles), tc.schedule)) * 1000 : null;
          const padded = batches.reduce((n, b) => n + b.rows * b.seqLen, 0);
          const real = rows.reduce((n, r) => n + r.ids.length, 0);
          engine.push({
            lever,
            setting,
            threadsPerSession: tc.threads,
            schedule: tc.schedule,
            maxBatchTokens,
            bucketing: bucketName,
            scoredTokensPerSecond: scored / seconds,
            singleP50Ms: single,
            meanBatchRows: rows.length / batches.length,
            paddedFraction: 1 - real / padded,
          });
        };
        const label = `${tc.schedule === 'parallel' ? 'two workers side by side' : 'one after the other (one worker)'}, ${tc.threads} thread(s) each`;
        await measure('threads / workers', label, defaults.maxBatchTokens, 'ladder', true);
        if (i === 0) {
          for (const tokens of [2048, 4096]) await measure('max_batch_tokens', String(tokens), tokens, 'ladder', false);
          await measure('max_batch_rows', '1 (no batching)', defaults.maxBatchTokens, 'ladder', false, 1);
          for (const b of ['exact', 'power of two']) await measure('bucketing', b, defaults.maxBatchTokens, b, false);
        }
      } finally {
        await eng.close();
      }
    }

    const session: SessionLever[] = [];
    const base = { device: options.device, vocab: pair.vocab, maxPositions: pair.maxPositions, quick: options.quick, items: count, singles };
    const policyOnnx = resolveModelDir(pair.policy).onnxFile;
    const memoryConfigs: [string, ProbeSpec['memory']][] = [
      ['arena on, mem pattern on (ORT default)', { enableCpuMemArena: true, enableMemPattern: true }],
      ['arena on, mem pattern off (engine default)', {}],
      ['arena off, mem pattern on', { enableCpuMemArena: false, enableMemPattern: true }],
      ['both off', { enableCpuMemArena: false, enableMemPattern: false }],
    ];
    for (const [setting, memory] of memoryConfigs) session.push({ setting, ...(await probe({ ...base, onnx: policyOnnx, memory })) });
    session.push({ setting: 'full LM head at every position (fallback path)', ...(await probe({ ...base, onnx: fullHeadCopy(pair), memory: {} })) });

    const largest = formBatches(rows, defaults).reduce((a, b) => (b.ids.length > a.ids.length ? b : a));
    const transfer = await transferCost(largest, options.quick ? 50 : 500);
    return { engine, session, transfer };
  });
  writeJson(options, 'levers', result);
  const tables = [
    table(
      `levers: engine (${pair.name}, ${count} items, ${cores} cores)`,
      ['lever', 'setting', 'scored tok/s', 'single p50 ms', 'mean rows', 'padding'],
      result.engine.map((e) => [e.lever, e.setting, e.scoredTokensPerSecond, e.singleP50Ms, e.meanBatchRows, `${(e.paddedFraction * 100).toFixed(1)}%`]),
    ),
    table(
      'levers: one policy session per process, 1 thread (time and peak RSS)',
      ['setting', 'single p50 ms', 'batched scored tok/s', 'peak RSS MiB', 'head before LM MatMul'],
      result.session.map((s) => [s.setting, s.singleP50Ms, s.batchedScoredTokensPerSecond, s.peakRssMiB, String(s.gatherBeforeLmHead)]),
    ),
    table(
      'levers: sending the largest batch to a worker',
      ['batch bytes', 'structured clone µs', 'copy + transfer µs'],
      [[result.transfer.batchBytes, result.transfer.cloneUs, result.transfer.transferUs]],
    ),
  ];
  return { result, tables };
}
