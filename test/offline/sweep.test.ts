/**
 * `pa-server sweep` end to end on the default pair's evaluation file (20 episodes, 3 values of α
 * plus α = 0), through the real CLI entry: it prints the table, writes a self-contained SVG, and
 * each α's score file holds the lines `pa-server score` writes with `--reference-merge` at that α
 * (α = 0: the plain reference), scored here through the ordinary pair engine. The table is eval's
 * report on those files. Reruns resume; a rerun with other settings is refused.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, PACKAGE_ROOT, validateConfig, type Config } from '../../src/config.js';
import type { ReferenceMerge } from '../../src/engine/merge.js';
import { evaluate, readScores } from '../../src/offline/eval.js';
import { scoreFile } from '../../src/offline/score-file.js';
import { parseAlphaGrid, runSweepCommand, type SweepArgs } from '../../src/offline/sweep.js';
import { ScorerPool } from '../../src/pool.js';
import { readTrajectoryFile } from '../../src/text/adapters.js';
import { gridworldEpisodes, GRIDWORLD_POLICY, GRIDWORLD_REFERENCE } from '../helpers/default-pair-app.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sweep-'));
const input = path.join(tmp, 'episodes.jsonl');
const outDir = path.join(tmp, 'sweep');
const ALPHAS = [0, 0.25, 0.5, 0.75];
const DENSITY = 0.3;

const config = (merge?: ReferenceMerge): Config =>
  validateConfig({
    ...defaultConfig(),
    threads: 1,
    log_level: 'silent',
    scorers: [{ name: 'default', policy: GRIDWORLD_POLICY, reference: GRIDWORLD_REFERENCE, ...(merge ? { reference_merge: merge } : {}) }],
  });

const readLines = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

let cli: { stdout: string; stderr: string };

beforeAll(async () => {
  fs.writeFileSync(input, gridworldEpisodes(20).map((e) => JSON.stringify(e)).join('\n') + '\n');
  cli = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'src/cli.ts', 'sweep', '--input', input, '--format', 'messages', '--task', 'bon', '--merge', 'ties', '--alpha', '0.25:0.75:0.25', '--density', String(DENSITY), '--output', outDir, '--threads', '1', '--resamples', '200'],
    { cwd: PACKAGE_ROOT },
  );
}, 300_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('parseAlphaGrid', () => {
  it('expands START:STOP:STEP inclusively, adds α = 0, accepts lists, refuses values outside [0, 1]', () => {
    expect(parseAlphaGrid('0.1:0.9:0.1')).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
    expect(parseAlphaGrid('0:1:0.5')).toEqual([0, 0.5, 1]);
    expect(parseAlphaGrid('0.5, 0.2')).toEqual([0, 0.2, 0.5]);
    expect(() => parseAlphaGrid('0.5:1.5:0.5')).toThrow(/α must lie in \[0, 1\] \(got 1\.5\)/);
    expect(() => parseAlphaGrid('0.1:0.9:0')).toThrow(/STEP > 0/);
  });
});

describe('pa-server sweep (20 episodes, ties, α 0.25:0.75:0.25)', () => {
  it('prints the table with a row per α, α = 0 the plain reference, and writes the reports', () => {
    expect(cli.stderr).toMatch(/policy: 20 trajectories scored/);
    for (const a of ALPHAS) expect(cli.stderr).toContain(`α = ${a}${a === 0 ? ' (plain reference)' : ''}: 20 trajectories scored`);
    const rows = cli.stdout.split('\n').filter((l) => /^\d\.\d\d\s/.test(l));
    expect(rows.map((r) => r.split(/\s+/).slice(0, 2))).toEqual([
      ['0.00', 'plain'],
      ['0.25', 'ties'],
      ['0.50', 'ties'],
      ['0.75', 'ties'],
    ]);
    expect(cli.stdout).toMatch(/^α\s+reference\s+pa_mean \[95% CI\]\s+pa_sum \[95% CI\]/m);
    expect(cli.stdout).toMatch(/mean-of-N \(random pick\): \d\.\d{3} \[/);
    for (const f of ['sweep-bon.json', 'sweep-bon.md', 'sweep-bon.svg', 'settings.json', 'policy.jsonl', 'merges.json']) expect(fs.existsSync(path.join(outDir, f)), f).toBe(true);
  });

  it('the SVG is self-contained: one line per method, one point per α, no scripts or links', () => {
    const svg = fs.readFileSync(path.join(outDir, 'sweep-bon.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).not.toMatch(/<script|href=|@import|url\(/);
    expect(svg.match(/<polyline /g)).toHaveLength(6);
    expect(svg.match(/<circle /g)).toHaveLength(6 * ALPHAS.length);
    for (const m of ['pa_mean', 'pa_sum', 'pa_min', 'pa_max', 'pa_last', 'pa_bottom10']) expect(svg).toContain(`>${m}</text>`);
  });

  for (const alpha of ALPHAS) {
    it(`α = ${alpha}: the score file equals pa-server score with ${alpha === 0 ? 'the plain reference' : `--reference-merge ties:${alpha}:${DENSITY}`} (1e-6), and its row is eval's report`, async () => {
      const expectedFile = path.join(tmp, `score-${alpha}.jsonl`);
      const pool = new ScorerPool(config(alpha === 0 ? undefined : { method: 'ties', alpha, density: DENSITY }));
      await pool.load();
      try {
        await scoreFile(pool.get(), readTrajectoryFile(input, 'messages'), { format: 'messages', output: expectedFile });
      } finally {
        await pool.close();
      }
      const expected = readLines(expectedFile);
      const got = readLines(path.join(outDir, `alpha-${alpha}.jsonl`));
      expect(got.map((l) => l.id)).toEqual(expected.map((l) => l.id));
      got.forEach((line, i) => {
        const want = expected[i];
        expect(line.labels).toEqual(want.labels);
        expect(line.group).toBe(want.group);
        expect(line.steps.map((s: any) => s.index)).toEqual(want.steps.map((s: any) => s.index));
        line.steps.forEach((s: any, k: number) => expect(Math.abs(s.advantage - want.steps[k].advantage)).toBeLessThan(1e-6));
        for (const [name, v] of Object.entries(want.aggregates)) expect(Math.abs(line.aggregates[name] - (v as number))).toBeLessThan(1e-6);
      });
      const report = JSON.parse(fs.readFileSync(path.join(outDir, 'sweep-bon.json'), 'utf8'));
      const row = report.rows.find((r: any) => r.alpha === alpha);
      expect(row.reference).toBe(alpha === 0 ? 'plain' : 'ties');
      const fromScore = evaluate(readScores(expectedFile), { task: 'bon', resamples: 200 });
      for (const [m, interval] of Object.entries(fromScore.task === 'bon' ? fromScore.methods : {})) {
        expect(row.report.methods[m].estimate, m).toBeCloseTo(interval.estimate, 10);
      }
      if (alpha === 0) expect(row.merge).toBeNull();
      else expect(row.merge).toMatchObject({ method: 'ties', alpha, density: DENSITY, merged_tensors: 41 });
    }, 120_000);
  }

  const args = (over: Partial<SweepArgs> = {}): SweepArgs => ({
    input,
    format: 'messages',
    task: 'bon',
    method: 'ties',
    alphas: '0.25:0.75:0.25',
    density: DENSITY,
    output: outDir,
    resamples: 200,
    ...over,
  });
  async function run(over: Partial<SweepArgs> = {}): Promise<{ code: number; out: string; err: string }> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => (out += d));
    stderr.on('data', (d) => (err += d));
    const code = await runSweepCommand(config(), args(over), stdout, stderr);
    return { code, out, err };
  }

  it('resumes: a rerun scores nothing and prints the same table; a cut line is rescored', async () => {
    const again = await run();
    expect(again.code).toBe(0);
    expect(again.err).not.toMatch(/scored/);
    expect(again.out).toBe(cli.stdout);
    // A run killed mid-write: the last line of α = 0.5 is half there.
    const file = path.join(outDir, 'alpha-0.5.jsonl');
    const text = fs.readFileSync(file, 'utf8');
    const lastStart = text.lastIndexOf('\n', text.length - 2) + 1;
    fs.writeFileSync(file, text.slice(0, lastStart + 10));
    const resumed = await run();
    expect(resumed.code).toBe(0);
    expect(resumed.err).toContain('α = 0.5: 1 trajectories scored');
    expect(resumed.err).not.toMatch(/policy: \d+ trajectories scored/);
    const after = fs.readFileSync(file, 'utf8');
    expect(after.startsWith(text.slice(0, lastStart))).toBe(true);
    const [was, now] = [JSON.parse(text.slice(lastStart)), JSON.parse(after.slice(lastStart))];
    expect(now.id).toBe(was.id);
    for (const [name, v] of Object.entries(was.aggregates)) expect(Math.abs(now.aggregates[name] - (v as number))).toBeLessThan(1e-6);
    expect(readLines(file)).toHaveLength(20);
    expect(resumed.out).toBe(cli.stdout);
    // Another task reuses the score files: it only evaluates.
    const uq = await run({ task: 'uq' });
    expect(uq.code).toBe(0);
    expect(uq.err).not.toMatch(/scored/);
    expect(uq.out).toMatch(/^AUROC against α, ties density 0\.3 \(20 trajectories\)/);
    expect(fs.existsSync(path.join(outDir, 'sweep-uq.svg'))).toBe(true);
  }, 120_000);

  it('refuses to resume with other settings, and bad merge flags, with one line', async () => {
    const other = await run({ density: 0.5 });
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/^pa-server sweep: .* holds a sweep with another density \(0\.3, now 0\.5\); use another --output or remove it\n$/);
    const noDensity = await run({ density: undefined, output: path.join(tmp, 'x') });
    expect(noDensity.err).toBe('pa-server sweep: --merge ties: ties needs a density in (0, 1]\n');
    const badAlpha = await run({ alphas: '0.5:2:0.5', output: path.join(tmp, 'y') });
    expect(badAlpha.err).toBe('pa-server sweep: --alpha 0.5:2:0.5: α must lie in [0, 1] (got 1.5)\n');
  });
});
