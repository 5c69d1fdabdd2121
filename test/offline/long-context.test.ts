/**
 * Window mode on real long logs (issue 13): the 50 Who&When cases of ../shared/real with the tiny
 * Llama fp16 export at its own max length L = 2,048 (genai_config.json) as policy and a perturbed
 * copy as reference, through the `pa-server score` path (scoreFile → trajectory pipeline → engine).
 *
 *   - every step that has a token gets a number, and the run's cost is printed;
 *   - Hand-Crafted case 1's last message (2,164 tokens, longer than a window) is scored whole
 *     across windows, every token of it seeing ≥ ⌊L/2⌋ tokens;
 *   - its per-token log-probs equal the raw model (no scoring head) run over the window the rule
 *     assigns to each token — the rule written out here by search, not the service's windows.ts —
 *     with a plain-JS float64 log-softmax, to the float16 export's own rounding (the float32
 *     models agree to 1e-6: test/pipeline/windows-models.test.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { scoreFile } from '../../src/offline/score-file.js';
import { compileTrajectoryRequest, scoreTrajectories } from '../../src/pipeline/trajectory.js';
import { ScorerPool, type Scorer } from '../../src/pool.js';
import { readTrajectoryFile } from '../../src/text/adapters.js';
import { perturbModel } from '../helpers/onnx-fixtures.js';
import { logprobsAt } from '../helpers/reference-logprobs.js';
import { DATA, DIRS } from '../text/real-files.js';
import { windowStart } from '../helpers/window-rule.js';

const HAVE_REAL = fs.existsSync(path.join(DIRS.llama, 'model.onnx')) && fs.existsSync(path.join(DATA, 'who-and-when'));
if (!HAVE_REAL) {
  if (process.env.CI === 'true') throw new Error(`CI=true but ../shared/real is incomplete: ${DIRS.llama} or ${path.join(DATA, 'who-and-when')} is missing`);
  console.warn(`skipping the long-context tests: ${DIRS.llama} or ${path.join(DATA, 'who-and-when')} is missing (../shared/real next to the checkout)`);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'long-context-'));
const referenceDir = path.join(tmp, 'llama-perturbed');
let pool: ScorerPool;
let scorer: Scorer;

beforeAll(async () => {
  if (!HAVE_REAL) return;
  perturbModel(DIRS.llama, referenceDir, { seed: 7 });
  const config = validateConfig({
    ...defaultConfig(),
    threads: 1,
    log_level: 'silent',
    max_batch_tokens: 4096,
    // No max_length: the export's own 2,048 positions.
    scorers: [{ name: 'default', policy: DIRS.llama, reference: referenceDir }],
  });
  pool = new ScorerPool(config);
  await pool.load();
  scorer = pool.get();
});
afterAll(async () => {
  await pool?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});


describe.skipIf(!HAVE_REAL)('long_context "window" on the real Who&When logs with the tiny Llama (L = 2,048)', () => {
  it('all 50 cases: every step with a token has a non-null advantage; the run cost is printed', { timeout: 1_200_000 }, async () => {
    expect(scorer.maxLength).toBe(2048);
    const trajectories = readTrajectoryFile(path.join(DATA, 'who-and-when'), 'who_and_when');
    const output = path.join(tmp, 'window.jsonl');
    const summary = await scoreFile(scorer, trajectories, { format: 'who_and_when', output, concurrency: 4 });
    expect(summary).toMatchObject({ total: 50, scored: 50, failed: 0 });
    const lines = fs
      .readFileSync(output, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
    let steps = 0;
    lines.forEach((line, k) => {
      expect(line.truncated_tokens).toBe(0);
      // As pa-server score compiles it: the adapted record, with its format's steps and rendering.
      const { sequence } = compileTrajectoryRequest({ adapted: trajectories[k].trajectory }, scorer);
      line.steps.forEach((s: any, i: number) => {
        steps++;
        const span = sequence.spans[i];
        expect(s.num_tokens).toBe(span.end - span.start);
        expect(s.num_tokens).toBeGreaterThan(0);
        expect(typeof s.advantage, `${line.id} step ${s.index}`).toBe('number');
        expect([s.truncated, s.partial]).toEqual([false, false]);
        // Every token saw ⌊L/2⌋ tokens or everything before it: the step's first token saw
        // span.start tokens (or ⌊L/2⌋ when it is past the first window), no token fewer.
        expect(s.min_context).toBeGreaterThanOrEqual(Math.min(1024, span.start));
        if (!s.context_truncated) expect(s.min_context).toBe(span.start);
      });
      for (const v of Object.values(line.aggregates)) expect(typeof v).toBe('number');
    });
    expect(steps).toBe(625);
    expect(lines.filter((l) => l.windows > 1).length).toBeGreaterThan(30);
    const { sequence_tokens, forward_tokens, windows } = summary.cost;
    console.log(
      `window mode on the 50 Who&When cases, L = 2048: ${forward_tokens} tokens through each model in ${windows} rows for ${sequence_tokens} trajectory tokens ` +
        `(${(forward_tokens / sequence_tokens).toFixed(2)}×)`,
    );
    // Windows overlap by half: never more than about twice the tokens of one pass.
    expect(forward_tokens).toBeGreaterThan(sequence_tokens);
    expect(forward_tokens).toBeLessThan(2.1 * sequence_tokens);
  });

  it('Hand-Crafted case 1: the step longer than a window is scored across windows, and every log-prob equals the raw model over its window (two float16 ulps)', { timeout: 600_000 }, async () => {
    const [record] = readTrajectoryFile(path.join(DATA, 'who-and-when', 'Hand-Crafted', '1.json'), 'who_and_when');
    const request = { adapted: record.trajectory, return_tokens: true };
    const [result] = await scoreTrajectories(scorer, [request]);
    const { sequence } = compileTrajectoryRequest(request, scorer);
    const L = scorer.maxLength;
    const p = sequence.pinned ?? 0;
    expect(p).toBe(1); // the Llama tokenizer's BOS, which leads every window

    const longest = sequence.spans.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a));
    expect(longest.end - longest.start).toBeGreaterThan(L); // 2,164 tokens
    const step = result.steps.find((s) => s.index === longest.index)!;
    expect(step.num_tokens).toBe(longest.end - longest.start);
    expect(step.advantage).not.toBeNull();
    // It starts past the first window, so every one of its tokens (not only those after its first ⌊L/2⌋) saw ⌊L/2⌋.
    expect(longest.start).toBeGreaterThanOrEqual(L);
    expect(step.min_context).toBeGreaterThanOrEqual(Math.floor(L / 2));
    expect(step.context_truncated).toBe(true);

    // The independent side: group the tokens of that step and of the first step by their window.
    const checked = [sequence.spans[0], longest];
    const byStart = new Map<number, { t: number; policy: number; reference: number }[]>();
    for (const span of checked) {
      const detail = result.steps.find((s) => s.index === span.index)!.tokens!;
      for (let t = span.start; t < span.end; t++) {
        const a = windowStart(t, L, p);
        const list = byStart.get(a) ?? [];
        list.push({ t, policy: detail[t - span.start].policy_logprob, reference: detail[t - span.start].reference_logprob });
        byStart.set(a, list);
      }
    }
    expect(byStart.size).toBeGreaterThanOrEqual(3);
    let compared = 0;
    let worst = 0;
    for (const [a, tokens] of byStart) {
      // The whole window: the BOS, then L − p tokens from its start (or up to the end).
      const row = [...sequence.ids.slice(0, p), ...sequence.ids.slice(a, Math.min(sequence.ids.length, a + L - p))];
      expect(row.length).toBeLessThanOrEqual(L);
      // Token t sits at row position t − a + p; its log-prob is read one position before.
      const positions = tokens.map((x) => x.t - a + p - 1);
      const [policy, reference] = [await logprobsAt(path.join(DIRS.llama, 'model.onnx'), row, positions), await logprobsAt(path.join(referenceDir, 'model.onnx'), row, positions)];
      let w = 0;
      tokens.forEach((x, k) => {
        w = Math.max(w, Math.abs(x.policy - policy[k]), Math.abs(x.reference - reference[k]));
        compared++;
      });
      worst = Math.max(worst, w);
    }
    console.log(`window log-probs vs the raw model: ${compared} tokens in ${byStart.size} windows, max |diff| ${worst.toExponential(2)}`);
    expect(compared).toBe(checked.reduce((n, s) => n + s.end - s.start, 0));
    // This export is float16 end to end: its raw logits are float16, and one ulp of a logit in
    // [0.125, 0.25) is 1.2e-4. The largest difference measured (1.15e-4) is in the first window,
    // where nothing is windowed (the service's gathered LM-head MatMul and batched rows run other
    // kernels than one full pass, which float16 rounds differently); on float32 models window mode equals the raw model to 1e-6
    // (test/pipeline/windows-models.test.ts). So the bound here is two float16 ulps, not 1e-4.
    expect(worst).toBeLessThan(2.5e-4);
  });
});
