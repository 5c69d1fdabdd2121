/**
 * The bench scripts start and write their JSON in --quick mode (tiny pairs written from
 * TypeScript; no Python needed). No timing is asserted: timings belong in bench/RESULTS.md.
 * What is asserted besides shape: numbers that two independent paths must agree on (the
 * trajectory route vs 20 /v1/score calls; PyTorch vs the ONNX engine when torch is installed).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-bench-smoke-'));
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

function bench(args: string[]): string {
  return execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'run.ts'), '--quick', '--out', out, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 400_000,
  });
}

const read = (name: string) => JSON.parse(fs.readFileSync(path.join(out, `${name}.json`), 'utf8'));

const torchInstalled = spawnSync(process.env.PA_BENCH_PYTHON ?? '/usr/bin/python3', ['-c', 'import torch, onnx'], { stdio: 'ignore' }).status === 0;

describe('npm run bench -- --quick', () => {
  it('runs every bench without Python and writes its JSON and the ratio table', { timeout: 420_000 }, () => {
    const stdout = bench(['--no-python']);
    expect(stdout).toContain('ratios measured in this run');

    const limit = read('limit');
    expect(limit.bench).toBe('limit');
    expect(limit.quick).toBe(true);
    expect(limit.scoredTokensPerSecond).toBeGreaterThan(0);
    expect(limit.singleItem.p50Ms).toBeGreaterThan(0);
    expect(limit.machine.cores).toBeGreaterThan(0);

    expect(read('paper').skipped).toMatch(/no-python/);

    const service = read('service');
    expect(service.levels.map((l: { concurrency: number }) => l.concurrency)).toEqual([1, 8, 64]);
    for (const level of service.levels) {
      expect(level.scoredTokensPerSecond).toBeGreaterThan(0);
      expect(level.p99Ms).toBeGreaterThanOrEqual(level.p50Ms);
      expect(level.meanBatchRows).toBeGreaterThanOrEqual(1);
    }

    const trajectory = read('trajectory');
    expect(trajectory.steps).toBe(20);
    // The same prefixes through two routes: one forward of the whole trajectory vs 20 calls.
    expect(trajectory.maxAdvantageDifference).toBeLessThan(1e-3);
    expect(trajectory.callsTokens).toBeGreaterThan(trajectory.trajectoryTokens);

    const memory = read('memory');
    expect(memory.runs.map((r: { vocab: number }) => r.vocab)).toEqual([1000, 8000]);
    for (const run of memory.runs) expect(run.peakMiB).toBeGreaterThanOrEqual(run.peakAfterLoadMiB);
    expect(memory.cacheBound.runs.map((r: { boundMiB: number }) => r.boundMiB)).toEqual([0, 1]);

    const levers = read('levers');
    expect(levers.engine.length).toBeGreaterThan(0);
    expect(levers.session.find((s: { gatherBeforeLmHead: boolean }) => !s.gatherBeforeLmHead)).toBeDefined();
    expect(levers.transfer.cloneUs).toBeGreaterThan(0);

    const prefix = read('prefix');
    // Cache on and off score the same loop, candidates and items (the embedded pair, with past).
    expect(prefix.agentLoop.calls).toBe(20);
    expect(prefix.agentLoop.maxDiff).toBeLessThan(1e-4);
    expect(prefix.bestOf8.maxDiff).toBeLessThan(1e-4);
    expect(prefix.independent.maxDiff).toBeLessThan(1e-4);
    expect(prefix.messageLoop.calls).toBe(20);
    expect(prefix.messageLoop.maxDiff).toBeLessThan(1e-4);

    const summary = read('summary');
    expect(summary.ratios).toHaveLength(13);
    expect(summary.benches).toEqual(['limit', 'paper', 'service', 'trajectory', 'memory', 'levers', 'prefix']);
  });

  it.skipIf(!torchInstalled)('runs the paper pattern in PyTorch on the same weights as the engine', { timeout: 300_000 }, () => {
    bench(['--only', 'paper']);
    const paper = read('paper');
    expect(paper.skipped).toBeUndefined();
    expect(paper.scoredTokensPerSecond).toBeGreaterThan(0);
    expect(paper.peakRssMiB).toBeGreaterThan(0);
    // PyTorch's full-vocabulary log_softmax and the engine's in-graph head agree on the advantages.
    expect(paper.maxAdvantageDifference).toBeLessThan(1e-3);
  });
});
