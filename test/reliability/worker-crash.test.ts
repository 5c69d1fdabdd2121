/**
 * Worker crash (issue 7): an engine worker thread is killed (EngineWorker.kill() terminates the
 * thread as a fault would) while requests are pending. Every request is answered — 200 with the
 * exact value, or 503 `engine_restarting` with Retry-After — none hangs; /ready answers 503
 * "restarting" until the worker is back; afterwards requests succeed and are exact.
 *
 * Expected numbers: float64 log-softmax over the unmodified models' raw logits
 * (test/helpers/reference-logprobs.ts), independent of the engine.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { PACKAGE_ROOT } from '../../src/config.js';
import type { EngineBatch } from '../../src/engine/batch.js';
import type { EngineWorker } from '../../src/engine/engine-worker.js';
import type { ScorerEngine } from '../../src/engine/scorer.js';
import { ScorerPool } from '../../src/pool.js';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { rawLogits, logsumexp } from '../helpers/reference-logprobs.js';

const POLICY = path.join(PACKAGE_ROOT, 'models', 'gridworld-policy');
const REFERENCE = path.join(PACKAGE_ROOT, 'models', 'gridworld-reference');
const BOS = 2;

let app: App;
let pool: ScorerPool;
let engine: ScorerEngine;

let served: DefaultPairApp;

beforeAll(async () => {
  served = await defaultPairApp({ max_batch_rows: 4 }, { beta: 1 });
  ({ app, pool } = served);
  engine = pool.list()[0].engine;
});
afterAll(async () => served?.close());

async function expectedLogRatio(promptIds: number[], stepIds: number[]): Promise<number> {
  const ids = [...promptIds, ...stepIds];
  const p = (await rawLogits(path.join(POLICY, 'model.onnx'), ids)).rows;
  const q = (await rawLogits(path.join(REFERENCE, 'model.onnx'), ids)).rows;
  let sum = 0;
  for (let k = promptIds.length; k < ids.length; k++) sum += p[k - 1][ids[k]] - logsumexp(p[k - 1]) - (q[k - 1][ids[k]] - logsumexp(q[k - 1]));
  return sum;
}

const post = async (payload: object) => {
  const res = await app.inject({ method: 'POST', url: '/v1/score', payload });
  return { status: res.statusCode, headers: res.headers, body: res.json() as any };
};
const ready = async () => {
  const res = await app.inject({ method: 'GET', url: '/ready' });
  return { status: res.statusCode, body: res.json() as any };
};

/** Long rows (300 tokens) so a batch is still in the worker when it is killed. */
function request(i: number) {
  const prompt = [BOS, ...Array.from({ length: 300 }, (_, k) => 4 + ((i * 13 + k * 7) % 40))];
  return { prompt_ids: prompt, step_ids: [4 + (i % 40), 4 + ((i * 5) % 40)] };
}

/** Kills `worker` as soon as a batch has been posted to it (so one is pending inside the thread). */
function killOnNextRun(worker: EngineWorker): Promise<void> {
  return new Promise((resolve) => {
    const run = worker.runPlanned.bind(worker);
    worker.runPlanned = (batch: EngineBatch, ...rest) => {
      worker.runPlanned = run; // once
      const pending = run(batch, ...rest);
      void worker.kill().then(resolve);
      return pending;
    };
  });
}

describe('an engine worker dies with requests pending', () => {
  for (const role of ['policy', 'reference'] as const) {
    it(`${role}: pending requests get 503 engine_restarting, /ready says restarting, then it serves exactly again`, async () => {
      const worker = role === 'policy' ? engine.policy : engine.reference;
      const restartsBefore = worker.restartCount;
      const backUp = new Promise((resolve) => worker.once('ready', resolve));
      const killed = killOnNextRun(worker);
      const requests = Array.from({ length: 24 }, (_, i) => request(i));
      const answers = Promise.all(requests.map(post));

      await killed;
      // Between the death and the restart the service is not ready (probes route traffic away).
      // (a fresh worker takes the better part of a second to load and warm, so this is the window)
      expect(worker.ready).toBe(false);
      const r = await ready();
      expect(r.status).toBe(503);
      expect(r.body.status).toBe('restarting');
      const results = await answers; // never hangs: every pending request is answered
      let restarting = 0;
      for (const [i, res] of results.entries()) {
        if (res.status === 503) {
          expect(res.body.error.code).toBe('engine_restarting');
          expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
          restarting++;
        } else {
          expect(res.status).toBe(200);
          expect(Math.abs(res.body.log_ratio - (await expectedLogRatio(requests[i].prompt_ids, requests[i].step_ids)))).toBeLessThan(1e-4);
        }
      }
      expect(restarting).toBeGreaterThan(0); // the batch in the killed worker at least

      await backUp;
      expect(worker.restartCount).toBe(restartsBefore + 1);
      expect((await ready()).status).toBe(200);
      const after = await Promise.all(requests.slice(0, 6).map(post));
      for (const [i, res] of after.entries()) {
        expect(res.status).toBe(200);
        expect(Math.abs(res.body.log_ratio - (await expectedLogRatio(requests[i].prompt_ids, requests[i].step_ids)))).toBeLessThan(1e-4);
      }
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    });
  }
});
