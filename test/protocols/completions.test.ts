/**
 * POST /v1/completions (echo + max_tokens 0 + logprobs K) on the real Llama fp16 export of
 * ../shared/real (external weights, 32,000-token vocabulary) as the policy, and a perturbed copy
 * as the reference. The expected numbers are a plain-JS float64 log-softmax over each unmodified
 * model's raw logits (test/helpers/reference-logprobs.ts, which shares no code with src/engine);
 * text is tokenized here with @huggingface/tokenizers directly.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { defaultPairApp, GRIDWORLD_POLICY, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { perturbModel } from '../helpers/onnx-fixtures.js';
import { logsumexp, rawLogits } from '../helpers/reference-logprobs.js';
import { DIRS } from '../text/real-files.js';

const LLAMA = DIRS.llama;
const HAVE = fs.existsSync(path.join(LLAMA, 'model.onnx'));
const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
if (!HAVE && !IN_CI) console.warn(`test/protocols/completions.test.ts: skipped, ${LLAMA} is missing (../shared/real). Under CI=true it fails instead.`);

const TEXT = 'The quick brown fox jumps over the lazy dog. Ünïcödé, 数字 42!';
const IDS = [1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889];

describe.skipIf(!HAVE && !IN_CI)('POST /v1/completions on the real Llama export', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-completions-'));
  const PERTURBED = path.join(tmp, 'llama-perturbed');
  let app: App;
  let pool: ScorerPool;
  let tok: Tokenizer;

  beforeAll(async () => {
    if (!HAVE) throw new Error(`CI=true but ${LLAMA} is missing: ../shared/real must be next to the checkout`);
    expect(perturbModel(LLAMA, PERTURBED, { scale: 0.3, seed: 7 })).toBeGreaterThan(0);
    const read = (f: string) => JSON.parse(fs.readFileSync(path.join(LLAMA, f), 'utf8'));
    tok = new Tokenizer(read('tokenizer.json'), read('tokenizer_config.json'));
    const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent', scorers: [{ name: 'llama', policy: LLAMA, reference: PERTURBED }] });
    pool = new ScorerPool(config);
    app = buildApp(config, pool, { metrics: new Metrics({ defaultMetrics: false }) });
    await pool.load();
  });
  afterAll(async () => {
    await app?.close();
    await pool?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const complete = async (payload: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: { echo: true, max_tokens: 0, ...payload } });
    return { status: res.statusCode, body: res.json() };
  };

  /** Expected per position t ≥ 1: log p(ids[t]) and the whole log-softmax row at t − 1 (float64). */
  async function expected(dir: string, ids: number[]) {
    const { rows } = await rawLogits(path.join(dir, 'model.onnx'), ids);
    return ids.slice(1).map((id, i) => {
      const lse = logsumexp(rows[i]);
      const logp = Float64Array.from(rows[i], (x) => x - lse);
      return { logprob: logp[id], logp, logits: rows[i] };
    });
  }

  /**
   * One unit in the last place of a float16 logit: the export computes its logits in float16, and
   * the head's LM-head MatMul over the gathered rows rounds them on its own, so a top token's
   * log-prob may differ from the full graph's by that much (measured: up to 1.22e-4 at logits ≈ 0.27,
   * where the ulp is 2.44e-4). Below 1e-4 the bound stays 1e-4.
   */
  const tolerance = (logit: number) => Math.max(1e-4, 2 ** (Math.floor(Math.log2(Math.abs(logit))) - 10));

  /** `top` (id → log-prob) holds the true top-K of `logp`: K distinct ids, each as likely as the K-th (ties allowed), values exact. */
  function expectTrueTopK(top: Record<string, number>, logp: Float64Array, logits: Float64Array, k: number) {
    const entries = Object.entries(top).map(([key, v]) => ({ id: Number(/^token_id:(\d+)$/.exec(key)![1]), v }));
    expect(entries).toHaveLength(k);
    const sorted = Array.from(logp).sort((a, b) => b - a);
    const kth = sorted[k - 1];
    const tol = tolerance(kth + logsumexp(logits));
    for (const e of entries) {
      expect(Math.abs(e.v - logp[e.id])).toBeLessThanOrEqual(tolerance(logits[e.id]));
      expect(logp[e.id]).toBeGreaterThanOrEqual(kth - tol);
    }
    for (let j = 1; j < entries.length; j++) expect(entries[j].v).toBeLessThanOrEqual(entries[j - 1].v);
    // Where the K-th and (K+1)-th differ by more than the tolerance, the set is exactly the true top-K.
    if (sorted[k - 1] - sorted[k] > 2 * tol) {
      const truth = new Set(Array.from(logp.keys()).sort((a, b) => logp[b] - logp[a]).slice(0, k));
      expect(new Set(entries.map((e) => e.id))).toEqual(truth);
    }
  }

  it('a text prompt: BOS + the tokenizer\'s ids; token_logprobs equal a float64 log-softmax over the raw logits (1e-4); top-20 is the true top-20', async () => {
    const ids = [1, ...tok.encode(TEXT, { add_special_tokens: false }).ids];
    const { status, body } = await complete({ model: 'llama:policy', prompt: TEXT, logprobs: 20, return_tokens_as_token_ids: true });
    expect(status).toBe(200);
    const lp = body.choices[0].logprobs;
    expect(lp.tokens).toEqual(ids.map((id) => `token_id:${id}`));
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    const truth = await expected(LLAMA, ids);
    truth.forEach((t, i) => {
      expect(Math.abs(lp.token_logprobs[i + 1] - t.logprob)).toBeLessThanOrEqual(1e-4);
      expectTrueTopK(lp.top_logprobs[i + 1], t.logp, t.logits, 20);
    });
    expect(body.choices[0].text).toBe(TEXT);
    expect(body.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length });
  });

  it('token ids are used as given (no BOS); the reference is the other model of the pair', async () => {
    for (const [model, dir] of [['llama:policy', LLAMA], ['llama:reference', PERTURBED]] as const) {
      const { status, body } = await complete({ model, prompt: IDS, logprobs: 5, return_tokens_as_token_ids: true });
      expect(status).toBe(200);
      const lp = body.choices[0].logprobs;
      expect(lp.tokens).toEqual(IDS.map((id) => `token_id:${id}`));
      const truth = await expected(dir, IDS);
      truth.forEach((t, i) => {
        expect(Math.abs(lp.token_logprobs[i + 1] - t.logprob)).toBeLessThanOrEqual(1e-4);
        expectTrueTopK(lp.top_logprobs[i + 1], t.logp, t.logits, 5);
      });
    }
    const withoutBos = IDS.slice(1);
    const { body } = await complete({ model: 'llama:policy', prompt: withoutBos, logprobs: 1, return_tokens_as_token_ids: true });
    expect(body.choices[0].logprobs.tokens).toEqual(withoutBos.map((id) => `token_id:${id}`));
  });

  it('the vLLM echo shape: token texts, text_offset in code points, top_logprobs keyed by text; a batch of prompts gives one choice each', async () => {
    const { status, body } = await complete({ model: 'llama:policy', prompt: [TEXT, 'Hi'], logprobs: 3 });
    expect(status).toBe(200);
    expect(body.object).toBe('text_completion');
    expect(body.choices.map((c: any) => c.index)).toEqual([0, 1]);
    const lp = body.choices[0].logprobs;
    const ids = [1, ...tok.encode(TEXT, { add_special_tokens: false }).ids];
    expect(lp.tokens).toHaveLength(ids.length);
    expect(lp.tokens[0]).toBe('<s>');
    // The tokens' texts after BOS spell the prompt (SentencePiece's leading "▁" as a space).
    expect(lp.tokens.slice(1).join('')).toBe(` ${TEXT}`);
    let offset = 0;
    lp.tokens.forEach((t: string, i: number) => {
      expect(lp.text_offset[i]).toBe(offset);
      offset += [...t].length;
    });
    for (const top of lp.top_logprobs.slice(1)) {
      const values = Object.values(top) as number[];
      expect(values.length).toBeGreaterThanOrEqual(1);
      expect(values.length).toBeLessThanOrEqual(3);
    }
    expect(body.choices[1].text).toBe('Hi');
  });

  it('logprobs 0 gives token log-probs without top entries; a one-token prompt has only its null', async () => {
    const zero = await complete({ model: 'llama:policy', prompt: IDS, logprobs: 0 });
    expect(zero.body.choices[0].logprobs.top_logprobs.every((t: unknown) => t === null)).toBe(true);
    expect(zero.body.choices[0].logprobs.token_logprobs.slice(1).every((x: unknown) => typeof x === 'number')).toBe(true);
    const one = await complete({ model: 'llama:policy', prompt: [1], logprobs: 2 });
    expect(one.status).toBe(200);
    expect(one.body.choices[0].logprobs.token_logprobs).toEqual([null]);
  });

  it('anything but scoring is a 400 that says so; bad models and prompts are 4xx with their codes', async () => {
    for (const extra of [{ max_tokens: 1 }, { max_tokens: 16 }, { max_tokens: undefined }, { echo: false }, { echo: undefined }, { n: 2 }, { stream: true }]) {
      const res = await complete({ model: 'llama:policy', prompt: IDS, logprobs: 1, ...extra });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('scoring_only');
      expect(res.body.error.message).toMatch(/only scores/);
    }
    expect((await complete({ model: 'llama', prompt: IDS })).body.error.code).toBe('invalid_model');
    expect((await complete({ model: 'nope:policy', prompt: IDS })).status).toBe(404);
    expect((await complete({ model: 'llama:policy', prompt: IDS, logprobs: 21 })).body.error.code).toBe('invalid_request');
    expect((await complete({ model: 'llama:policy', prompt: [] })).body.error.code).toBe('empty_prompt');
    const oov = await complete({ model: 'llama:policy', prompt: [[1, 2], [1, 32000]] });
    expect(oov.status).toBe(422);
    expect(oov.body.error.code).toBe('ids_out_of_vocabulary');
    expect(oov.body.error.message).toMatch(/^prompt\[1\]: /);
    expect(oov.body.error.item).toBe(1);
    const long = await complete({ model: 'llama:policy', prompt: Array.from({ length: 5000 }, () => 100) });
    expect(long.status).toBe(422);
    expect(long.body.error.code).toBe('input_too_long');
    expect((await complete({ model: 'llama:policy', prompt: IDS, suffix: 'x' })).body.error.code).toBe('unknown_field');
  });
});

describe('POST /v1/completions on the default pair', () => {
  let served: DefaultPairApp;
  beforeAll(async () => {
    served = await defaultPairApp();
  });
  afterAll(async () => served?.close());

  it('top_logprobs keyed by text keep every token, a newline included (its texts are distinct in this vocabulary)', async () => {
    const vocab = JSON.parse(fs.readFileSync(path.join(GRIDWORLD_POLICY, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
    const textOf = new Map(Object.entries(vocab).map(([text, id]) => [id, text]));
    const ask = async (asIds: boolean) => {
      const res = await served.app.inject({
        method: 'POST',
        url: '/v1/completions',
        payload: { model: 'default:policy', prompt: '[user]: at 4 1', echo: true, max_tokens: 0, logprobs: 4, return_tokens_as_token_ids: asIds },
      });
      expect(res.statusCode).toBe(200);
      return res.json().choices[0].logprobs;
    };
    const [byText, byId] = [await ask(false), await ask(true)];
    let newlines = 0;
    byId.top_logprobs.forEach((top: Record<string, number> | null, t: number) => {
      if (top === null) return expect(byText.top_logprobs[t]).toBeNull();
      const expected = Object.fromEntries(Object.entries(top).map(([key, v]) => [textOf.get(Number(key.slice('token_id:'.length)))!, v]));
      expect(byText.top_logprobs[t]).toEqual(expected);
      expect(Object.keys(byText.top_logprobs[t])).toHaveLength(4);
      if ('\n' in expected) newlines++;
    });
    expect(newlines).toBeGreaterThan(0);
  });
});
