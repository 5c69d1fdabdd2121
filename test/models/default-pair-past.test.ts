/**
 * The default pair as `npm start` serves it: the with-past exports
 * (decoder_with_past_model.onnx in models/gridworld-policy and -reference, written by
 * tools/train-tiny-pair/export_past.py) with
 * the prefix cache on. An agent loop over an evaluation episode — one /v1/score call per action,
 * each context the previous call's plus the observation — gives the log-ratios of a float64
 * log-softmax over the committed no-past model.onnx files' raw logits, while most of each
 * context comes from the cache.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPairApp, gridworldEpisodes, GRIDWORLD_POLICY, GRIDWORLD_REFERENCE, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { logsumexp, rawLogits } from '../helpers/reference-logprobs.js';

const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const tokConfig = readJson(path.join(GRIDWORLD_POLICY, 'tokenizer_config.json'));
const tok = new Tokenizer(readJson(path.join(GRIDWORLD_POLICY, 'tokenizer.json')), tokConfig);
const config = readJson(path.join(GRIDWORLD_POLICY, 'config.json'));

let served: DefaultPairApp;
beforeAll(async () => {
  served = await defaultPairApp({}, { beta: 1 });
});
afterAll(async () => served?.close());

describe('the default pair with past and the prefix cache', () => {
  it('serves the with-past exports and reports their KV size', async () => {
    const res = await served.app.inject({ method: 'GET', url: '/v1/models' });
    const scorer = res.json().data[0];
    expect(path.basename(scorer.policy.file)).toBe('decoder_with_past_model.onnx');
    expect(path.basename(scorer.reference.file)).toBe('decoder_with_past_model.onnx');
    // key + value, every layer, float32
    const perToken = config.num_hidden_layers * 2 * config.hidden_size * 4;
    expect(scorer.policy.kv_bytes_per_token).toBe(perToken);
    expect(scorer.prefix_cache.capacity_bytes).toBeGreaterThan(0);
    // README: half the bound for blocks; a batch reads and keeps at most an eighth's worth of tokens
    expect(scorer.prefix_cache.block_capacity_bytes).toBeLessThanOrEqual(scorer.prefix_cache.capacity_bytes / 2);
    expect(scorer.prefix_cache.batch_tokens).toBe(Math.floor(scorer.prefix_cache.capacity_bytes / 8 / (scorer.policy.kv_bytes_per_token + scorer.reference.kv_bytes_per_token)));
  });

  it('an agent loop: each call equals the committed model.onnx files (1e-4) and reuses the previous context', async () => {
    const episode = gridworldEpisodes(3)[2];
    const ids = [tok.token_to_id(tokConfig.bos_token)!];
    const steps: [number, number][] = [];
    (episode.messages as { role: string; content: string }[]).forEach((m, i) => {
      const seg = tok.encode(`${i > 0 ? '\n' : ''}[${m.role}]: ${m.content}`, { add_special_tokens: false }).ids;
      if (m.role === 'assistant') steps.push([ids.length, ids.length + seg.length]);
      ids.push(...seg);
    });
    expect(steps.length).toBeGreaterThan(3);
    const p = (await rawLogits(path.join(GRIDWORLD_POLICY, 'model.onnx'), ids)).rows;
    const q = (await rawLogits(path.join(GRIDWORLD_REFERENCE, 'model.onnx'), ids)).rows;
    let cached = 0;
    for (const [start, end] of steps) {
      let want = 0;
      for (let k = start; k < end; k++) want += p[k - 1][ids[k]] - logsumexp(p[k - 1]) - (q[k - 1][ids[k]] - logsumexp(q[k - 1]));
      const res = await served.app.inject({ method: 'POST', url: '/v1/score', payload: { prompt_ids: ids.slice(0, start), step_ids: ids.slice(start, end) } });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(Math.abs(body.log_ratio - want)).toBeLessThan(1e-4);
      cached += body.usage.cached_tokens;
    }
    // every call after the first finds the previous context's full blocks
    expect(cached).toBeGreaterThan(steps[steps.length - 1][0] / 2);
    const metrics = (await served.app.inject({ method: 'GET', url: '/metrics' })).body;
    const hit = /pa_prefix_cache_hit_tokens_total\{scorer="default",role="policy"\} (\d+)/.exec(metrics);
    expect(Number(hit?.[1])).toBe(cached);
    expect(metrics).toMatch(/pa_prefix_cache_bytes\{scorer="default",role="reference"\} [1-9]/);
  });
});
