/**
 * POST /v1/score through app.inject() with a real ScorerPool (engine workers, batcher, scoring
 * head). Expected numbers come from outside the service:
 *  - hand-built bigram fixtures: log p(b | a) = table[a][b] − logsumexp(table[a]) in float64;
 *  - real exports (Llama fp16 with external data, GPT-2 past.onnx) against a perturbed copy:
 *    a plain-JS float64 log-softmax over each unmodified model's raw logits.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { BOS_ID, fixtureVocabulary, perturbModel, randomTable, writeBigramModel } from '../helpers/onnx-fixtures.js';
import { rawLogits } from '../helpers/reference-logprobs.js';
import { describeIf, needShared, sharedPath } from '../helpers/shared.js';

const LLAMA = sharedPath('models', 'tiny-random-LlamaForCausalLM-fp16');
const GPT2 = sharedPath('models', 'tiny-random-gpt2-fp32');
const HAVE_SHARED = needShared(import.meta.url, [LLAMA, GPT2]);

const AGGREGATES = ['sum', 'mean', 'min', 'max', 'last'] as const;
type Aggregate = (typeof AGGREGATES)[number];

// ---------------------------------------------------------------------------------------------
// Independent float64 math

function logsumexp(row: readonly number[] | Float64Array): number {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - max);
  return max + Math.log(s);
}

/** log p(ids[k] | ids[k−1]) under a bigram table, for k = start..ids.length−1. */
function bigramLogprobs(table: number[][], ids: number[], start: number): number[] {
  const out: number[] = [];
  for (let k = start; k < ids.length; k++) out.push(table[ids[k - 1]][ids[k]] - logsumexp(table[ids[k - 1]]));
  return out;
}

function aggregate(values: number[], how: Aggregate): number {
  switch (how) {
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'mean':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'min':
      return Math.min(...values);
    case 'max':
      return Math.max(...values);
    case 'last':
      return values[values.length - 1];
  }
}

/** Deterministic ids in [lo, hi). */
function pseudoIds(n: number, seed: number, lo: number, hi: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (s % (hi - lo));
  });
}

// ---------------------------------------------------------------------------------------------
// Service under test

interface Service {
  app: App;
  pool: ScorerPool;
  metrics: Metrics;
}

async function startService(scorers: Config['scorers'], overrides: Partial<Config> = {}): Promise<Service> {
  const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent', ...overrides, scorers });
  const metrics = new Metrics({ defaultMetrics: false });
  const pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
  const app = buildApp(config, pool, { metrics });
  await pool.load();
  await app.ready();
  return { app, pool, metrics };
}

async function stopService(s: Service | undefined): Promise<void> {
  if (!s) return;
  await s.app.close();
  await s.pool.close();
}

async function post(app: App, body: unknown, url = '/v1/score') {
  const res = await app.inject({ method: 'POST', url, payload: body as object });
  return { status: res.statusCode, body: res.json() as any };
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-score-api-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------

describe('bigram fixtures: closed-form log-probs', () => {
  const V = 40;
  const POLICY = randomTable(V, 11);
  const REFERENCE = randomTable(V, 12);
  const KL_BETA = 0.25;
  let service: Service;

  beforeAll(async () => {
    const dirs = {
      policy: writeBigramModel(path.join(tmpRoot, 'policy'), { table: POLICY, klBeta: KL_BETA, positionIds: true }),
      reference: writeBigramModel(path.join(tmpRoot, 'reference'), { table: REFERENCE }),
      policyAdd: writeBigramModel(path.join(tmpRoot, 'policy-add'), { table: POLICY, klBeta: KL_BETA, lmHead: 'add' }),
      referenceAdd: writeBigramModel(path.join(tmpRoot, 'reference-add'), { table: REFERENCE, lmHead: 'add' }),
    };
    service = await startService([
      { name: 'default', policy: dirs.policy, reference: dirs.reference },
      { name: 'fallback', policy: dirs.policyAdd, reference: dirs.referenceAdd },
    ]);
  });
  afterAll(() => stopService(service));

  const promptIds = [BOS_ID, 7, 19, 4, 33];
  const stepIds = [12, 5, 39, 21, 8, 30];
  const fullIds = [...promptIds, ...stepIds];
  const p = bigramLogprobs(POLICY, fullIds, promptIds.length);
  const q = bigramLogprobs(REFERENCE, fullIds, promptIds.length);
  const r = p.map((x, k) => x - q[k]);

  it('the first scorer ends in the LM-head MatMul (gathered), the second in an Add (fallback)', async () => {
    const res = await service.app.inject({ method: 'GET', url: '/v1/models' });
    const data = res.json().data as any[];
    expect(data.map((d) => [d.id, d.policy.lm_head_gathered, d.reference.lm_head_gathered, d.vocab_size, d.beta])).toEqual([
      ['default', true, true, V, KL_BETA],
      ['fallback', false, false, V, KL_BETA],
    ]);
  });

  for (const model of ['default', 'fallback']) {
    it(`${model}: every β, token aggregator and aggregate mode equals the closed form to 1e-5`, async () => {
      for (const beta of [0.05, 1, 3.7]) {
        for (const how of AGGREGATES) {
          for (const mode of ['ratio', 'separate'] as const) {
            const { status, body } = await post(service.app, {
              model,
              prompt_ids: promptIds,
              step_ids: stepIds,
              beta,
              token_aggregate: how,
              token_aggregate_mode: mode,
            });
            expect(status).toBe(200);
            const logRatio = mode === 'ratio' ? aggregate(r, how) : aggregate(p, how) - aggregate(q, how);
            expect(body.model).toBe(model);
            expect(body.beta).toBe(beta);
            expect(Math.abs(body.log_ratio - logRatio)).toBeLessThan(1e-5);
            expect(Math.abs(body.advantage - beta * logRatio)).toBeLessThan(1e-5);
            expect(Math.abs(body.policy_logprob - aggregate(p, 'sum'))).toBeLessThan(1e-5);
            expect(Math.abs(body.reference_logprob - aggregate(q, 'sum'))).toBeLessThan(1e-5);
            expect(body.num_tokens).toBe(stepIds.length);
            expect(body.truncated).toBe(false);
          }
        }
      }
    });
  }

  it('min and max differ between the two aggregate modes on this fixture (so both modes are really checked)', () => {
    for (const how of ['min', 'max'] as const) {
      expect(Math.abs(aggregate(r, how) - (aggregate(p, how) - aggregate(q, how)))).toBeGreaterThan(1e-3);
    }
  });

  it('β defaults to the policy config.json kl_beta', async () => {
    const { body } = await post(service.app, { prompt_ids: promptIds, step_ids: stepIds });
    expect(body.beta).toBe(KL_BETA);
    expect(Math.abs(body.advantage - KL_BETA * aggregate(r, 'sum'))).toBeLessThan(1e-5);
  });

  it('text input: BOS + encode(prompt) + encode(step); return_tokens gives ids, words and per-token values', async () => {
    const words = fixtureVocabulary(V);
    const prompt = [7, 19, 4].map((id) => words[id]).join(' ');
    const step = [12, 5, 39].map((id) => words[id]).join(' ');
    const { status, body } = await post(service.app, { prompt, step, return_tokens: true, beta: 2 });
    expect(status).toBe(200);
    const ids = [BOS_ID, 7, 19, 4, 12, 5, 39];
    const tp = bigramLogprobs(POLICY, ids, 4);
    const tq = bigramLogprobs(REFERENCE, ids, 4);
    expect(body.tokens.map((t: any) => t.id)).toEqual([12, 5, 39]);
    expect(body.tokens.map((t: any) => t.text)).toEqual([words[12], words[5], words[39]]);
    body.tokens.forEach((t: any, k: number) => {
      expect(Math.abs(t.policy_logprob - tp[k])).toBeLessThan(1e-5);
      expect(Math.abs(t.reference_logprob - tq[k])).toBeLessThan(1e-5);
      expect(Math.abs(t.log_ratio - (tp[k] - tq[k]))).toBeLessThan(1e-5);
    });
    const sum = tp.reduce((a, x, k) => a + x - tq[k], 0);
    expect(Math.abs(body.advantage - 2 * sum)).toBeLessThan(1e-5);
    expect(body.usage).toEqual({ prompt_tokens: 4, scored_tokens: 3, cached_tokens: 0, unknown_tokens: 0 }); // ids ≥ 4: never <unk> (1)
  });

  it('without return_tokens there is no tokens field', async () => {
    const { body } = await post(service.app, { prompt_ids: promptIds, step_ids: stepIds });
    expect(body.tokens).toBeUndefined();
  });

  it('items: results in input order with per-item options and request-level defaults; usage counts', async () => {
    const items = Array.from({ length: 12 }, (_, i) => ({
      prompt_ids: [BOS_ID, ...pseudoIds(1 + ((i * 7) % 23), 50 + i, 4, V)],
      step_ids: pseudoIds(1 + (i % 6), 90 + i, 4, V),
      ...(i % 3 === 0 ? { token_aggregate: 'mean' as const } : {}),
      ...(i % 4 === 1 ? { beta: 0.5 } : {}),
    }));
    const { status, body } = await post(service.app, { items, beta: 1.5, return_tokens: true });
    expect(status).toBe(200);
    expect(body.results).toHaveLength(items.length);
    items.forEach((item, i) => {
      const ids = [...item.prompt_ids, ...item.step_ids];
      const ratio = bigramLogprobs(POLICY, ids, item.prompt_ids.length).map(
        (x, k) => x - bigramLogprobs(REFERENCE, ids, item.prompt_ids.length)[k],
      );
      const beta = item.beta ?? 1.5;
      const logRatio = aggregate(ratio, item.token_aggregate ?? 'sum');
      const res = body.results[i];
      expect(res.num_tokens).toBe(item.step_ids.length);
      expect(res.beta).toBe(beta);
      expect(res.tokens.map((t: any) => t.id)).toEqual(item.step_ids);
      expect(Math.abs(res.log_ratio - logRatio)).toBeLessThan(1e-5);
      expect(Math.abs(res.advantage - beta * logRatio)).toBeLessThan(1e-5);
    });
    expect(body.usage).toEqual({
      prompt_tokens: items.reduce((n, it) => n + it.prompt_ids.length, 0),
      scored_tokens: items.reduce((n, it) => n + it.step_ids.length, 0),
      cached_tokens: 0, // the bigram fixture has no KV cache
      unknown_tokens: 0,
    });
  });

  it('POST /score is an alias of /v1/score', async () => {
    const a = await post(service.app, { prompt_ids: promptIds, step_ids: stepIds }, '/score');
    const b = await post(service.app, { prompt_ids: promptIds, step_ids: stepIds }, '/v1/score');
    expect(a.status).toBe(200);
    expect(a.body).toEqual(b.body);
  });

  it('ids outside the vocabulary → 422 ids_out_of_vocabulary; unknown model → 404', async () => {
    for (const body of [
      { prompt_ids: [BOS_ID, V], step_ids: [5] },
      { prompt_ids: [BOS_ID], step_ids: [5, V + 100] },
      { prompt_ids: [BOS_ID, -1], step_ids: [5] },
      { items: [{ prompt_ids: [BOS_ID], step_ids: [5] }, { prompt_ids: [BOS_ID], step_ids: [V] }] },
    ]) {
      const res = await post(service.app, body);
      expect(res.status).toBe(422);
      expect(res.body.error.code).toBe('ids_out_of_vocabulary');
    }
    const missing = await post(service.app, { model: 'nope', prompt_ids: [BOS_ID], step_ids: [5] });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('model_not_found');
  });

  it('200 concurrent requests are all correct, and multi-row batches were formed (pa_batch_rows)', async () => {
    const requests = Array.from({ length: 200 }, (_, i) => {
      const prompt = [BOS_ID, ...pseudoIds(1 + (i % 17), 1000 + i, 4, V)];
      const step = pseudoIds(1 + (i % 9), 2000 + i, 4, V);
      return { prompt, step };
    });
    const responses = await Promise.all(requests.map((r) => post(service.app, { prompt_ids: r.prompt, step_ids: r.step, beta: 1 })));
    responses.forEach((res, i) => {
      expect(res.status).toBe(200);
      const ids = [...requests[i].prompt, ...requests[i].step];
      const expected = aggregate(
        bigramLogprobs(POLICY, ids, requests[i].prompt.length).map((x, k) => x - bigramLogprobs(REFERENCE, ids, requests[i].prompt.length)[k]),
        'sum',
      );
      expect(Math.abs(res.body.advantage - expected)).toBeLessThan(1e-5);
    });

    const text = (await service.app.inject({ method: 'GET', url: '/metrics' })).body;
    const value = (re: RegExp) => Number(re.exec(text)?.[1]);
    const batches = value(/^pa_batch_rows_count(?:\{\})? (\d+)$/m);
    const singleRow = value(/^pa_batch_rows_bucket\{le="1"\} (\d+)$/m);
    expect(batches).toBeGreaterThan(0);
    expect(batches - singleRow).toBeGreaterThan(0); // batches with more than one row
    expect(batches).toBeLessThan(200 + 100); // far fewer batches than the requests' rows would be alone
  });
});

// ---------------------------------------------------------------------------------------------

describeIf(HAVE_SHARED)('real exports against perturbed copies: log-ratio equals float64 log-softmax differences', () => {
  let service: Service;
  const dirs = {
    llama: path.join(tmpRoot, 'llama-perturbed'),
    gpt2: path.join(tmpRoot, 'gpt2-perturbed'),
  };

  beforeAll(async () => {
    expect(perturbModel(LLAMA, dirs.llama, { scale: 0.3, seed: 5 })).toBeGreaterThan(0);
    expect(perturbModel(GPT2, dirs.gpt2, { scale: 0.3, seed: 6 })).toBeGreaterThan(0);
    // The no-cache path (the prefix cache against it: test/engine/prefix-cache.test.ts).
    service = await startService(
      [
        { name: 'llama', policy: dirs.llama, reference: LLAMA },
        { name: 'gpt2', policy: dirs.gpt2, reference: GPT2 },
      ],
      { prefix_cache_mb: 0 },
    );
  });
  afterAll(() => stopService(service));

  for (const [model, original, onnxName, vocab, bos] of [
    ['llama', LLAMA, 'model.onnx', 32000, 1],
    ['gpt2', GPT2, 'past.onnx', 1000, 98],
  ] as const) {
    it(`${model}: per-token log-probs and log-ratios to 1e-4, and the ratio is not zero`, async () => {
      const prompt = [bos, ...pseudoIds(14, 31, 3, vocab)];
      const step = pseudoIds(9, 32, 3, vocab);
      const { status, body } = await post(service.app, { model, prompt_ids: prompt, step_ids: step, return_tokens: true, beta: 1 });
      expect(status).toBe(200);
      const ids = [...prompt, ...step];
      const policyRows = (await rawLogits(path.join(dirs[model], onnxName), ids)).rows;
      const referenceRows = (await rawLogits(path.join(original, onnxName), ids)).rows;
      let total = 0;
      let largest = 0;
      body.tokens.forEach((t: any, k: number) => {
        const pos = prompt.length + k - 1; // token at prompt.length + k is read at the position before
        const lp = policyRows[pos][ids[pos + 1]] - logsumexp(policyRows[pos]);
        const lq = referenceRows[pos][ids[pos + 1]] - logsumexp(referenceRows[pos]);
        expect(t.id).toBe(ids[pos + 1]);
        expect(Math.abs(t.policy_logprob - lp)).toBeLessThan(1e-4);
        expect(Math.abs(t.reference_logprob - lq)).toBeLessThan(1e-4);
        expect(Math.abs(t.log_ratio - (lp - lq))).toBeLessThan(1e-4);
        total += lp - lq;
        largest = Math.max(largest, Math.abs(lp - lq));
      });
      expect(largest).toBeGreaterThan(1e-3);
      expect(Math.abs(body.advantage - total)).toBeLessThan(1e-4 * step.length);
    });
  }

  for (const [model, vocab] of [
    ['llama', 32000],
    ['gpt2', 1000],
  ] as const) {
    it(`${model}: padding never changes a value — 16 items of different lengths in one request equal each scored alone (1e-5)`, async () => {
      const items = Array.from({ length: 16 }, (_, i) => ({
        prompt_ids: pseudoIds(2 + i * 5, 400 + i, 3, vocab),
        step_ids: pseudoIds(1 + (i % 6), 500 + i, 3, vocab),
      }));
      const together = await post(service.app, { model, items, return_tokens: true });
      expect(together.status).toBe(200);
      for (const [i, item] of items.entries()) {
        const alone = await post(service.app, { model, ...item, return_tokens: true });
        expect(alone.status).toBe(200);
        const a = alone.body.tokens as any[];
        const b = together.body.results[i].tokens as any[];
        expect(b.map((t) => t.id)).toEqual(item.step_ids);
        a.forEach((t, k) => {
          expect(Math.abs(b[k].policy_logprob - t.policy_logprob)).toBeLessThan(1e-5);
          expect(Math.abs(b[k].reference_logprob - t.reference_logprob)).toBeLessThan(1e-5);
        });
      }
    });
  }

  it('llama text input: ids are BOS + encode(prompt) + encode(step) by the real tokenizer, scored exactly', async () => {
    const readJson = (f: string) => JSON.parse(fs.readFileSync(path.join(LLAMA, f), 'utf8'));
    const tokenizerConfig = readJson('tokenizer_config.json');
    const tok = new Tokenizer(readJson('tokenizer.json'), tokenizerConfig);
    const prompt = 'The agent opened the door.';
    const step = ' Then it walked through.';
    const promptIds = tok.encode(prompt, { add_special_tokens: false }).ids;
    const stepIds = tok.encode(step, { add_special_tokens: false }).ids;
    const ids = [tok.token_to_id(tokenizerConfig.bos_token)!, ...promptIds, ...stepIds];
    const { status, body } = await post(service.app, { model: 'llama', prompt, step, return_tokens: true });
    expect(status).toBe(200);
    expect(body.tokens.map((t: any) => t.id)).toEqual(stepIds);
    const policyRows = (await rawLogits(path.join(dirs.llama, 'model.onnx'), ids)).rows;
    const referenceRows = (await rawLogits(path.join(LLAMA, 'model.onnx'), ids)).rows;
    body.tokens.forEach((t: any, k: number) => {
      const pos = ids.length - stepIds.length + k - 1;
      const expected = policyRows[pos][ids[pos + 1]] - logsumexp(policyRows[pos]) - (referenceRows[pos][ids[pos + 1]] - logsumexp(referenceRows[pos]));
      expect(Math.abs(t.log_ratio - expected)).toBeLessThan(1e-4);
    });
    expect(body.usage).toEqual({ prompt_tokens: 1 + promptIds.length, scored_tokens: stepIds.length, cached_tokens: 0, unknown_tokens: ids.filter((id) => id === 0).length }); // Llama's <unk> is 0
  });

  it('gpt2: the tokenizer is larger than the model (BOS 50256 of a 1000-id model): the pair is served, text that maps outside is a 422', async () => {
    const res = await post(service.app, { model: 'gpt2', prompt: 'Hello', step: ' world' });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('ids_out_of_vocabulary');
  });
});

// ---------------------------------------------------------------------------------------------

describe('limits: truncation, bad input and a full queue', () => {
  const V = 24;
  const POLICY = randomTable(V, 21);
  const REFERENCE = randomTable(V, 22);
  const MAX_LENGTH = 8;
  const MAX_QUEUE = 3;
  let service: Service;

  beforeAll(async () => {
    const policy = writeBigramModel(path.join(tmpRoot, 'limits-policy'), { table: POLICY });
    const reference = writeBigramModel(path.join(tmpRoot, 'limits-reference'), { table: REFERENCE });
    service = await startService([{ name: 'default', policy, reference, max_length: MAX_LENGTH, beta: 1 }], {
      max_queue: MAX_QUEUE,
      max_batch_rows: 1,
      max_inflight_batches: 1,
    });
  });
  afterAll(() => stopService(service));

  const ratios = (ids: number[], start: number) => {
    const p = bigramLogprobs(POLICY, ids, start);
    const q = bigramLogprobs(REFERENCE, ids, start);
    return p.map((x, k) => x - q[k]);
  };

  it('a context longer than max_length, window mode (default): scored in a window, nothing dropped, context_truncated', async () => {
    const prompt = [BOS_ID, 5, 6, 7, 8, 9, 10, 11, 12, 13];
    const step = [14, 15, 16];
    const { status, body } = await post(service.app, { prompt_ids: prompt, step_ids: step, return_tokens: true });
    expect(status).toBe(200);
    expect(body.truncated).toBe(false);
    expect(body.partial).toBe(false);
    expect(body.num_tokens).toBe(3);
    // L = 8, S = 4; the leading BOS_ID (given, not added) is pinned. The sequence has 13 tokens;
    // tokens 10, 11 go to window 1 (body from 1 + 4 = 5: they see 6 and 7 tokens), token 12 to
    // window 2 (body from 9), where it sees BOS + 3 = 4 = ⌊L/2⌋ tokens — the fewest.
    expect(body.min_context).toBe(4);
    expect(body.context_truncated).toBe(true);
    // Two windows ran: [BOS] + ids[5..12) (8 tokens) and [BOS] + ids[9..13) (5 tokens).
    expect(body.usage).toEqual({ prompt_tokens: 8 + 5 - step.length, scored_tokens: step.length, cached_tokens: 0, unknown_tokens: 0 });
    // A bigram reads only the previous token, which every window keeps: the closed form holds.
    const expected = ratios([...prompt, ...step], prompt.length);
    body.tokens.forEach((t: any, k: number) => expect(Math.abs(t.log_ratio - expected[k])).toBeLessThan(1e-5));
  });

  it('long_context "truncate": the context is left-truncated, the step kept whole, truncated is true', async () => {
    const prompt = [BOS_ID, 5, 6, 7, 8, 9, 10, 11, 12, 13];
    const step = [14, 15, 16];
    const { status, body } = await post(service.app, { prompt_ids: prompt, step_ids: step, return_tokens: true, long_context: 'truncate' });
    expect(status).toBe(200);
    expect(body.truncated).toBe(true);
    expect(body.num_tokens).toBe(3);
    expect(body.usage).toEqual({ prompt_tokens: MAX_LENGTH - step.length, scored_tokens: step.length, cached_tokens: 0, unknown_tokens: 0 });
    // Kept: the last 8 tokens; the step starts at position 5 of them. A bigram reads only the previous token, which truncation keeps: the closed form still holds.
    expect([body.min_context, body.context_truncated, body.partial]).toEqual([5, true, false]);
    const expected = ratios([...prompt, ...step], prompt.length);
    body.tokens.forEach((t: any, k: number) => expect(Math.abs(t.log_ratio - expected[k])).toBeLessThan(1e-5));
  });

  it('a step longer than max_length: window mode scores all of it across windows; truncate mode its last L − 2 after BOS, partial', async () => {
    const prompt = [BOS_ID];
    const step = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    const all = ratios([...prompt, ...step], 1);
    const windowed = await post(service.app, { prompt_ids: prompt, step_ids: step, return_tokens: true });
    expect(windowed.status).toBe(200);
    expect(windowed.body.num_tokens).toBe(step.length);
    expect([windowed.body.partial, windowed.body.truncated]).toEqual([false, false]);
    // Its first token sees only the BOS: min_context 1, and the later windows cut the context.
    expect([windowed.body.min_context, windowed.body.context_truncated]).toEqual([1, true]);
    windowed.body.tokens.forEach((t: any, k: number) => expect(Math.abs(t.log_ratio - all[k])).toBeLessThan(1e-5));
    const sum = all.reduce((a, b) => a + b, 0);
    expect(Math.abs(windowed.body.log_ratio - sum)).toBeLessThan(1e-5);

    const cut = await post(service.app, { prompt_ids: prompt, step_ids: step, return_tokens: true, long_context: 'truncate' });
    expect(cut.status).toBe(200);
    // After the pinned BOS: its last L − 2 = 6 tokens, after one token of context.
    const kept = MAX_LENGTH - 2;
    expect([cut.body.partial, cut.body.truncated, cut.body.num_tokens]).toEqual([true, true, kept]);
    expect(cut.body.tokens.map((t: any) => t.id)).toEqual(step.slice(-kept));
    expect([cut.body.min_context, cut.body.context_truncated]).toEqual([2, true]);
    cut.body.tokens.forEach((t: any, k: number) => expect(Math.abs(t.log_ratio - all[all.length - kept + k])).toBeLessThan(1e-5));
  });

  it('truncate: false → 422 input_too_long; a step that cannot fit → 422 step_too_long', async () => {
    const tooLong = await post(service.app, { prompt_ids: [BOS_ID, 5, 6, 7, 8, 9, 10, 11], step_ids: [14, 15], truncate: false });
    expect(tooLong.status).toBe(422);
    expect(tooLong.body.error.code).toBe('input_too_long');
    const longStep = await post(service.app, { prompt_ids: [BOS_ID], step_ids: [5, 6, 7, 8, 9, 10, 11, 12], truncate: false });
    expect(longStep.status).toBe(422);
    expect(longStep.body.error.code).toBe('step_too_long');
  });

  it('bad input answers a 4xx with a machine-readable code', async () => {
    const cases: [unknown, number, string][] = [
      [{ prompt_ids: [BOS_ID], step_ids: [] }, 422, 'empty_step'],
      [{ prompt_ids: [], step_ids: [5, 6] }, 422, 'no_context'],
      [{ prompt_ids: [BOS_ID], step_ids: [5], beta: 0 }, 422, 'invalid_beta'],
      [{ prompt_ids: [BOS_ID], step_ids: [5], beta: -1 }, 422, 'invalid_beta'],
      [{ prompt_ids: [BOS_ID] }, 400, 'missing_step'],
      [{ prompt_ids: [BOS_ID], step_ids: [5], surprise: 1 }, 400, 'unknown_field'],
      [{ prompt_ids: [BOS_ID], step_ids: [5.5] }, 400, 'invalid_request'],
      [{ prompt: 'wa', step_ids: [5] }, 400, 'conflicting_fields'],
      [{ prompt_ids: [BOS_ID], items: [{ prompt_ids: [BOS_ID], step_ids: [5] }] }, 400, 'conflicting_fields'],
      [{ step_ids: [5], items: [{ prompt_ids: [BOS_ID], step_ids: [5] }] }, 400, 'conflicting_fields'],
    ];
    for (const [body, status, code] of cases) {
      const res = await post(service.app, body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status, code });
    }
    const malformed = await service.app.inject({ method: 'POST', url: '/v1/score', headers: { 'content-type': 'application/json' }, payload: '{"step_ids": [5' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.code).toBe('malformed_json');
  });

  it('more items than the queue can ever hold → 413, not a 429 that no retry could fix', async () => {
    const items = Array.from({ length: MAX_QUEUE + 1 }, () => ({ prompt_ids: [BOS_ID, 5], step_ids: [6] }));
    const res = await post(service.app, { items });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('batch_too_large');
  });

  it('a full queue answers 429 overloaded with Retry-After; every accepted request is answered correctly', async () => {
    const bodies = Array.from({ length: 40 }, (_, i) => ({ prompt_ids: [BOS_ID, 4 + (i % 20)], step_ids: [5 + (i % 17), 6] }));
    const responses = await Promise.all(bodies.map((b) => service.app.inject({ method: 'POST', url: '/v1/score', payload: b })));
    let overloaded = 0;
    responses.forEach((res, i) => {
      if (res.statusCode === 429) {
        overloaded++;
        expect(res.json().error.code).toBe('overloaded');
        expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        return;
      }
      expect(res.statusCode).toBe(200);
      const ids = [...bodies[i].prompt_ids, ...bodies[i].step_ids];
      const expected = ratios(ids, 2).reduce((a, b) => a + b, 0);
      expect(Math.abs(res.json().advantage - expected)).toBeLessThan(1e-5);
    });
    expect(overloaded).toBeGreaterThan(0);
    expect(overloaded).toBeLessThan(bodies.length);
  });
});
