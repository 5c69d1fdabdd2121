/**
 * /v1/trajectories/score, /v1/rank and /v1/attribute through app.inject() on the embedded
 * default pair. Each is checked against an independent path: the same steps scored one by one
 * through /v1/score with the growing context (token ids encoded here, message by message, with
 * the tokenizer alone), and argmin/cumulative computations done in the test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { ScorerPool } from '../../src/pool.js';
import { defaultPairApp, gridworldEpisodes, GRIDWORLD_POLICY, GRIDWORLD_REFERENCE, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { loadTokenizer, type TextTokenizer } from '../../src/text/tokenizer.js';

const POLICY = GRIDWORLD_POLICY;
const REFERENCE = GRIDWORLD_REFERENCE;
const EPISODES = gridworldEpisodes(40);

let app: App;
let tok: TextTokenizer;

let served: DefaultPairApp;

beforeAll(async () => {
  served = await defaultPairApp();
  ({ app } = served);
  tok = await loadTokenizer(POLICY);
});
afterAll(async () => served?.close());

async function post(url: string, payload: unknown) {
  const res = await app.inject({ method: 'POST', url, payload: payload as object });
  return { status: res.statusCode, body: res.json() };
}

/** The plain renderer of design §2, written out here: "[role]: content", "\n" before all but the first. */
function plainIds(messages: { role: string; content: string }[]): number[][] {
  return messages.map((m, i) => tok.encode(`${i > 0 ? '\n' : ''}[${m.role}]: ${m.content}`));
}

describe('POST /v1/trajectories/score', () => {
  it('equals each step scored alone through /v1/score with the growing context (1e-5)', async () => {
    for (const episode of EPISODES.slice(0, 4)) {
      const { status, body } = await post('/v1/trajectories/score', { messages: episode.messages });
      expect(status).toBe(200);
      const pieces = plainIds(episode.messages);
      const assistant = episode.messages.map((m: any, i: number) => (m.role === 'assistant' ? i : -1)).filter((i: number) => i >= 0);
      expect(body.steps.map((s: any) => s.index)).toEqual(assistant);
      let running = 0;
      for (const step of body.steps) {
        const prompt_ids = [tok.bosId!, ...pieces.slice(0, step.index).flat()];
        const alone = await post('/v1/score', { prompt_ids, step_ids: pieces[step.index] });
        expect(alone.status).toBe(200);
        expect(step.advantage).toBeCloseTo(alone.body.advantage, 5);
        expect(step.log_ratio).toBeCloseTo(alone.body.log_ratio, 5);
        expect(step.num_tokens).toBe(pieces[step.index].length);
        running += step.advantage;
        expect(step.cumulative).toBeCloseTo(running, 10);
      }
      const adv = body.steps.map((s: any) => s.advantage);
      expect(body.aggregates.sum).toBeCloseTo(adv.reduce((a: number, b: number) => a + b, 0), 10);
      expect(body.aggregates.min).toBe(Math.min(...adv));
      expect(body.aggregates.last).toBe(adv[adv.length - 1]);
      expect(body.beta).toBe(0.05); // the policy's config.json kl_beta
    }
  });

  it('batches items, keeps input order, and returns per-token detail and baselines on request', async () => {
    const items = EPISODES.slice(0, 6).map((e) => ({ messages: e.messages }));
    const batch = await post('/v1/trajectories/score', { items, baselines: true, return_tokens: true });
    expect(batch.status).toBe(200);
    expect(batch.body.results).toHaveLength(6);
    for (let i = 0; i < 6; i++) {
      const single = await post('/v1/trajectories/score', { messages: items[i].messages });
      const a = batch.body.results[i].steps.map((s: any) => s.advantage);
      const b = single.body.steps.map((s: any) => s.advantage);
      a.forEach((x: number, k: number) => expect(x).toBeCloseTo(b[k], 5));
    }
    const step = batch.body.results[0].steps[0];
    const tokenSum = step.tokens.reduce((s: number, t: any) => s + t.log_ratio, 0);
    expect(step.log_ratio).toBeCloseTo(tokenSum, 5);
    expect(step.tokens.map((t: any) => t.text).join('')).toContain('assistant');
    expect(step.baselines.mean_logprob).toBeCloseTo(
      step.tokens.reduce((s: number, t: any) => s + t.policy_logprob, 0) / step.tokens.length,
      5,
    );
    expect(Object.keys(batch.body.results[0].baselines).sort()).toEqual(
      ['deepconf', 'deepconf_bottom10', 'deepconf_tail', 'mean_logprob', 'neg_entropy', 'self_certainty'].sort(),
    );
    expect(batch.body.usage.scored_tokens).toBeGreaterThan(0);
  });

  it('scores segments with ids exactly as /v1/score does', async () => {
    const pieces = plainIds(EPISODES[0].messages);
    const segments = [{ ids: [tok.bosId!, ...pieces[0]] }, { ids: pieces[1], score: true }, { ids: pieces[2] }, { ids: pieces[3], score: true }];
    const traj = await post('/v1/trajectories/score', { segments });
    expect(traj.status).toBe(200);
    const second = await post('/v1/score', { prompt_ids: [tok.bosId!, ...pieces[0], ...pieces[1], ...pieces[2]], step_ids: pieces[3] });
    expect(traj.body.steps[1].advantage).toBeCloseTo(second.body.advantage, 5);
  });

  it('a trajectory that fits gives identical numbers in both long_context modes (1e-6)', async () => {
    for (const episode of EPISODES.slice(0, 5)) {
      const window = await post('/v1/trajectories/score', { messages: episode.messages, baselines: true });
      const truncate = await post('/v1/trajectories/score', { messages: episode.messages, baselines: true, long_context: 'truncate' });
      expect([window.status, truncate.status]).toEqual([200, 200]);
      expect([window.body.windows, window.body.truncated_tokens]).toEqual([1, 0]);
      window.body.steps.forEach((s: any, i: number) => {
        const t = truncate.body.steps[i];
        expect(Math.abs(s.advantage - t.advantage)).toBeLessThan(1e-6);
        expect(Math.abs(s.cumulative - t.cumulative)).toBeLessThan(1e-6);
        expect([s.min_context, s.context_truncated, s.partial]).toEqual([t.min_context, false, false]);
      });
      for (const key of Object.keys(window.body.aggregates)) expect(Math.abs(window.body.aggregates[key] - truncate.body.aggregates[key])).toBeLessThan(1e-6);
      for (const key of Object.keys(window.body.baselines)) expect(Math.abs(window.body.baselines[key] - truncate.body.baselines[key])).toBeLessThan(1e-6);
    }
  });

  it('a trajectory longer than max_length: truncate mode drops the first step (null, never 0); window mode scores every step', async () => {
    const episode = EPISODES.find((e) => e.n_actions >= 5)!;
    const full = await post('/v1/trajectories/score', { messages: episode.messages });
    const pieces = plainIds(episode.messages);
    const total = 1 + pieces.flat().length;
    const maxLength = total - pieces[0].length - 1;
    const config = validateConfig({
      ...defaultConfig(),
      threads: 1,
      log_level: 'silent',
      // Room for everything but the user message and a little more: the first step falls off.
      scorers: [{ name: 'short', policy: POLICY, reference: REFERENCE, max_length: maxLength }],
    });
    const batchRows: number[] = [];
    const short = new ScorerPool(config, () => ({ batchStarted: (report) => batchRows.push(report.rows) }));
    await short.load();
    try {
      const scorer = short.get('short');
      const { scoreTrajectories } = await import('../../src/pipeline/trajectory.js');
      const [cut] = await scoreTrajectories(scorer, [{ messages: episode.messages, long_context: 'truncate' }]);
      expect(cut.truncated_tokens).toBeGreaterThan(0);
      expect(cut.steps[0]).toMatchObject({ truncated: true, advantage: null, log_ratio: null, cumulative: null, num_tokens: 0, min_context: null });
      const last = cut.steps.length - 1;
      // The final steps still see all but the oldest context; their scores stay finite and are not flagged.
      expect(cut.steps[last].truncated).toBe(false);
      expect(cut.steps[last].context_truncated).toBe(true);
      expect(Number.isFinite(cut.steps[last].advantage)).toBe(true);
      expect(full.body.steps).toHaveLength(cut.steps.length);
      // Aggregates are over the scored steps only: the sum of their advantages.
      const kept = cut.steps.filter((s) => s.advantage !== null).map((s) => s.advantage!);
      expect(cut.aggregates.sum).toBeCloseTo(kept.reduce((a, b) => a + b, 0), 12);

      batchRows.length = 0;
      const [windowed] = await scoreTrajectories(scorer, [{ messages: episode.messages }]);
      expect(windowed.windows).toBeGreaterThan(1);
      // Its windows are ordinary rows: they went through the models together, in one batch.
      expect(Math.max(...batchRows)).toBe(windowed.windows);
      expect(windowed.truncated_tokens).toBe(0);
      expect(windowed.steps.every((s) => s.advantage !== null && !s.truncated)).toBe(true);
      windowed.steps.forEach((s, i) => {
        const all = full.body.steps[i];
        expect(s.num_tokens).toBe(all.num_tokens);
        // A step whose tokens all sit in the first window saw everything before it: the same number as one pass.
        if (!s.context_truncated) expect(Math.abs(s.advantage! - all.advantage)).toBeLessThan(1e-5);
        else expect(s.min_context).toBeGreaterThanOrEqual(Math.floor(maxLength / 2));
      });
      expect(windowed.steps.some((s) => s.context_truncated)).toBe(true);
      const refused = scoreTrajectories(scorer, [{ messages: episode.messages, truncate: false }]);
      await expect(refused).rejects.toMatchObject({ status: 422, code: 'input_too_long' });
    } finally {
      await short.close();
    }
  });

  it('answers clear 4xx codes for unusable trajectories', async () => {
    expect((await post('/v1/trajectories/score', {})).body.error.code).toBe('missing_trajectory');
    expect((await post('/v1/trajectories/score', { messages: [] })).body.error.code).toBe('empty_trajectory');
    const noSteps = await post('/v1/trajectories/score', { messages: [{ role: 'user', content: 'map :' }] });
    expect([noSteps.status, noSteps.body.error.code]).toEqual([422, 'no_steps']);
    const both = await post('/v1/trajectories/score', { messages: EPISODES[0].messages, segments: [{ text: 'x' }] });
    expect([both.status, both.body.error.code]).toEqual([400, 'conflicting_fields']);
    // A trajectory next to items would be silently dropped: refused, as /v1/score refuses a stray step.
    const beside = await post('/v1/trajectories/score', { messages: EPISODES[0].messages, items: [{ messages: EPISODES[1].messages }] });
    expect([beside.status, beside.body.error.code]).toEqual([400, 'conflicting_fields']);
  });
});

describe('POST /v1/attribute', () => {
  it('blames the argmin of the cumulative advantage, and names its agent', async () => {
    const failed = EPISODES.filter((e) => !e.success && e.n_actions >= 3).slice(0, 5);
    expect(failed.length).toBeGreaterThan(0);
    for (const episode of failed) {
      const scored = await post('/v1/trajectories/score', { messages: episode.messages });
      const adv: number[] = scored.body.steps.map((s: any) => s.advantage);
      let run = 0;
      const cum = adv.map((a) => (run += a));
      const expected = cum.indexOf(Math.min(...cum));
      const res = await post('/v1/attribute', { messages: episode.messages });
      expect(res.status).toBe(200);
      expect(res.body.method).toBe('min_cumulative');
      expect(res.body.position).toBe(expected);
      expect(res.body.step).toBe(scored.body.steps[expected].index);
      expect(res.body.agent).toBe('assistant');
      const sharpest = await post('/v1/attribute', { messages: episode.messages, method: 'sharpest_drop' });
      expect(sharpest.body.position).toBe(adv.indexOf(Math.min(...adv)));
    }
  });
});

describe('POST /v1/rank', () => {
  it('scores N candidates like /v1/score and orders them best first', async () => {
    const prompt = '[user]: map :\n. . . . G\n. # . P .\n. . . . .\n. . P . .\nS . . . .\ngoal 0 4\nat 4 0 , up . down # left # right .\n[assistant]:';
    const candidates = [' up', ' down', ' left', ' right'];
    const res = await post('/v1/rank', { prompt, candidates });
    expect(res.status).toBe(200);
    for (let i = 0; i < candidates.length; i++) {
      const alone = await post('/v1/score', { prompt, step: candidates[i] });
      expect(res.body.scores[i]).toBeCloseTo(alone.body.advantage, 5);
    }
    const sorted = [...res.body.scores].sort((a: number, b: number) => b - a);
    expect(res.body.order.map((i: number) => res.body.scores[i])).toEqual(sorted);
    expect(res.body.best).toBe(res.body.order[0]);
  });

  it('ranks message-list candidates by the chosen step aggregate, scoring only the candidates\' messages', async () => {
    const [user] = EPISODES[0].messages;
    const candidates = EPISODES.slice(0, 8)
      .filter((e) => e.messages[0].content === user.content)
      .map((e) => e.messages.slice(1));
    const res = await post('/v1/rank', { messages: [user], candidates, step_aggregate: 'mean' });
    expect(res.status).toBe(200);
    for (let i = 0; i < candidates.length; i++) {
      const whole = await post('/v1/trajectories/score', { messages: [user, ...candidates[i]] });
      expect(res.body.scores[i]).toBeCloseTo(whole.body.aggregates.mean, 5);
    }
  });

  it('long_context "truncate": a candidate none of whose steps was scored has a null score, ranks last and is never best', async () => {
    const [user] = EPISODES[0].messages;
    // Candidate 1's only step is followed by a user message longer than the model: the cut leaves nothing of the step.
    const flood = { role: 'user', content: 'up '.repeat(500) };
    const candidates = [[{ role: 'assistant', content: 'up' }], [{ role: 'assistant', content: 'down' }, flood], [{ role: 'assistant', content: 'left' }]];
    const res = await post('/v1/rank', { messages: [user], candidates, long_context: 'truncate' });
    expect(res.status).toBe(200);
    expect(res.body.scores[1]).toBeNull();
    expect(res.body.candidates[1].steps[0]).toMatchObject({ advantage: null, truncated: true });
    expect(res.body.order[2]).toBe(1);
    expect(res.body.best).not.toBe(1);
    expect(res.body.scores[res.body.best]).toBe(Math.max(res.body.scores[0], res.body.scores[2]));
    const alone = await post('/v1/rank', { messages: [user], candidates: [candidates[1]], long_context: 'truncate' });
    expect([alone.body.best, alone.body.scores, alone.body.order]).toEqual([null, [null], [0]]);
  });
});
