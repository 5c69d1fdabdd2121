/**
 * `exclude_agents`: the named speakers' messages are observations, not steps (issue 16).
 *  - HTTP, on the bundled Who&When case (Algorithm-Generated, with Computer_terminal turns) and the
 *    embedded pair: with ["Computer_terminal"] the steps are the others, with the same advantages
 *    as without it (the token sequence is the same; only which spans are scored changes), and
 *    /v1/attribute never blames Computer_terminal; without it the default (every named agent) holds.
 *  - `eval --task fa --exclude-agents`: rows with and without, on a hand-made file whose
 *    attributions are worked out in the comments.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/config.js';
import { evaluate, readScores, type FaReport } from '../../src/offline/eval.js';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';

const CASE = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'src/ui/examples/who-and-when-algorithm-generated-34.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-exclude-'));
let service: DefaultPairApp;
beforeAll(async () => {
  // The second call would read the first one's context from the prefix cache, which is exact to
  // float32 rounding, not to the bit; this test compares the two token sequences' numbers at 1e-6.
  service = await defaultPairApp({ prefix_cache_mb: 0 });
});
afterAll(async () => {
  await service?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const post = async (url: string, payload: unknown) => {
  const res = await service.app.inject({ method: 'POST', url, payload: payload as object });
  return { status: res.statusCode, body: res.json() };
};

describe('exclude_agents over HTTP (Who&When)', () => {
  it('Computer_terminal turns become observations; the other steps keep their numbers', async () => {
    const speakers = (CASE.history as { name: string }[]).map((h) => h.name);
    expect(speakers).toContain('Computer_terminal');
    const all = await post('/v1/trajectories/score', { format: 'who_and_when', data: CASE });
    const some = await post('/v1/trajectories/score', { format: 'who_and_when', data: CASE, exclude_agents: ['Computer_terminal'] });
    expect([all.status, some.status]).toEqual([200, 200]);
    // The default is unchanged: every named agent's turn is a step, Computer_terminal included.
    expect(all.body.steps.map((s: any) => s.name)).toEqual(speakers);
    expect(some.body.steps.map((s: any) => s.name)).toEqual(speakers.filter((n) => n !== 'Computer_terminal'));
    expect(some.body.num_tokens).toBe(all.body.num_tokens);
    const byIndex = new Map(all.body.steps.map((s: any) => [s.index, s]));
    for (const s of some.body.steps) {
      const same = byIndex.get(s.index) as any;
      expect(Math.abs(s.advantage - same.advantage)).toBeLessThan(1e-6);
      expect(s.num_tokens).toBe(same.num_tokens);
    }
    expect(some.body.usage.scored_tokens).toBe(some.body.steps.reduce((n: number, s: any) => n + s.num_tokens, 0));

    const blamed = await post('/v1/attribute', { format: 'who_and_when', data: CASE, exclude_agents: ['Computer_terminal'] });
    expect(blamed.status).toBe(200);
    expect(blamed.body.agent).not.toBe('Computer_terminal');
    expect(blamed.body.steps.every((s: any) => s.name !== 'Computer_terminal')).toBe(true);
  });

  it('plain messages: a role can be excluded too, and a bad value is a 400', async () => {
    const messages = [
      { role: 'user', content: 'map' },
      { role: 'assistant', content: 'up' },
      { role: 'assistant', name: 'Computer_terminal', content: 'wall' },
      { role: 'assistant', content: 'down' },
    ];
    const r = await post('/v1/trajectories/score', { messages, exclude_agents: ['Computer_terminal'] });
    expect(r.body.steps.map((s: any) => s.index)).toEqual([1, 3]);
    const bad = await post('/v1/trajectories/score', { messages, exclude_agents: 'Computer_terminal' });
    expect(bad.status).toBe(400);
  });
});

describe('eval --task fa --exclude-agents', () => {
  // Two failed Who&When-like runs, the mistake by Coder each time:
  //  f1: Planner 0.2, Computer_terminal -2, Coder -0.5 (label: Coder's step 3)
  //      cumulative 0.2, -1.8, -2.3 → min_cumulative blames position 2 (Coder) either way;
  //      sharpest_drop (lowest step) blames Computer_terminal (-2), excluding it: Coder (-0.5).
  //  f2: Coder -0.1, Computer_terminal -3, Planner 0.4 (label: Coder's step 1)
  //      min_cumulative: cumulative -0.1, -3.1, -2.7 → Computer_terminal; excluding it:
  //      Coder -0.1, Planner 0.3 → Coder.  sharpest_drop: Computer_terminal; excluding: Coder.
  const step = (index: number, name: string, advantage: number) => ({ index, role: 'assistant', name, advantage, truncated: false });
  const line = (id: string, mistake: number, steps: object[]) => ({
    id,
    group: id,
    format: 'who_and_when',
    labels: { success: false, mistake_step: mistake, mistake_agent: 'Coder' },
    beta: 1,
    aggregates: { mean: 0, sum: 0, min: 0, max: 0, last: 0, bottom10: 0 },
    steps,
  });
  const file = path.join(tmp, 'fa.jsonl');
  fs.writeFileSync(
    file,
    [
      line('f1', 3, [step(1, 'Planner', 0.2), step(2, 'Computer_terminal', -2), step(3, 'Coder', -0.5)]),
      line('f2', 1, [step(1, 'Coder', -0.1), step(2, 'Computer_terminal', -3), step(3, 'Planner', 0.4)]),
    ]
      .map((l) => JSON.stringify(l))
      .join('\n') + '\n',
  );

  it('reports step and agent accuracy with and without the excluded speakers', () => {
    const r = evaluate(readScores(file), { task: 'fa', excludeAgents: ['Computer_terminal'], resamples: 50 }) as FaReport;
    const est = (name: string) => [r.methods[name].step_accuracy.estimate, r.methods[name].agent_accuracy!.estimate];
    expect(est('pa_min_cumulative')).toEqual([0.5, 0.5]);
    expect(est('pa_min_cumulative excluding Computer_terminal')).toEqual([1, 1]);
    expect(est('pa_sharpest_drop')).toEqual([0, 0]);
    expect(est('pa_sharpest_drop excluding Computer_terminal')).toEqual([1, 1]);
    // random: 1/3 of the steps without; 1/2 with (two candidates left, one is the label).
    expect(r.methods.random.step_accuracy.estimate).toBeCloseTo(1 / 3, 12);
    expect(r.methods['random excluding Computer_terminal'].step_accuracy.estimate).toBeCloseTo(1 / 2, 12);
    // Without the option: the default rows only.
    const plain = evaluate(readScores(file), { task: 'fa', resamples: 50 }) as FaReport;
    expect(Object.keys(plain.methods).some((k) => k.includes('excluding'))).toBe(false);
    expect(plain.methods.pa_min_cumulative.step_accuracy.estimate).toBe(0.5);
  });
});
