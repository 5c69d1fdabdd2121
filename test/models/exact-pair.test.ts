/**
 * The exact pair (models/gridworld-exact-*) against ground truth, without Python: a soft value
 * iteration written here in TypeScript (test/helpers/gridworld-soft-vi.ts) recomputes A* for
 * evaluation states from the documented π_ref^target and the environment's rules, checks the
 * file's `a_star`, and the service's advantages are compared with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, EXACT_POLICY_DIR, EXACT_REFERENCE_DIR, PACKAGE_ROOT, validateConfig } from '../../src/config.js';
import { ScorerPool } from '../../src/pool.js';
import { ACTIONS, parseMap, replay, solve } from '../helpers/gridworld-soft-vi.js';

interface Episode {
  id: string;
  messages: { role: string; content: string }[];
  success: boolean;
  first_bad_action: number | null;
  a_star: number[];
  v_star_0: number;
  sampler: string;
}

const readJson = (file: string): any => JSON.parse(fs.readFileSync(file, 'utf8'));
const FILES = ['gridworld-exact-eval.jsonl', 'gridworld-exact-eval-reference.jsonl'];
const episodes: Episode[][] = FILES.map((f) =>
  fs
    .readFileSync(path.join(PACKAGE_ROOT, 'bench', 'data', f), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line)),
);
const policyConfig = readJson(path.join(EXACT_POLICY_DIR, 'config.json'));
const BETA = 0.05; // tools/train-tiny-pair/README.md: β of the exact pair
const EPS = 0.3; // the noisy expert's ε

// The issue asks for Pearson ≥ 0.99 and MAE ≤ 5% of A*'s std over the evaluation files. The shipped
// pair does not reach that yet (README "Does it work?": Pearson 0.758, MAE 0.214 × std, measured by
// tools/true-a-star-scores.ts), so no bound is asserted on it here: a floor set from the pair's own
// output would only restate it. The fixed tokens meet the issue's own bound, which is asserted.
const FIXED_TOKENS_BOUND = 0.01;

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const std = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
function pearson(xs: number[], ys: number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  xs.forEach((x, i) => {
    sxy += (x - mx) * (ys[i] - my);
    sxx += (x - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  });
  return sxy / Math.sqrt(sxx * syy);
}

/** 20 evaluation states: 10 episodes of each file spread over it, one step each at a varying depth. */
const STATES = episodes.flatMap((file, f) =>
  Array.from({ length: 10 }, (_, k) => {
    const episode = file[Math.floor((k * file.length) / 10) + f];
    return { episode, step: (k * 3 + f) % episode.a_star.length };
  }),
);
const allAStar = episodes.flat().flatMap((e) => e.a_star);

describe('exact pair: bench/data/gridworld-exact-eval*.jsonl against an independent soft value iteration', () => {
  it('the pair records the β and ε the construction documents', () => {
    expect(policyConfig.kl_beta).toBe(BETA);
    expect(policyConfig.expert_eps).toBe(EPS);
    expect(readJson(path.join(EXACT_REFERENCE_DIR, 'config.json')).kl_beta).toBeUndefined();
  });

  it('each episode carries one a_star per assistant step next to success and first_bad_action', () => {
    for (const e of episodes.flat()) {
      expect(e.a_star.length).toBe(e.messages.filter((m) => m.role === 'assistant').length);
      expect(typeof e.success).toBe('boolean');
      expect(e.first_bad_action === null || Number.isInteger(e.first_bad_action)).toBe(true);
    }
    expect(new Set(episodes[0].map((e) => e.sampler))).toEqual(new Set(['pi_star']));
    expect(new Set(episodes[1].map((e) => e.sampler))).toEqual(new Set(['pi_ref_target']));
  });

  it('recomputes A* of 20 evaluation states from the map in the text and the rules (1e-6)', () => {
    expect(STATES).toHaveLength(20);
    for (const { episode, step } of STATES) {
      const s = replay(episode.messages)[step];
      const a = solve(parseMap(episode.messages[0].content), BETA, EPS).advantage(s.pos, s.t)[ACTIONS.indexOf(s.action)];
      expect(Math.abs(a - episode.a_star[step]), `${episode.id} step ${step}`).toBeLessThan(1e-6);
    }
    // Not a degenerate sample: both good and bad moves, A* of both signs.
    const values = STATES.map(({ episode, step }) => episode.a_star[step]);
    expect(Math.min(...values)).toBeLessThan(-0.05);
    expect(Math.max(...values)).toBeGreaterThan(0);
  });

  it('the episodes follow the documented dynamics: the luck in Σ A* = return − V*(s₀) − luck averages 0', () => {
    // luck of a step: r + V*(s') − Q*(s, a) = r + V*(s') − V*(s) − A*(s, a); its mean is 0 under the
    // environment's true slip probabilities, whatever the actions. Checked per file, within 4 standard errors.
    for (const file of episodes) {
      const lucks = file.map((e) => {
        const sol = solve(parseMap(e.messages[0].content), BETA, EPS);
        const steps = replay(e.messages);
        expect(Math.abs(sol.value(steps[0].pos, 0) - e.v_star_0)).toBeLessThan(1e-6);
        return steps.reduce((luck, s, k) => {
          const last = k === steps.length - 1;
          const next = last ? 0 : sol.value(steps[k + 1].pos, s.t + 1);
          return luck + (last && e.success ? 1 : 0) + next - sol.value(s.pos, s.t) - e.a_star[k];
        }, 0);
      });
      expect(Math.abs(mean(lucks))).toBeLessThan((4 * std(lucks)) / Math.sqrt(lucks.length));
      expect(std(lucks)).toBeGreaterThan(0.05); // slips do happen
    }
  });
});

describe('exact pair: the service against the true A*', () => {
  let app: App;
  let pool: ScorerPool;
  const served = new Map<Episode, { advantage: number; fixed: number }[]>();
  const betas = new Set<number>();

  beforeAll(async () => {
    const config = validateConfig({
      ...defaultConfig(),
      threads: 1,
      log_level: 'silent',
      scorers: defaultConfig().scorers.filter((s) => s.name === 'exact'),
    });
    pool = new ScorerPool(config);
    app = buildApp(config, pool);
    await pool.load();
    const all = [...new Set(STATES.map((s) => s.episode))];
    for (let i = 0; i < all.length; i += 64) {
      const chunk = all.slice(i, i + 64);
      const res = await app.inject({
        method: 'POST',
        url: '/v1/trajectories/score',
        payload: { model: 'exact', items: chunk.map((e) => ({ messages: e.messages, return_tokens: true })) },
      });
      expect(res.statusCode, res.body).toBe(200);
      res.json().results.forEach((r: any, k: number) => {
        betas.add(r.beta);
        served.set(
          chunk[k],
          r.steps.map((s: any) => ({
            advantage: s.advantage,
            // the fixed tokens "\n[assistant]:" are every token of the step but its last (the action word)
            fixed: s.tokens.slice(0, -1).reduce((acc: number, t: any) => acc + (t.policy_logprob - t.reference_logprob), 0),
          })),
        );
      });
    }
  }, 600_000);
  afterAll(async () => {
    await app?.close();
    await pool?.close();
  });

  it('serves β = 0.05 from the policy config and one step per assistant message', () => {
    expect([...betas]).toEqual([BETA]);
    for (const [e, steps] of served) expect(steps.length).toBe(e.a_star.length);
  });

  it('the fixed tokens of a step (its "\\n[assistant]: " prefix) contribute |log-ratio| ≤ 0.01 on average', () => {
    const xs = STATES.map(({ episode, step }) => served.get(episode)![step].advantage);
    const truth = STATES.map(({ episode, step }) => episode.a_star[step]);
    const fixed = [...served.values()].flatMap((steps) => steps.map((s) => Math.abs(s.fixed)));
    const mae = mean(xs.map((x, i) => Math.abs(x - truth[i])));
    console.log(`exact pair, 20 states: Pearson ${pearson(xs, truth).toFixed(4)} with A*, MAE ${(mae / std(allAStar)).toFixed(4)} × std(A*); fixed tokens mean |log-ratio| ${mean(fixed).toFixed(5)}`);
    expect(mean(fixed)).toBeLessThanOrEqual(FIXED_TOKENS_BOUND);
  });
});
