/**
 * Liveness and readiness with a real ScorerPool:
 *  - /ready is 503 while the pool loads and warms its sessions, 200 once it has;
 *  - /health answers while a large scoring request is being computed: the forward passes run in
 *    worker threads, so the HTTP event loop stays free. Checked by ordering (the /health reply
 *    arrives while the big request is still pending and the batcher is busy), never by durations.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { perturbModel } from '../helpers/onnx-fixtures.js';
import { describeIf, needShared, sharedPath } from '../helpers/shared.js';

const LLAMA = sharedPath('models', 'tiny-random-LlamaForCausalLM-fp16');
const HAVE_SHARED = needShared(import.meta.url, [LLAMA]);
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-health-api-'));
const PERTURBED = path.join(tmpRoot, 'llama-perturbed');
if (HAVE_SHARED) perturbModel(LLAMA, PERTURBED, { scale: 0.2, seed: 9 });

function pseudoIds(n: number, seed: number, lo: number, hi: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (s % (hi - lo));
  });
}

const config = validateConfig({
  ...defaultConfig(),
  threads: 1,
  log_level: 'silent',
  max_batch_tokens: 8192,
  scorers: [{ name: 'default', policy: PERTURBED, reference: LLAMA }],
});

let app: App | undefined;
let pool: ScorerPool | undefined;
afterAll(async () => {
  await app?.close();
  await pool?.close();
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

/** Yields to the event loop until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describeIf(HAVE_SHARED)('/health and /ready', () => {
  it('/ready is 503 before the pool is loaded and warmed, 200 after; /health is 200 throughout', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
    app = buildApp(config, pool, { metrics });
    await app.ready();

    const before = await app.inject({ method: 'GET', url: '/ready' });
    expect(before.statusCode).toBe(503);
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);

    const loading = pool.load();
    const during = await app.inject({ method: 'GET', url: '/ready' });
    expect(during.statusCode).toBe(503);
    expect(during.json()).toEqual({ status: 'loading' });
    // Scoring before readiness is refused with a clear code, not queued or crashed.
    const early = await app.inject({ method: 'POST', url: '/v1/score', payload: { prompt_ids: [1, 5], step_ids: [7] } });
    expect(early.statusCode).toBe(503);
    expect(early.json().error.code).toBe('not_ready');

    await loading;
    const after = await app.inject({ method: 'GET', url: '/ready' });
    expect(after.statusCode).toBe(200);
    expect(after.json()).toEqual({ status: 'ready' });
  });

  it('/health resolves while a large batch is running, before the large request does', async () => {
    const items = Array.from({ length: 24 }, (_, i) => ({
      prompt_ids: [1, ...pseudoIds(280 + (i % 5) * 10, 300 + i, 3, 32000)],
      step_ids: pseudoIds(16, 700 + i, 3, 32000),
    }));
    const order: string[] = [];
    const big = app!.inject({ method: 'POST', url: '/v1/score', payload: { items } }).then((res) => {
      order.push('score');
      return res;
    });
    const batcher = pool!.get().engine.batcher;
    await until(() => batcher.busy); // the large request is compiled and its rows queued or running
    const health = await app!.inject({ method: 'GET', url: '/health' });
    order.push('health');
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    expect(batcher.busy).toBe(true);

    const res = await big;
    expect(res.statusCode).toBe(200);
    expect(res.json().results).toHaveLength(items.length);
    expect(order).toEqual(['health', 'score']);
  });
});
