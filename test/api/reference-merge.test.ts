/**
 * A scorer with `reference_merge` on the default pair, through the HTTP routes: per-token
 * reference log-probs equal a float64 log-softmax over the raw logits of the independently merged
 * model (tools/merge-check/merge_pair.py, run by onnxruntime-node unmodified) to 1e-5; α = 0 gives
 * exactly the plain reference's numbers; linear α = 1 gives log-ratio 0 at every token;
 * /v1/models, /v1/info and pa_model_info show the merge and the digest the independent merge computed.
 *
 * Token ids are encoded here with the tokenizer alone (the plain renderer of design §2).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReferenceMerge } from '../../src/engine/merge.js';
import { resolveModelDir } from '../../src/engine/model-dir.js';
import { loadTokenizer, type TextTokenizer } from '../../src/text/tokenizer.js';
import { defaultPairApp, gridworldEpisodes, GRIDWORLD_POLICY, GRIDWORLD_REFERENCE, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { IN_CI, independentMerge, pythonReady } from '../helpers/merge-fixtures.js';
import { rawLogits, statsOfRow } from '../helpers/reference-logprobs.js';

const EPISODES = gridworldEpisodes(6);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reference-merge-'));
let tok: TextTokenizer;

beforeAll(async () => {
  tok = await loadTokenizer(GRIDWORLD_POLICY);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

if (!pythonReady && !IN_CI) {
  console.warn('test/api/reference-merge.test.ts: the comparison with the independent merge is skipped: /usr/bin/python3 lacks onnx/numpy. Under CI=true it fails instead.');
}
const withPython = pythonReady || IN_CI ? it : it.skip;

interface Item {
  prompt_ids: number[];
  step_ids: number[];
}

/** Every assistant step of the episodes with its growing context, as token ids (BOS + pieces). */
function items(): Item[] {
  const out: Item[] = [];
  for (const episode of EPISODES) {
    const pieces = episode.messages.map((m: { role: string; content: string }, i: number) => tok.encode(`${i > 0 ? '\n' : ''}[${m.role}]: ${m.content}`));
    episode.messages.forEach((m: { role: string }, i: number) => {
      if (m.role === 'assistant') out.push({ prompt_ids: [tok.bosId!, ...pieces.slice(0, i).flat()], step_ids: pieces[i] });
    });
  }
  return out;
}

interface TokenOut {
  id: number;
  policy_logprob: number;
  reference_logprob: number;
  log_ratio: number;
}

async function scoreAll(served: DefaultPairApp): Promise<TokenOut[][]> {
  const res = await served.app.inject({ method: 'POST', url: '/v1/score', payload: { items: items(), return_tokens: true } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().results.map((r: { tokens: TokenOut[] }) => r.tokens);
}

async function withApp<T>(merge: ReferenceMerge | undefined, fn: (served: DefaultPairApp) => Promise<T>): Promise<T> {
  const served = await defaultPairApp({}, merge ? { reference_merge: merge } : {});
  try {
    return await fn(served);
  } finally {
    await served.close();
  }
}

describe('reference_merge through the service', () => {
  let plain: TokenOut[][];
  beforeAll(async () => {
    plain = await withApp(undefined, scoreAll);
  });

  for (const merge of [
    { method: 'linear', alpha: 0.4 },
    { method: 'ties', alpha: 0.5, density: 0.2 },
  ] as ReferenceMerge[]) {
    withPython(`${merge.method}: reference log-probs equal a raw ORT run of the independently merged model (1e-5)`, async () => {
      const out = path.join(tmp, `${merge.method}.onnx`);
      const independent = independentMerge({
        policy: resolveModelDir(GRIDWORLD_POLICY).onnxFile,
        reference: resolveModelDir(GRIDWORLD_REFERENCE).onnxFile,
        ...merge,
        out,
      });
      await withApp(merge, async (served) => {
        const tokens = await scoreAll(served);
        let compared = 0;
        for (const [i, item] of items().entries()) {
          const ids = [...item.prompt_ids, ...item.step_ids];
          const { rows } = await rawLogits(out, ids);
          tokens[i].forEach((t, k) => {
            const position = item.prompt_ids.length + k - 1;
            expect(t.id).toBe(ids[position + 1]);
            expect(Math.abs(t.reference_logprob - statsOfRow(rows[position], ids[position + 1]).logprob)).toBeLessThan(1e-5);
            // The policy is untouched by the merge.
            expect(t.policy_logprob).toBe(plain[i][k].policy_logprob);
            compared++;
          });
        }
        expect(compared).toBeGreaterThan(20);
        // The merge shows in /v1/models and pa_model_info, with the independent merge's digest.
        const models = (await served.app.inject({ method: 'GET', url: '/v1/models' })).json();
        expect(models.data[0].reference.merge).toEqual({
          method: merge.method,
          alpha: merge.alpha,
          density: merge.density ?? null,
          seed: null,
          policy: resolveModelDir(GRIDWORLD_POLICY).onnxFile,
          weights_sha256: independent.weights_sha256,
          tensors: independent.tensors,
          merged_tensors: independent.merged_tensors,
        });
        expect(models.data[0].policy.merge).toBeUndefined();
        const info = (await served.app.inject({ method: 'GET', url: '/v1/info' })).json();
        expect(info.scorers[0].reference.merge).toEqual(models.data[0].reference.merge);
        served.metrics.recordModels(served.pool.list());
        const exposition = await served.metrics.registry.metrics();
        const line = exposition.split('\n').find((l) => l.startsWith('pa_model_info{') && l.includes('role="reference"'))!;
        expect(line).toContain(`merge_method="${merge.method}"`);
        expect(line).toContain(`merge_alpha="${merge.alpha}"`);
        expect(line).toContain(`merged_sha256="${independent.weights_sha256}"`);
      });
    });
  }

  for (const merge of [
    { method: 'linear', alpha: 0 },
    { method: 'ties', alpha: 0, density: 0.3 },
  ] as ReferenceMerge[]) {
    it(`${merge.method} with α = 0 gives exactly the plain reference's numbers`, async () => {
      const tokens = await withApp(merge, scoreAll);
      expect(tokens.flat().length).toBeGreaterThan(20);
      tokens.forEach((step, i) =>
        step.forEach((t, k) => {
          expect(t.reference_logprob).toBe(plain[i][k].reference_logprob);
          expect(t.log_ratio).toBe(plain[i][k].log_ratio);
        }),
      );
    });
  }

  it('linear with α = 1 gives log-ratio 0 at every token', async () => {
    const tokens = await withApp({ method: 'linear', alpha: 1 }, scoreAll);
    expect(tokens.flat().length).toBeGreaterThan(20);
    // The policy's own numbers are far from zero: the merged reference is the policy.
    expect(plain.flat().some((t) => Math.abs(t.log_ratio) > 0.1)).toBe(true);
    for (const t of tokens.flat()) {
      expect(t.log_ratio).toBe(0);
      expect(t.reference_logprob).toBe(t.policy_logprob);
    }
  });
});
