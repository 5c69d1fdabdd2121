/**
 * trajectory: one agent trajectory of 20 steps (a task prompt, then observation + action per
 * step) scored by one POST /v1/trajectories/score (segments with ids, actions marked `score`)
 * versus what an agent without that route does: 20 POST /v1/score calls, call i sending the
 * whole context so far as prompt_ids and action i as step_ids. Sequential, as an agent scores
 * each step after taking it. Ratio = time of the 20 calls ÷ time of the one call (ideal 20).
 *
 * Both ways must give the same advantages (same prefix, same causal model): checked.
 */
import { median, randInt, randomIds, rng, table, timedBench, writeJson, type BenchContext, type BenchOutput, type BenchResult } from './lib/common.js';
import { mainPair } from './lib/pairs.js';
import { BenchServer } from './lib/server.js';

export interface TrajectoryBenchResult extends BenchResult {
  steps: number;
  trajectoryTokens: number;
  /** Σ over the 20 calls of their tokens: the work the naive way does. */
  callsTokens: number;
  repeats: number;
  trajectoryMs: number;
  callsMs: number;
  ratio: number;
  /** callsTokens ÷ trajectoryTokens: the ratio if time were proportional to tokens. */
  tokenRatio: number;
  maxAdvantageDifference: number;
}

async function post(url: string, body: unknown): Promise<any> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await r.json();
  if (!r.ok) throw new Error(`${url} answered ${r.status}: ${JSON.stringify(json).slice(0, 300)}`);
  return json;
}

export async function runTrajectory(ctx: BenchContext): Promise<BenchOutput<TrajectoryBenchResult>> {
  const { options, sizes } = ctx;
  const shape = sizes.trajectory;
  const pair = mainPair(options);
  const next = rng(20);
  const prompt = randomIds(next, shape.promptTokens, pair.vocab);
  const turns = Array.from({ length: shape.steps }, () => ({
    observation: randomIds(next, randInt(next, shape.observationTokens), pair.vocab),
    action: randomIds(next, randInt(next, shape.stepTokens), pair.vocab),
  }));
  const segments = [{ ids: prompt }, ...turns.flatMap((t) => [{ ids: t.observation }, { ids: t.action, score: true }])];
  const calls: { prompt_ids: number[]; step_ids: number[] }[] = [];
  let context = [...prompt];
  for (const t of turns) {
    context = [...context, ...t.observation];
    calls.push({ prompt_ids: context, step_ids: t.action });
    context = [...context, ...t.action];
  }
  const trajectoryTokens = context.length;
  const callsTokens = calls.reduce((n, c) => n + c.prompt_ids.length + c.step_ids.length, 0);

  const result = await timedBench(ctx, 'trajectory', { main: pair.name }, async () => {
    const server = await BenchServer.start(pair, { device: options.device });
    try {
      const trajUrl = `${server.url}/v1/trajectories/score`;
      const scoreUrl = `${server.url}/v1/score`;
      await post(trajUrl, { segments }); // warm-up: the longest shape once
      const trajMs: number[] = [];
      const callsMs: number[] = [];
      let maxDiff = 0;
      for (let r = 0; r < shape.repeats; r++) {
        let t0 = performance.now();
        const traj = await post(trajUrl, { segments });
        trajMs.push(performance.now() - t0);
        t0 = performance.now();
        const answers = [];
        for (const c of calls) answers.push(await post(scoreUrl, c));
        callsMs.push(performance.now() - t0);
        answers.forEach((a, i) => (maxDiff = Math.max(maxDiff, Math.abs(a.advantage - traj.steps[i].advantage))));
      }
      const trajectoryMs = median(trajMs);
      const allCallsMs = median(callsMs);
      return {
        steps: shape.steps,
        trajectoryTokens,
        callsTokens,
        repeats: shape.repeats,
        trajectoryMs,
        callsMs: allCallsMs,
        ratio: allCallsMs / trajectoryMs,
        tokenRatio: callsTokens / trajectoryTokens,
        maxAdvantageDifference: maxDiff,
      };
    } finally {
      await server.stop();
    }
  });
  writeJson(options, 'trajectory', result);
  const tables = [
    table(
      `trajectory: ${shape.steps} steps, one /v1/trajectories/score vs ${shape.steps} sequential /v1/score (${pair.name})`,
      ['tokens (1 call)', `tokens (${shape.steps} calls)`, '1 call ms', `${shape.steps} calls ms`, 'ratio', 'token ratio', 'max |Δ advantage|'],
      [[trajectoryTokens, callsTokens, result.trajectoryMs, result.callsMs, result.ratio, result.tokenRatio, result.maxAdvantageDifference.toExponential(2)]],
    ),
  ];
  return { result, tables };
}
