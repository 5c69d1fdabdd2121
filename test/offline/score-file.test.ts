/**
 * `pa-server score` offline on the embedded default pair: lines in input order with the adapter's
 * labels, the same numbers as scoreTrajectories on the same messages, refusals written as error
 * lines, and resume (ids already scored are skipped, a partial last line is cut, refused ids are
 * retried). One run goes through the real CLI entry to check the flag wiring.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, PACKAGE_ROOT, validateConfig } from '../../src/config.js';
import { completedIds, runScoreCommand, scoreFile } from '../../src/offline/score-file.js';
import { scoreTrajectories } from '../../src/pipeline/trajectory.js';
import { ScorerPool, type Scorer } from '../../src/pool.js';
import { readTrajectoryFile } from '../../src/text/adapters.js';
import { gridworldEpisodes, GRIDWORLD_POLICY, GRIDWORLD_REFERENCE } from '../helpers/default-pair-app.js';

const POLICY = GRIDWORLD_POLICY;
const REFERENCE = GRIDWORLD_REFERENCE;
const EPISODES = gridworldEpisodes(6);
/** No assistant message: the pipeline refuses it (422 no_steps). */
const NO_STEPS = { id: 'no-steps', task_id: 'x', messages: [{ role: 'user', content: 'map :' }], success: false };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'score-file-'));
const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent', scorers: [{ name: 'default', policy: POLICY, reference: REFERENCE }] });
let pool: ScorerPool;
let scorer: Scorer;

beforeAll(async () => {
  pool = new ScorerPool(config);
  await pool.load();
  scorer = pool.get();
});
afterAll(async () => {
  await pool?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function writeJsonl(name: string, records: unknown[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/**
 * Equal structure, numbers within 1e-6: rows batched with different neighbours (other padding)
 * may differ in the last float bits.
 */
function expectClose(actual: unknown, expected: unknown, at = '$'): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    if (Math.abs(actual - expected) > 1e-6) throw new Error(`${at}: ${actual} != ${expected}`);
    return;
  }
  if (expected && typeof expected === 'object') {
    expect(actual && typeof actual === 'object', at).toBe(true);
    expect(Object.keys(actual as object).sort(), at).toEqual(Object.keys(expected).sort());
    for (const [k, v] of Object.entries(expected)) expectClose((actual as any)[k], v, `${at}.${k}`);
    return;
  }
  expect(actual, at).toEqual(expected);
}

function readLines(file: string): any[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

const records = [...EPISODES.slice(0, 3), NO_STEPS, ...EPISODES.slice(3)];

describe('scoreFile', () => {
  it('writes one line per trajectory in input order, equal to scoreTrajectories on the same messages', async () => {
    const input = writeJsonl('six.jsonl', records);
    const output = path.join(tmp, 'six.out.jsonl');
    const summary = await scoreFile(scorer, readTrajectoryFile(input, 'messages'), { format: 'messages', output, concurrency: 4 });
    const { cost, ...counts } = summary;
    expect(counts).toEqual({ total: 7, skipped: 0, scored: 6, failed: 1, remaining: 0 });
    const lines = readLines(output);
    expect(lines.map((l) => l.id)).toEqual(records.map((r) => r.id));
    const direct = await scoreTrajectories(
      scorer,
      EPISODES.map((e) => ({ messages: e.messages })),
    );
    // The run's cost: these episodes fit, so each is one row of its own tokens.
    const tokens = direct.reduce((n, r) => n + r.num_tokens, 0);
    expect(cost).toEqual({ sequence_tokens: tokens, forward_tokens: tokens, windows: 6 });
    const scored = lines.filter((l) => !l.error);
    scored.forEach((line, k) => {
      const e = EPISODES[k];
      expect(line).toMatchObject({ group: e.task_id, format: 'messages', labels: { success: e.success, mistake_step: e.first_bad_message } });
      expect(line.steps.map((s: any) => s.index)).toEqual(e.messages.flatMap((m: any, i: number) => (m.role === 'assistant' ? [i] : [])));
      expectClose(line.steps, direct[k].steps);
      expectClose(line.aggregates, direct[k].aggregates);
      expect(line.beta).toBe(0.05);
    });
    const refused = lines.find((l) => l.id === 'no-steps');
    expect(refused.error.code).toBe('no_steps');
    expect(refused.labels).toEqual({ success: false });
  });

  it('resumes: skips scored ids, cuts a partial last line, retries refused ids; the result equals one full run', async () => {
    const full = path.join(tmp, 'six.out.jsonl'); // from the test above
    const input = writeJsonl('resume.jsonl', records);
    const output = path.join(tmp, 'resume.out.jsonl');
    // A first run killed after two lines, in the middle of writing the third.
    const firstTwo = fs.readFileSync(full, 'utf8').split('\n').slice(0, 2).join('\n') + '\n';
    fs.writeFileSync(output, firstTwo + '{"id":"map000-ep2","gro');
    expect([...completedIds(output)]).toEqual([EPISODES[0].id, EPISODES[1].id]);
    expect(fs.readFileSync(output, 'utf8')).toBe(firstTwo);

    const summary = await scoreFile(scorer, readTrajectoryFile(input, 'messages'), { format: 'messages', output, concurrency: 3 });
    expect({ ...summary, cost: undefined }).toEqual({ total: 7, skipped: 2, scored: 4, failed: 1, remaining: 0, cost: undefined });
    expectClose(readLines(output), readLines(full));

    // Again: every scored id is done; only the refused one is tried (and refused) again.
    const again = await scoreFile(scorer, readTrajectoryFile(input, 'messages'), { format: 'messages', output });
    expect(again).toEqual({ total: 7, skipped: 6, scored: 0, failed: 1, remaining: 0, cost: { sequence_tokens: 0, forward_tokens: 0, windows: 0 } });
    const lines = readLines(output);
    expect(lines).toHaveLength(8);
    expect(lines[7].id).toBe('no-steps');
  });

  it('a stop request lets the trajectories in flight finish and leaves the rest for a rerun', async () => {
    const input = writeJsonl('stop.jsonl', EPISODES);
    const output = path.join(tmp, 'stop.out.jsonl');
    const stop = { requested: false };
    const progress = { start() {}, update: (done: number) => void (done >= 2 && (stop.requested = true)), stop() {} };
    const summary = await scoreFile(scorer, readTrajectoryFile(input, 'messages'), { format: 'messages', output, concurrency: 1, progress, stop });
    expect({ ...summary, cost: undefined }).toEqual({ total: 6, skipped: 0, scored: 2, failed: 0, remaining: 4, cost: undefined });
    expect(readLines(output).map((l) => l.id)).toEqual(EPISODES.slice(0, 2).map((e) => e.id));
  });

  it('refuses to append to an output with a broken line in the middle', () => {
    const output = path.join(tmp, 'broken.jsonl');
    fs.writeFileSync(output, 'not json\n{"id":"a"}\n');
    expect(() => completedIds(output)).toThrow(/broken\.jsonl:1: not a JSON line/);
  });
});

describe('runScoreCommand', () => {
  it('a bad input file exits 1 with the file and line, before loading any model', async () => {
    const input = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(input, `${JSON.stringify(EPISODES[0])}\n{"messages": "nope"}\n`);
    const stderr = new PassThrough();
    let said = '';
    stderr.on('data', (d) => (said += d));
    // A config whose model does not exist: reaching the load would fail differently.
    const missing = { ...config, scorers: [{ name: 'default', policy: path.join(tmp, 'none'), reference: path.join(tmp, 'none') }] };
    const code = await runScoreCommand(missing, { input, format: 'messages', output: path.join(tmp, 'bad.out.jsonl'), progress: 'none' }, stderr as any);
    expect(code).toBe(1);
    expect(said).toMatch(/bad\.jsonl:2: messages data: messages/);
    expect(fs.existsSync(path.join(tmp, 'bad.out.jsonl'))).toBe(false);
  });

  it('the CLI: pa-server score with serve-style model flags, progress lines on a pipe, resume on rerun', async () => {
    const input = writeJsonl('cli.jsonl', EPISODES.slice(0, 2));
    const output = path.join(tmp, 'cli.out.jsonl');
    const run = () =>
      promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', 'src/cli.ts', 'score', '--input', input, '--format', 'messages', '--output', output, '--policy', POLICY, '--reference', REFERENCE, '--threads', '1', '--baselines'],
        { cwd: PACKAGE_ROOT },
      );
    const first = await run();
    expect(first.stderr).toMatch(/pa-server score: 2\/2 \(100\.0%\)/);
    expect(first.stderr).toMatch(/2 scored, 0 refused/);
    const lines = readLines(output);
    expect(lines.map((l) => l.id)).toEqual([EPISODES[0].id, EPISODES[1].id]);
    expect(Object.keys(lines[0].baselines).sort()).toEqual(['deepconf', 'deepconf_bottom10', 'deepconf_tail', 'mean_logprob', 'neg_entropy', 'self_certainty']);
    const second = await run();
    expect(second.stderr).toMatch(/already in .*nothing to do/);
    expect(readLines(output)).toHaveLength(2);
    // A missing input: exit 1, one clear line.
    await expect(
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'score', '--input', path.join(tmp, 'nope.jsonl'), '--format', 'messages', '--output', output], {
        cwd: PACKAGE_ROOT,
      }),
    ).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/nope\.jsonl: no such file or directory/) });
  });
});
