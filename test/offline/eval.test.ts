/**
 * `pa-server eval` on a hand-made scores file. Every expected number is worked out by hand in the
 * comments (selections, Mann–Whitney pair counts, Spearman on average ranks, argmins).
 *
 *   group A: a1 fail, a2 success, a3 fail      pa_sum 1, 3, 2    pa_mean 0, 1, 0
 *   group B: b1 success, b2 fail               pa_sum 0, 5       pa_mean 1, 0
 *   group C: c1 fail, c2 fail                  pa_sum 1, 1       pa_mean 0, 0
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluate, readScores, runEvalCommand, type BonReport, type FaReport, type UqReport } from '../../src/offline/eval.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Per-step baselines: the same series for all four, enough to find the least confident step. */
const conf = (v: number) => ({ mean_logprob: v, neg_entropy: v, self_certainty: v, deepconf: v });

function step(index: number, advantage: number, extra: { name?: string; truncated?: boolean; confidence?: number } = {}) {
  return {
    index,
    role: 'assistant',
    ...(extra.name ? { name: extra.name } : {}),
    advantage,
    truncated: extra.truncated ?? false,
    ...(extra.confidence !== undefined ? { baselines: conf(extra.confidence) } : {}),
  };
}

function line(id: string, group: string, labels: object, sum: number, meanScore: number, confidence: number, steps: object[]) {
  const aggregates = { mean: meanScore, sum, min: 0, max: 0, last: 0, bottom10: 0 };
  const baselines = { ...conf(confidence), deepconf_tail: 0, deepconf_bottom10: 0 };
  return { id, group, task: group.toLowerCase(), format: 'messages', labels, beta: 1, aggregates, baselines, steps };
}

const LINES = [
  // Replaced by the later a1 line: only the last line of an id counts.
  line('a1', 'A', { success: true }, 100, 100, 100, [step(1, 9)]),
  line('a1', 'A', { success: false, mistake_step: 3, mistake_agent: 'Coder' }, 1, 0, -1, [
    step(1, 0.5, { name: 'Planner', confidence: 3 }),
    step(3, -1, { name: 'Coder', confidence: 1 }),
    step(5, 0.2, { name: 'Planner', confidence: 2 }),
  ]),
  line('a2', 'A', { success: true }, 3, 1, -0.1, [step(1, 1, { confidence: 1 })]),
  line('a3', 'A', { success: false, mistake_step: 1, mistake_agent: 'Planner' }, 2, 0, -1, [
    step(1, -0.2, { name: 'Planner', confidence: 1 }),
    step(3, 0.1, { name: 'Coder', confidence: 2 }),
    step(5, -0.5, { name: 'Coder', confidence: 3 }),
    step(7, 0.3, { name: 'Planner', confidence: 4 }),
  ]),
  line('b1', 'B', { success: true }, 0, 1, -0.1, [step(1, 0, { confidence: 1 })]),
  line('b2', 'B', { success: false, mistake_step: 5 }, 5, 0, -1, [
    step(1, 0, { truncated: true, confidence: 9 }),
    step(3, -0.3, { confidence: 5 }),
    step(5, -0.1, { confidence: 4 }),
  ]),
  line('c1', 'C', { success: false, mistake_step: null }, 1, 0, -1, [step(1, 0, { confidence: 1 })]),
  // mistake_step 2 is not one of its steps: left out of fa and counted.
  line('c2', 'C', { success: false, mistake_step: 2 }, 1, 0, -1, [step(1, 0, { confidence: 1 }), step(3, 0, { confidence: 1 })]),
  { id: 'z', group: 'C', format: 'messages', labels: { success: false }, error: { code: 'no_steps', message: '...' } },
];

const FILE = path.join(tmp, 'scores.jsonl');
fs.writeFileSync(FILE, LINES.map((l) => JSON.stringify(l)).join('\n') + '\n');

describe('readScores', () => {
  it('keeps the last line per id and leaves error lines out', () => {
    const file = readScores(FILE);
    expect(file.lines.map((l) => l.id)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'c1', 'c2']);
    expect(file.lines[0].aggregates!.sum).toBe(1);
    expect([file.errors, file.replaced]).toEqual([1, 1]);
  });

  it('refuses a file that is not a score output', () => {
    const bad = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(bad, '{"id": "x", "messages": []}\n');
    expect(() => readScores(bad)).toThrow(/no "steps"\/"aggregates"/);
    fs.writeFileSync(bad, '{"id": "x", "steps": [], "aggregates": {}}\n{oops\n');
    expect(() => readScores(bad)).toThrow(/bad\.jsonl:2: not valid JSON/);
  });
});

describe('bon', () => {
  const r = evaluate(readScores(FILE), { task: 'bon', resamples: 200 }) as BonReport;

  it('selection success per method, mean-of-N and pass@N', () => {
    expect([r.groups, r.trajectories, r.group_by]).toEqual([3, 7, 'group']);
    expect(r.group_size).toEqual({ min: 2, max: 3, mean: 7 / 3 });
    // pa_sum picks a2 (success), b2 (fail), c1 (tie → first; fail).
    expect(r.methods.pa_sum.estimate).toBeCloseTo(1 / 3, 12);
    // pa_mean picks a2 and b1 (successes), c1.
    expect(r.methods.pa_mean.estimate).toBeCloseTo(2 / 3, 12);
    // mean_logprob (−0.1 on successes, −1 on failures) picks every success there is.
    expect(r.methods.mean_logprob.estimate).toBeCloseTo(2 / 3, 12);
    // Mean-of-N: (1/3 + 1/2 + 0) / 3; pass@N: A and B have a success, C does not.
    expect(r.mean_of_n.estimate).toBeCloseTo(5 / 18, 12);
    expect(r.pass_at_n.estimate).toBeCloseTo(2 / 3, 12);
    // Resampling 3 groups: each statistic is a mean of per-group values, so the interval stays in [min, max] of those.
    for (const i of [r.methods.pa_sum, r.pass_at_n]) {
      expect(i.low).toBeLessThanOrEqual(i.estimate);
      expect(i.high).toBeGreaterThanOrEqual(i.estimate);
      expect(i.low).toBeGreaterThanOrEqual(0);
      expect(i.high).toBeLessThanOrEqual(1);
    }
    expect(Object.keys(r.methods)).toEqual([
      'pa_mean', 'pa_sum', 'pa_min', 'pa_max', 'pa_last', 'pa_bottom10',
      'mean_logprob', 'neg_entropy', 'self_certainty', 'deepconf', 'deepconf_tail', 'deepconf_bottom10',
    ]);
  });

  it('--group-by another field; a line without the field is an error', () => {
    const byTask = evaluate(readScores(FILE), { task: 'bon', groupBy: 'task', resamples: 10 }) as BonReport;
    expect(byTask.group_by).toBe('task');
    expect(byTask.methods.pa_sum.estimate).toBeCloseTo(1 / 3, 12);
    expect(() => evaluate(readScores(FILE), { task: 'bon', groupBy: 'map_id' })).toThrow(/"a1" has no "map_id" field/);
  });
});

describe('uq', () => {
  const r = evaluate(readScores(FILE), { task: 'uq', resamples: 200 }) as UqReport;

  it('AUROC and Spearman of each score against success', () => {
    expect([r.trajectories, r.successes, r.failures]).toEqual([7, 2, 5]);
    // pa_sum: positives a2 = 3, b1 = 0; negatives 1, 2, 5, 1, 1. Pairs won: a2 beats four, b1 none → 4 / 10.
    expect(r.methods.pa_sum.auroc.estimate).toBeCloseTo(0.4, 12);
    // Spearman on average ranks: x ranks a1 3, a2 6, a3 5, b1 1, b2 7, c1 3, c2 3; y ranks 3 (fail) and 6.5
    // (success); both have mean 4; Σdxdy = −3.5, Σdx² = 26, Σdy² = 17.5.
    expect(r.methods.pa_sum.spearman.estimate).toBeCloseTo(-3.5 / Math.sqrt(26 * 17.5), 12);
    // pa_mean: successes 1, 1 against failures 0 ×5 → every pair won.
    expect(r.methods.pa_mean.auroc.estimate).toBe(1);
    expect(r.methods.mean_logprob.auroc.estimate).toBe(1);
    // pa_min is 0 everywhere: all pairs tie → 1/2.
    expect(r.methods.pa_min.auroc.estimate).toBe(0.5);
  });
});

describe('fa', () => {
  const r = evaluate(readScores(FILE), { task: 'fa', resamples: 200 }) as FaReport;

  it('step accuracy, MAE in steps and agent accuracy over failed trajectories with a labelled step', () => {
    // a1, a3, b2 count; c1 has no label; c2's label is not a step.
    expect(r.trajectories).toBe(3);
    expect(r.excluded).toEqual({ label_not_a_step: 1 });
    expect([r.scored_labels, r.unscored_labels, r.no_scored_steps]).toEqual([3, 0, 0]);
    expect(r.with_agent_label).toBe(2);
    // min_cumulative: a1 cums .5, −.5, −.3 → step 3 ✓; a3 cums −.2, −.1, −.6, −.3 → step 5 ✗ (2 off);
    // b2 (first step truncated, not blamed) cums −.3, −.4 → step 5 ✓.
    const mc = r.methods.pa_min_cumulative;
    expect(mc.step_accuracy.estimate).toBeCloseTo(2 / 3, 12);
    expect(mc.mae.estimate).toBeCloseTo(2 / 3, 12);
    // Agents: a1 blames Coder (labelled Coder) ✓, a3 blames Coder (labelled Planner) ✗.
    expect(mc.agent_accuracy!.estimate).toBeCloseTo(1 / 2, 12);
    // sharpest_drop: a1 ✓, a3 → step 5 ✗ (2 off), b2 argmin(−.3, −.1) → step 3 ✗ (1 off).
    expect(r.methods.pa_sharpest_drop.step_accuracy.estimate).toBeCloseTo(1 / 3, 12);
    expect(r.methods.pa_sharpest_drop.mae.estimate).toBeCloseTo(1, 12);
    // sharpest_abs_drop: a1 diffs .5, −1.5, 1.2 ✓; a3 diffs −.2, .3, −.6, .8 ✗ (2); b2 diffs −.3, .2 ✗ (1).
    expect(r.methods.pa_sharpest_abs_drop.step_accuracy.estimate).toBeCloseTo(1 / 3, 12);
    expect(r.methods.pa_sharpest_abs_drop.mae.estimate).toBeCloseTo(1, 12);
    // Least confident step: a1 → step 3 ✓, a3 → step 1 ✓, b2 (truncated 9 skipped) 5 vs 4 → step 5 ✓.
    expect(r.methods.deepconf.step_accuracy.estimate).toBe(1);
    expect(r.methods.deepconf.mae.estimate).toBe(0);
    // random, in expectation: accuracy (1/3 + 1/4 + 1/2)/3; MAE (2/3 + 3/2 + 1/2)/3; agents (1/3 + 2/4)/2.
    expect(r.methods.random.step_accuracy.estimate).toBeCloseTo(13 / 36, 12);
    expect(r.methods.random.mae.estimate).toBeCloseTo(8 / 9, 12);
    expect(r.methods.random.agent_accuracy!.estimate).toBeCloseTo(5 / 12, 12);
  });
});

/**
 * Unscored trajectories and steps (null scores, as `pa-server score` writes them when nothing of a
 * trajectory or a step was scored): eval treats them as missing, never as numbers.
 *
 *   group P: p1 success (unscored), p2 fail pa_sum 1, p3 success pa_sum 0.5
 *   group Q: q1 success (unscored), q2 fail (unscored)        → no pick: Q takes no part
 *   group R: r1 fail pa_sum 0.2, r2 success pa_sum 3
 */
describe('null scores are missing, not numbers', () => {
  const nulls = { mean: null, sum: null, min: null, max: null, last: null, bottom10: null };
  const noBaselines = { mean_logprob: null, neg_entropy: null, self_certainty: null, deepconf: null, deepconf_tail: null, deepconf_bottom10: null };
  const unscoredStep = (index: number) => ({ index, role: 'assistant', advantage: null, truncated: true, baselines: null });
  const scored = (id: string, group: string, success: boolean, sum: number) => ({
    ...line(id, group, { success }, sum, sum, sum, [step(1, sum, { confidence: sum })]),
  });
  const unscored = (id: string, group: string, success: boolean) => ({
    id,
    group,
    format: 'messages',
    labels: { success },
    beta: 1,
    aggregates: nulls,
    baselines: noBaselines,
    steps: [unscoredStep(1)],
  });
  const BON = path.join(tmp, 'nulls-bon.jsonl');
  fs.writeFileSync(
    BON,
    [
      unscored('p1', 'P', true),
      scored('p2', 'P', false, 1),
      scored('p3', 'P', true, 0.5),
      unscored('q1', 'Q', true),
      unscored('q2', 'Q', false),
      scored('r1', 'R', false, 0.2),
      scored('r2', 'R', true, 3),
    ]
      .map((l) => JSON.stringify(l))
      .join('\n') + '\n',
  );

  it('bon never picks an unscored trajectory; a group with none scored takes no part; counts per method', () => {
    const r = evaluate(readScores(BON), { task: 'bon', resamples: 100 }) as BonReport;
    // P picks p2 (fail), R picks r2 (success), Q has no pick: 1/2 (ranking nulls as −∞ would pick q1 and say 2/3).
    expect(r.methods.pa_sum.estimate).toBeCloseTo(1 / 2, 12);
    expect(r.methods.mean_logprob.estimate).toBeCloseTo(1 / 2, 12);
    expect(r.unscored.pa_sum).toBe(3);
    expect(r.unscored.deepconf_tail).toBe(3);
    // Mean-of-N and pass@N are about the trajectories, not a method: all 7 count.
    expect(r.mean_of_n.estimate).toBeCloseTo((2 / 3 + 1 / 2 + 1 / 2) / 3, 12);
  });

  it('uq leaves unscored trajectories out of AUROC and counts them', () => {
    const r = evaluate(readScores(BON), { task: 'uq', resamples: 100 }) as UqReport;
    // Scored: successes 0.5, 3 against failures 1, 0.2 → pairs won: 0.5>0.2, 3>1, 3>0.2 → 3/4.
    expect(r.methods.pa_sum.auroc.estimate).toBeCloseTo(3 / 4, 12);
    expect(r.unscored.pa_sum).toBe(3);
    const out = new PassThrough();
    let printed = '';
    out.on('data', (d) => (printed += d));
    expect(runEvalCommand({ scores: BON, task: 'uq', resamples: 20 }, out, new PassThrough())).toBe(0);
    expect(printed).toMatch(/unscored/);
    expect(printed).toMatch(/pa_sum\s+0\.750 \[[^\n]*\s3$/m);
  });

  /**
   *   f1: label step 3 unscored (steps 1, 3 null; 5 −1)         → blamed 5: a miss, and not over scored labels
   *   f2: label 1, advantages −2, 1 (cums −2, −1)              → 1 ✓
   *   f3: label 1, no step scored                               → nothing blamed: a miss over all failures
   *   f4: label 3, advantages .5, −1, −.2 (cums .5, −.5, −.7)   → 5 ✗ (one step off)
   */
  const FA = path.join(tmp, 'nulls-fa.jsonl');
  const faLine = (id: string, mistake: number, steps: object[]) => ({
    id,
    group: id,
    format: 'who_and_when',
    labels: { success: false, mistake_step: mistake },
    beta: 1,
    aggregates: nulls,
    steps,
  });
  fs.writeFileSync(
    FA,
    [
      faLine('f1', 3, [unscoredStep(1), unscoredStep(3), step(5, -1)]),
      faLine('f2', 1, [step(1, -2), step(3, 1)]),
      faLine('f3', 1, [unscoredStep(1), unscoredStep(3)]),
      faLine('f4', 3, [step(1, 0.5), step(3, -1), step(5, -0.2)]),
    ]
      .map((l) => JSON.stringify(l))
      .join('\n') + '\n',
  );

  it('fa counts unscored labelled steps and gives accuracy over scored labels and over all failures', () => {
    const r = evaluate(readScores(FA), { task: 'fa', resamples: 100 }) as FaReport;
    expect(r.trajectories).toBe(4);
    expect([r.scored_labels, r.unscored_labels, r.no_scored_steps]).toEqual([2, 2, 1]);
    const mc = r.methods.pa_min_cumulative;
    expect(mc.step_accuracy.estimate).toBeCloseTo(1 / 2, 12);
    expect(mc.step_accuracy_all.estimate).toBeCloseTo(1 / 4, 12);
    expect(mc.mae.estimate).toBeCloseTo(1 / 2, 12);
    // random: f2 1/2, f4 1/3 over scored labels; over all, f1 and f3 add two zeros.
    expect(r.methods.random.step_accuracy.estimate).toBeCloseTo(5 / 12, 12);
    expect(r.methods.random.step_accuracy_all.estimate).toBeCloseTo(5 / 24, 12);
    const out = new PassThrough();
    let printed = '';
    out.on('data', (d) => (printed += d));
    expect(runEvalCommand({ scores: FA, task: 'fa', resamples: 20 }, out, new PassThrough())).toBe(0);
    expect(printed).toMatch(/labelled step scored in 2, not scored in 2 \(1 with no scored step at all\)/);
    expect(printed).toMatch(/pa_min_cumulative\s+0\.500 \[[^\]]*\]\s+0\.250 \[/);
  });
});

describe('runEvalCommand', () => {
  it('prints a table and writes the JSON report', () => {
    const out = new PassThrough();
    const err = new PassThrough();
    let printed = '';
    out.on('data', (d) => (printed += d));
    const output = path.join(tmp, 'fa.json');
    expect(runEvalCommand({ scores: FILE, task: 'fa', output, resamples: 50 }, out, err)).toBe(0);
    expect(printed).toMatch(/failure attribution: 3 failed trajectories/);
    expect(printed).toMatch(/pa_min_cumulative\s+0\.667 \[/);
    expect(printed).toMatch(/1 trajectories with an error line left out/);
    const json = JSON.parse(fs.readFileSync(output, 'utf8'));
    expect(json.task).toBe('fa');
    expect(json.methods.pa_min_cumulative.step_accuracy.estimate).toBeCloseTo(2 / 3, 12);
  });

  it('exits 1 with a message on a bad task or a file without the labels the task needs', () => {
    const err = new PassThrough();
    let said = '';
    err.on('data', (d) => (said += d));
    expect(runEvalCommand({ scores: FILE, task: 'rank' }, new PassThrough(), err)).toBe(1);
    const noLabels = path.join(tmp, 'nolabels.jsonl');
    fs.writeFileSync(noLabels, JSON.stringify({ id: 'x', steps: [], aggregates: { sum: 0 } }) + '\n');
    expect(runEvalCommand({ scores: noLabels, task: 'uq' }, new PassThrough(), err)).toBe(1);
    expect(runEvalCommand({ scores: path.join(tmp, 'missing.jsonl'), task: 'bon' }, new PassThrough(), err)).toBe(1);
    expect(said).toMatch(/--task must be one of bon, uq, fa/);
    expect(said).toMatch(/uq needs both successes and failures/);
    expect(said).toMatch(/missing\.jsonl: cannot read/);
  });
});
