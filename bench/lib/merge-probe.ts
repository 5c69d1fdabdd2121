/**
 * One reference session in a fresh process, plain or merged with a policy (engine/merge.ts), so
 * its peak RSS is its own; prints one JSON line. Spawned by bench/merge-memory.ts.
 *
 *   node --import tsx bench/lib/merge-probe.ts '{"reference": "...", "policy": "...", "merge": {...} | null}'
 */
import fs from 'node:fs';
import { probeBatch, ScoringSession } from '../../src/engine/session.js';
import type { ReferenceMerge } from '../../src/engine/merge.js';

const spec = JSON.parse(process.argv[2]) as { reference: string; policy: string; merge: ReferenceMerge | null };
const t0 = performance.now();
const session = await ScoringSession.load({
  onnxFile: spec.reference,
  stats: false,
  device: 'cpu',
  intraOpThreads: 1,
  ...(spec.merge ? { merge: { ...spec.merge, policyOnnx: spec.policy } } : {}),
});
await session.run(probeBatch);
const loadSeconds = (performance.now() - t0) / 1000;
const hwm = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;
process.stdout.write(`${JSON.stringify({ peakRssMiB: hwm, loadSeconds, digest: session.info.merge?.weights_sha256 ?? null })}\n`);
await session.release();
