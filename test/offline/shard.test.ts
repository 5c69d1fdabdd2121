/**
 * Sharded offline scoring (`pa-server score --shard I/N`, src/offline/shard.ts) and `eval` over
 * several files:
 *  - the shard of an id is pinned to values computed independently with Python's hashlib
 *    (`int.from_bytes(hashlib.sha256(id.encode()).digest()[:8], "big") % N`), so the partition
 *    is the same on every machine and run;
 *  - over the real Who&When and τ-bench data (../shared/real), the union of shards 0/3, 1/3 and
 *    2/3 is the unsharded output as the same lines in any order, and eval over the three files
 *    (or their directory) equals eval over the one file;
 *  - resuming is per shard: a half-finished shard file is completed to the same lines, and a file
 *    of another shard is refused;
 *  - the flag through the real CLI entry: a bad spec is exit 1 with a message, no stack trace.
 *
 * Rows run one per forward batch (max_batch_rows 1) so that every number is bit-for-bit the same
 * whichever neighbours a row would otherwise be batched with; the lines can then be compared as
 * strings.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, PACKAGE_ROOT, validateConfig, type Config } from '../../src/config.js';
import { evaluate, readScores, type EvalTask } from '../../src/offline/eval.js';
import { runScoreCommand } from '../../src/offline/score-file.js';
import { parseShard, shardOf, type Shard } from '../../src/offline/shard.js';
import { gridworldEpisodes, GRIDWORLD_POLICY, GRIDWORLD_REFERENCE } from '../helpers/default-pair-app.js';
import { perturbModel } from '../helpers/onnx-fixtures.js';
import { DATA, DIRS } from '../text/real-files.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shard-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const readText = (file: string) => fs.readFileSync(file, 'utf8');
const linesOf = (file: string) => readText(file).split('\n').filter((l) => l.trim() !== '');

/** runScoreCommand with its messages captured; returns [exit code, stderr]. */
async function score(config: Config, args: Parameters<typeof runScoreCommand>[1]): Promise<[number, string]> {
  const err = new PassThrough();
  let said = '';
  err.on('data', (d) => (said += d));
  const code = await runScoreCommand(config, { progress: 'none', ...args }, err as unknown as NodeJS.WriteStream);
  return [code, said];
}

describe('the partition', () => {
  it('matches hashlib: first 8 bytes of SHA-256 of the UTF-8 id, big-endian, mod N', () => {
    // [id, mod 3, mod 4, mod 7, mod 1000003], from the Python line in the header.
    const golden: [string, number, number, number, number][] = [
      ['Algorithm-Generated/1', 0, 1, 1, 313697],
      ['Hand-Crafted/12', 2, 2, 1, 321260],
      ['task-0-trial-0', 0, 3, 4, 752763],
      ['map000-ep0', 0, 0, 4, 14590],
      ['', 1, 0, 1, 224200],
      ['ünïcode/🙂', 2, 1, 1, 76554],
      ['rows.jsonl:3', 0, 3, 5, 224318],
    ];
    for (const [id, ...expected] of golden) expect([3, 4, 7, 1000003].map((n) => shardOf(id, n)), id).toEqual(expected);
    expect(shardOf('anything', 1)).toBe(0);
  });

  it('parses I/N and refuses anything else, naming the flag', () => {
    expect(parseShard('0/3')).toEqual({ index: 0, count: 3 });
    expect(parseShard(' 2 / 3 ')).toEqual({ index: 2, count: 3 });
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
    for (const bad of ['3/3', '1/0', '-1/3', '1', '1/3/4', 'a/b', '', '1.5/3']) expect(() => parseShard(bad), bad).toThrow(/--shard/);
  });
});

describe('resume per shard, on the default pair', () => {
  const config = validateConfig({
    ...defaultConfig(),
    threads: 1,
    log_level: 'silent',
    max_batch_rows: 1,
    scorers: [{ name: 'default', policy: GRIDWORLD_POLICY, reference: GRIDWORLD_REFERENCE }],
  });
  const input = path.join(tmp, 'episodes.jsonl');
  fs.writeFileSync(input, gridworldEpisodes(24).map((r) => JSON.stringify(r)).join('\n') + '\n');
  const shard: Shard = { index: 1, count: 3 };
  const expectedIds = gridworldEpisodes(24)
    .map((r) => r.id as string)
    .filter((id) => shardOf(id, 3) === 1);

  it('a half-written shard file is completed to the lines of an uninterrupted run; another shard\'s file is refused', async () => {
    expect(expectedIds.length).toBeGreaterThan(3);
    const full = path.join(tmp, 'full-1-of-3.jsonl');
    const [code, said] = await score(config, { input, format: 'messages', output: full, shard });
    expect(code, said).toBe(0);
    expect(said).toContain(`shard 1/3: ${expectedIds.length} of the 24 trajectories`);
    expect(linesOf(full).map((l) => JSON.parse(l).id)).toEqual(expectedIds);

    // Killed after two lines, in the middle of the third.
    const partial = path.join(tmp, 'partial-1-of-3.jsonl');
    const [a, b, c] = linesOf(full);
    fs.writeFileSync(partial, `${a}\n${b}\n${c.slice(0, 40)}`);
    const [code2, said2] = await score(config, { input, format: 'messages', output: partial, shard });
    expect(code2, said2).toBe(0);
    expect(said2).toContain(`resuming: 2 already in ${partial}, ${expectedIds.length - 2} to score`);
    expect(readText(partial)).toBe(readText(full));

    // Shard 0's run pointed at shard 1's file.
    const [code3, said3] = await score(config, { input, format: 'messages', output: full, shard: { index: 0, count: 3 } });
    expect(code3).toBe(1);
    expect(said3).toMatch(/holds "map000-ep\d", which is not in shard 0\/3; give each shard its own output file/);
    expect(readText(full)).toBe(readText(partial)); // untouched
  });

  it('an empty shard still leaves its output file', async () => {
    const one = path.join(tmp, 'one.jsonl');
    fs.writeFileSync(one, JSON.stringify(gridworldEpisodes(1)[0]) + '\n');
    const other = (shardOf('map000-ep0', 2) + 1) % 2;
    const output = path.join(tmp, 'empty-shard.jsonl');
    const [code, said] = await score(config, { input: one, format: 'messages', output, shard: { index: other, count: 2 } });
    expect(code, said).toBe(0);
    expect(readText(output)).toBe('');
  });

  it('a bad --shard through the CLI entry is exit 2 (a usage error) with one message', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'score', '--input', input, '--format', 'messages', '--output', path.join(tmp, 'x.jsonl'), '--shard', '3/3'], {
      cwd: PACKAGE_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status).toBe(2); // a usage error, like every bad flag value
    expect(run.stderr).toMatch(/--shard 3\/3: I must be in 0\.\.2/);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(fs.existsSync(path.join(tmp, 'x.jsonl'))).toBe(false);
    // The other numeric flags of the offline commands answer the same way (they threw a stack trace).
    const zero = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'score', '--input', input, '--format', 'messages', '--output', path.join(tmp, 'x.jsonl'), '--concurrency', '0'], {
      cwd: PACKAGE_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/--concurrency <n>' argument '0' is invalid\. Expected a positive integer/);
    expect(zero.stderr).not.toMatch(/\n\s+at /);
  }, 180_000);
});

const haveReal = fs.existsSync(path.join(DATA, 'who-and-when')) && fs.existsSync(DIRS.llama);
if (!haveReal && !process.env.CI) console.warn(`shard.test.ts: skipping the real-data shards: ${DATA} or ${DIRS.llama} is missing`);

describe.skipIf(!haveReal && !process.env.CI)('shards over the real Who&When and τ-bench data, tiny Llama', () => {
  const MAX_LENGTH = 256;
  let config: Config;
  beforeAll(() => {
    const reference = path.join(tmp, 'llama-perturbed');
    perturbModel(DIRS.llama, reference, { seed: 7 });
    config = validateConfig({
      ...defaultConfig(),
      threads: 1,
      log_level: 'silent',
      max_batch_tokens: MAX_LENGTH,
      max_batch_rows: 1,
      // Byte-identical lines across shard layouts: on this fp16 export the prefix cache is exact to
      // 1e-4, not to the bit, and what it holds depends on what a run scored before (README, Scaling out).
      prefix_cache_mb: 0,
      scorers: [{ name: 'default', policy: DIRS.llama, reference, max_length: MAX_LENGTH }],
    });
  });

  // 16 of the 50 Who&When cases (8 of each subset, in the data's own layout): the partition and the
  // eval are per id, so more cases only cost time (long-context.test.ts runs all 50).
  const whoAndWhen = path.join(tmp, 'who-and-when-16');
  if (haveReal) {
    for (const subset of ['Algorithm-Generated', 'Hand-Crafted']) {
      fs.mkdirSync(path.join(whoAndWhen, subset), { recursive: true });
      const files = fs.readdirSync(path.join(DATA, 'who-and-when', subset)).filter((f) => f.endsWith('.json'));
      files.sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
      for (const f of files.slice(0, 8)) fs.copyFileSync(path.join(DATA, 'who-and-when', subset, f), path.join(whoAndWhen, subset, f));
    }
  }
  const cases: { name: string; input: string; format: string; tasks: EvalTask[] }[] = [
    { name: 'Who&When (16 cases)', input: whoAndWhen, format: 'who_and_when', tasks: ['fa'] },
    { name: 'τ-bench (20 trajectories)', input: path.join(DATA, 'tau-bench', 'gpt-4o-airline.trial0.tasks0-19.json'), format: 'tau_bench', tasks: ['bon', 'uq'] },
  ];

  for (const c of cases) {
    it(`${c.name}: the union of 0/3, 1/3, 2/3 is the unsharded output; eval over the three files equals eval over the one`, async () => {
      const dir = path.join(tmp, c.format);
      const shardsDir = path.join(dir, 'shards');
      fs.mkdirSync(shardsDir, { recursive: true });
      const whole = path.join(dir, 'all.jsonl');
      const [code, said] = await score(config, { input: c.input, format: c.format, output: whole });
      expect(code, said).toBe(0);
      const shardFiles = [0, 1, 2].map((i) => path.join(shardsDir, `scores-${i}-of-3.jsonl`));
      for (const [i, file] of shardFiles.entries()) {
        const [code, said] = await score(config, { input: c.input, format: c.format, output: file, shard: { index: i, count: 3 } });
        expect(code, said).toBe(0);
        // Each shard holds exactly the ids that hash to it.
        for (const l of linesOf(file)) expect(shardOf(JSON.parse(l).id, 3)).toBe(i);
        expect(linesOf(file).length, `shard ${i}`).toBeGreaterThan(0);
      }
      const union = shardFiles.flatMap(linesOf);
      expect(union.length).toBe(linesOf(whole).length);
      expect([...union].sort()).toEqual([...linesOf(whole)].sort());

      for (const task of c.tasks) {
        const one = evaluate(readScores(whole), { task, resamples: 200 });
        const three = evaluate(readScores(shardFiles), { task, resamples: 200 });
        const reversed = evaluate(readScores([...shardFiles].reverse()), { task, resamples: 200 });
        const fromDir = evaluate(readScores(shardsDir), { task, resamples: 200 });
        expect(three.scores).toEqual(shardFiles);
        expect(fromDir.scores).toEqual(shardFiles);
        const body = (r: typeof one) => ({ ...r, scores: undefined });
        expect(body(three), task).toEqual(body(one));
        expect(body(reversed), task).toEqual(body(one));
        expect(body(fromDir), task).toEqual(body(one));
      }
      // The CLI: `--scores` takes several files; the printed table is the one of the single file.
      const evalCli = (scores: string[]) =>
        spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'eval', '--scores', ...scores, '--task', c.tasks[0], '--resamples', '100'], {
          cwd: PACKAGE_ROOT,
          encoding: 'utf8',
          timeout: 60_000,
        });
      const [viaOne, viaThree] = [evalCli([whole]), evalCli(shardFiles)];
      expect([viaOne.status, viaThree.status], viaThree.stderr).toEqual([0, 0]);
      expect(viaThree.stdout).toBe(viaOne.stdout);
    }, 600_000); // each record is scored twice, on a shared 2-core machine
  }
});
