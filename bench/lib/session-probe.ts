/**
 * One scoring session (the policy, with its stats head) in a fresh process, so its peak RSS is
 * its own: loads with the given ORT allocator switches, times one-item forwards and the batched
 * forward of the items, prints one JSON line. Spawned by bench/levers.ts.
 *
 *   node --import tsx bench/lib/session-probe.ts '{"onnx": "...", ...}'
 */
import fs from 'node:fs';
import { packBatch } from '../../src/engine/batch.js';
import { probeBatch, ScoringSession } from '../../src/engine/session.js';
import { makeItems, median, QUICK_SIZES, FULL_SIZES, stepTokens } from './common.js';
import { formBatches, itemRow, serviceBatching } from './engine.js';

export interface ProbeSpec {
  onnx: string;
  device: string;
  vocab: number;
  maxPositions: number;
  quick: boolean;
  items: number;
  singles: number;
  memory: { enableCpuMemArena?: boolean; enableMemPattern?: boolean };
}

const spec = JSON.parse(process.argv[2]) as ProbeSpec;
const session = await ScoringSession.load({ onnxFile: spec.onnx, stats: true, device: spec.device, intraOpThreads: 1, memory: spec.memory });
await session.run(probeBatch);
const items = makeItems(spec.items, spec.quick ? QUICK_SIZES : FULL_SIZES, spec.vocab, spec.maxPositions, 3);
const singles: number[] = [];
for (const item of items.slice(0, spec.singles)) {
  const batch = packBatch([itemRow(item)]);
  const t0 = performance.now();
  await session.run(batch);
  singles.push(performance.now() - t0);
}
const batches = formBatches(items.map(itemRow), serviceBatching());
const t0 = performance.now();
for (const b of batches) await session.run(b);
const seconds = (performance.now() - t0) / 1000;
const hwm = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;
process.stdout.write(
  `${JSON.stringify({ singleP50Ms: median(singles), batchedScoredTokensPerSecond: stepTokens(items) / seconds, peakRssMiB: hwm, gatherBeforeLmHead: session.info.gatherBeforeLmHead })}\n`,
);
await session.release();
