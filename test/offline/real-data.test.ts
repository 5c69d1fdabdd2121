/**
 * The acceptance run of issue 4: all 50 Who&When cases, the 20 τ-bench trajectories and the 50
 * AgentProcessBench trajectories of ../shared/real/data go through the `pa-server score` path
 * (readTrajectoryFile → scoreFile → the trajectory pipeline → the engine) with the tiny Llama fp16
 * export as policy and a perturbed copy as reference (so log-ratios are not all zero), with the
 * Llama tokenizer shipped beside it (32000 tokens, the model's vocabulary).
 *
 * The expected number of steps is counted here from the raw records. The scorer's max_length is
 * 1024 and long_context is "truncate" so that most of these long logs are left-truncated: steps
 * that fall off the left edge must still be listed, flagged, and be null (never a number); a last
 * step longer than max_length is scored on its last 1022 tokens (after the BOS), flagged partial.
 * (Window mode on the same logs: long-context.test.ts.) Batches are one row (max_batch_tokens
 * 1024): the scoring head's vocabulary-wide intermediates grow with scored tokens × 32000.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { scoreFile } from '../../src/offline/score-file.js';
import { ScorerPool, type Scorer } from '../../src/pool.js';
import { readTrajectoryFile, type TrajectoryFormat } from '../../src/text/adapters.js';
import { perturbModel } from '../helpers/onnx-fixtures.js';
import { describeIf, needShared } from '../helpers/shared.js';
import { DATA, DIRS, readJson } from '../text/real-files.js';

const MAX_LENGTH = 1024;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'real-data-'));
let pool: ScorerPool;
let scorer: Scorer;

const HAVE_SHARED = needShared(import.meta.url, [DIRS.llama, path.join(DATA, 'who-and-when'), path.join(DATA, 'tau-bench'), path.join(DATA, 'agentprocessbench')]);

beforeAll(async () => {
  if (!HAVE_SHARED) return;
  const reference = path.join(tmp, 'llama-perturbed');
  perturbModel(DIRS.llama, reference, { seed: 7 });
  const config = validateConfig({
    ...defaultConfig(),
    threads: 1,
    log_level: 'silent',
    max_batch_tokens: MAX_LENGTH,
    scorers: [{ name: 'default', policy: DIRS.llama, reference, max_length: MAX_LENGTH }],
  });
  pool = new ScorerPool(config);
  await pool.load();
  scorer = pool.get();
});
afterAll(async () => {
  await pool?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function readLines(file: string): any[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

async function scoreAll(input: string, format: TrajectoryFormat) {
  const trajectories = readTrajectoryFile(input, format);
  const output = path.join(tmp, `${format}.jsonl`);
  const summary = await scoreFile(scorer, trajectories, { format, output, concurrency: 4, request: { long_context: 'truncate' } });
  return { trajectories, summary, lines: readLines(output) };
}

/** Every line scored, truncation as design §2 says, and the step count read from the raw data. */
function checkLines(lines: any[], expectedSteps: number[]) {
  expect(lines.map((l) => l.error)).toEqual(lines.map(() => undefined));
  lines.forEach((line, k) => {
    expect(line.steps).toHaveLength(expectedSteps[k]);
    expect(line.num_tokens).toBeLessThanOrEqual(MAX_LENGTH);
    line.steps.forEach((s: any, i: number) => {
      if (s.truncated && !s.partial) expect([s.advantage, s.log_ratio, s.num_tokens, s.min_context]).toEqual([null, null, 0, null]);
      else expect(Number.isFinite(s.advantage)).toBe(true);
      // A partial last step kept its last max_length − 2 tokens (after the BOS and one token of context).
      if (s.partial && i === line.steps.length - 1) expect(s.num_tokens).toBe(MAX_LENGTH - 2);
      if (s.partial) expect(s.num_tokens).toBeGreaterThan(0);
    });
    // No aggregate over zero tokens is a number: with no scored step, every aggregate is null.
    const scored = line.steps.filter((s: any) => s.advantage !== null);
    for (const v of Object.values(line.aggregates)) expect(scored.length === 0 ? v === null : Number.isFinite(v)).toBe(true);
    if (scored.length > 0) expect(line.aggregates.sum).toBeCloseTo(scored.reduce((a: number, s: any) => a + s.advantage, 0), 9);
    // Left truncation keeps the most recent tokens: once a step survives, every later one does
    // (a last step longer than max_length leaves none).
    const firstKept = line.steps.findIndex((s: any) => !s.truncated || s.partial);
    if (firstKept >= 0) expect(line.steps.slice(firstKept + 1).every((s: any) => !s.truncated)).toBe(true);
    if (line.truncated_tokens === 0) expect(line.steps.every((s: any) => !s.truncated)).toBe(true);
  });
  // Some logs are long enough to be truncated; the scored steps see different models.
  expect(lines.some((l) => l.truncated_tokens > 0)).toBe(true);
  expect(lines.some((l) => l.steps.some((s: any) => !s.truncated && s.advantage !== 0))).toBe(true);
}

describeIf(HAVE_SHARED)('pa-server score on the real data sets with the tiny Llama', () => {
  // The JS tokenizer takes tens of seconds on the 50 long logs (the Llama tokenizer has no pre-tokenizer: each message is one BPE word).
  it('all 50 Who&When cases: every entry with content is a step, but a Hand-Crafted log\'s opening human question', { timeout: 600_000 }, async () => {
    const { summary, trajectories, lines } = await scoreAll(path.join(DATA, 'who-and-when'), 'who_and_when');
    expect(summary).toMatchObject({ total: 50, scored: 50, failed: 0 });
    const expected = trajectories.map(({ id }) => {
      const raw = readJson(path.join(DATA, 'who-and-when', `${id}.json`));
      // The paper's rule (design §2): every entry with non-empty content, but a Hand-Crafted log's opening "human".
      return raw.history.filter((h: any, k: number) => h.content !== '' && !(k === 0 && h.role === 'human')).length;
    });
    checkLines(lines, expected);
    // The long last messages (Hand-Crafted 1: 2,164 tokens) are scored partly instead of leaving the whole case unscored.
    const case1 = lines.find((l) => l.id === 'Hand-Crafted/1');
    expect(case1.steps.at(-1)).toMatchObject({ partial: true, num_tokens: MAX_LENGTH - 2, context_truncated: true });
    expect(lines.filter((l) => l.steps.some((s: any) => s.partial)).length).toBeGreaterThanOrEqual(5);
    // Who spoke each step, as the data names it.
    for (const line of lines.slice(0, 35)) expect(line.steps.every((s: any) => typeof s.name === 'string')).toBe(true);
    expect(lines.every((l) => l.labels.success === false && typeof l.labels.mistake_step === 'number')).toBe(true);
  });

  it('all 20 τ-bench trajectories: every assistant message (tool calls included) is a step', { timeout: 600_000 }, async () => {
    const file = path.join(DATA, 'tau-bench', 'gpt-4o-airline.trial0.tasks0-19.json');
    const { summary, lines } = await scoreAll(file, 'tau_bench');
    expect(summary).toMatchObject({ total: 20, scored: 20, failed: 0 });
    const raw = readJson(file);
    checkLines(
      lines,
      raw.map((r: any) => r.traj.filter((m: any) => m.role === 'assistant').length),
    );
    expect(lines.map((l) => l.labels.success)).toEqual(raw.map((r: any) => r.reward === 1));
  });

  it('all 50 AgentProcessBench trajectories: the labelled assistant steps', { timeout: 600_000 }, async () => {
    const file = path.join(DATA, 'agentprocessbench', 'hotpotqa.first50.jsonl');
    const { summary, lines } = await scoreAll(file, 'agentprocessbench');
    expect(summary).toMatchObject({ total: 50, scored: 50, failed: 0 });
    const raw = readLines(file);
    checkLines(
      lines,
      raw.map((r) => Object.keys(r.step_labels).length),
    );
    lines.forEach((line, k) => expect(line.steps.map((s: any) => s.index)).toEqual(Object.keys(raw[k].step_labels).map(Number)));
  });
});
