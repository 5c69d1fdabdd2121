/**
 * GET /v1/info with the embedded default pair loaded. Every expected value is read here from its
 * own source, not from the server: versions from package.json files and process.versions, β,
 * vocabulary and max length from the models' config.json, sha256 hashed here over the ONNX
 * files, limits from the config the app was built with.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

const ROOT = path.resolve(__dirname, '../..');
const POLICY = path.join(ROOT, 'models/gridworld-policy');
const REFERENCE = path.join(ROOT, 'models/gridworld-reference');
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const config = validateConfig({
  ...defaultConfig(),
  threads: 1,
  log_level: 'silent',
  max_items: 17,
  max_batch_tokens: 4096,
  max_batch_rows: 9,
  max_queue: 33,
  max_wait_ms: 2,
  body_limit: 65536,
  api_key: 'info-test-key',
  scorers: [
    { name: 'default', policy: POLICY, reference: REFERENCE },
    { name: 'beta-one', policy: POLICY, reference: REFERENCE, beta: 1, max_length: 128, device: 'cpu' },
  ],
});
const auth = { authorization: 'Bearer info-test-key' };

let app: App;
let pool: ScorerPool;
beforeAll(async () => {
  pool = new ScorerPool(config);
  app = buildApp(config, pool, { metrics: new Metrics({ defaultMetrics: false }) });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await pool?.close();
});

describe('GET /v1/info', () => {
  it('is 503 not_ready while the models load, and needs the API key', async () => {
    const early = await app.inject({ method: 'GET', url: '/v1/info', headers: auth });
    expect(early.statusCode).toBe(503);
    expect(early.json().error.code).toBe('not_ready');
    expect((await app.inject({ method: 'GET', url: '/v1/info' })).statusCode).toBe(401);
    await pool.load();
  });

  it('reports versions, scorers and limits', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/info', headers: auth });
    expect(res.statusCode).toBe(200);
    const info = res.json();
    const policyConfig = readJson(path.join(POLICY, 'config.json'));
    expect(info.name).toBe('progress-advantage-server');
    expect(info.version).toBe(readJson(path.join(ROOT, 'package.json')).version);
    expect(info.runtime).toEqual({
      node: process.versions.node,
      onnxruntime: readJson(path.join(ROOT, 'node_modules/onnxruntime-node/package.json')).version,
    });
    expect(info.auth).toEqual({ api_key_required: true });
    // the served file: the with-past export next to model.onnx (the prefix cache runs it)
    const served = (dir: string) => path.join(dir, 'decoder_with_past_model.onnx');
    const model = (dir: string) => ({ file: served(dir), sha256: sha256(served(dir)), provider: 'cpu' });
    expect(info.scorers).toEqual([
      {
        name: 'default',
        beta: policyConfig.kl_beta, // the trained KL coefficient from the policy's config.json
        device: 'cpu',
        vocab_size: policyConfig.vocab_size,
        max_length: policyConfig.max_position_embeddings,
        policy: model(POLICY),
        reference: model(REFERENCE),
      },
      {
        name: 'beta-one',
        beta: 1,
        device: 'cpu',
        vocab_size: policyConfig.vocab_size,
        max_length: 128,
        policy: model(POLICY),
        reference: model(REFERENCE),
      },
    ]);
    expect(info.limits).toEqual({
      max_items: 17,
      max_batch_tokens: 4096,
      max_batch_rows: 9,
      max_queue: 33,
      max_wait_ms: 2,
      body_limit: 65536,
    });
  });
});
