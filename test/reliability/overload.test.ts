/**
 * Overload (issue 7), on a real server listening on loopback (buildApp + listen in this process),
 * with the closed-form bigram fixture so every accepted answer is checked exactly.
 *
 * To hold the queue in a known state without timing, the policy worker's `run` is wrapped in a
 * gate: the batch is recorded, then waits for the test to open the gate before it reaches the
 * real worker. Everything else (HTTP, compile, batcher, workers, scoring head) is the real path.
 * With max_inflight_batches 1, requests sent while the gate is closed stay in the queue.
 *
 *  - max_queue 4: a fifth queued row is a 429 `overloaded` with Retry-After, answered while the
 *    gate is still closed (at once, not after the queue drains); the accepted five are exact.
 *  - x-timeout-ms / timeout_ms: a queued request whose deadline passes gets 504
 *    `deadline_exceeded` while the gate is still closed, and its rows never reach a batch.
 *  - a client that disconnects while queued is dropped before its forward pass
 *    (pa_dropped_requests_total{reason="client_gone"}) and its rows never reach a batch.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import type { EngineBatch } from '../../src/engine/batch.js';
import type { ScorerEngine } from '../../src/engine/scorer.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { BOS_ID, randomTable, writeBigramModel } from '../helpers/onnx-fixtures.js';

const V = 40;
const POLICY = randomTable(V, 21);
const REFERENCE = randomTable(V, 22);
const MAX_QUEUE = 4;
/** Tokens only the requests that must never run use, so the recorded batches can be searched for them. */
const EXPIRED_MARK = 37;
const GONE_MARK = 38;

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-overload-'));
let app: App;
let pool: ScorerPool;
let metrics: Metrics;
let engine: ScorerEngine;
let port: number;

// The gate around the policy worker.
const ran: EngineBatch[] = [];
let openGate: () => void = () => {};
let gate: Promise<void> = Promise.resolve();
function closeGate(): void {
  gate = new Promise((resolve) => (openGate = resolve));
}

beforeAll(async () => {
  const config = validateConfig({
    ...defaultConfig(),
    threads: 1,
    log_level: 'silent',
    max_queue: MAX_QUEUE,
    max_inflight_batches: 1,
    scorers: [
      {
        name: 'default',
        policy: writeBigramModel(path.join(tmpRoot, 'policy'), { table: POLICY }),
        reference: writeBigramModel(path.join(tmpRoot, 'reference'), { table: REFERENCE }),
        beta: 1,
      },
    ],
  });
  metrics = new Metrics({ defaultMetrics: false });
  pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
  app = buildApp(config, pool, { metrics });
  await pool.load();
  engine = pool.list()[0].engine;
  // Every forward of the engine goes through runPlanned (statistics switch, prefix-cache plan).
  const run = engine.policy.runPlanned.bind(engine.policy);
  engine.policy.runPlanned = async (batch: EngineBatch, ...rest) => {
    ran.push(batch);
    await gate;
    return run(batch, ...rest);
  };
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});
afterAll(async () => {
  openGate();
  await app?.close();
  await pool?.close();
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});
beforeEach(() => {
  ran.length = 0;
});

function logsumexp(row: number[]): number {
  const max = Math.max(...row);
  return max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
}

/** Closed-form Σ log π − log π_ref of the step under the two bigram tables. */
function expectedLogRatio(promptIds: number[], stepIds: number[]): number {
  const ids = [...promptIds, ...stepIds];
  let sum = 0;
  for (let k = promptIds.length; k < ids.length; k++) {
    const a = ids[k - 1];
    sum += POLICY[a][ids[k]] - logsumexp(POLICY[a]) - (REFERENCE[a][ids[k]] - logsumexp(REFERENCE[a]));
  }
  return sum;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** One POST over a fresh connection; `onRequest` gets the ClientRequest (to destroy it). */
function post(body: object, headers: Record<string, string> = {}, onRequest?: (req: http.ClientRequest) => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/score', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
    onRequest?.(req);
  });
}

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 5));
}

async function dropped(reason: string): Promise<number> {
  const text = await metrics.registry.getSingleMetricAsString('pa_dropped_requests_total');
  return Number(new RegExp(`reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

const request = (i: number) => ({ prompt_ids: [BOS_ID, 4 + (i % 30), 5 + ((i * 7) % 30)], step_ids: [6 + ((i * 3) % 30), 4 + ((i * 11) % 30)] });

/** Settles a promise into a flag the test can read without awaiting. */
function track<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const promise = p.finally(() => (done = true));
  return { promise, settled: () => done };
}

describe('overload on a real loopback server', () => {
  it('a full queue answers 429 with Retry-After at once; the accepted requests complete exactly', async () => {
    closeGate();
    const first = track(post(request(0)));
    await until(() => ran.length === 1);
    const queued = [1, 2, 3, 4].map((i) => post(request(i)));
    await until(() => engine.batcher.queued === MAX_QUEUE);

    const rejected = await post(request(5));
    expect(rejected.status).toBe(429);
    expect(rejected.body.error.code).toBe('overloaded');
    expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger(Number(rejected.headers['retry-after']))).toBe(true);
    // An items request is admitted whole or not at all.
    const rejectedItems = await post({ items: [request(6), request(7)] });
    expect(rejectedItems.status).toBe(429);
    // Both answered while the first batch is still held: nothing waited for the queue to drain.
    expect(first.settled()).toBe(false);
    expect(engine.batcher.queued).toBe(MAX_QUEUE);

    openGate();
    const answers = await Promise.all([first.promise, ...queued]);
    answers.forEach((res, i) => {
      expect(res.status).toBe(200);
      expect(Math.abs(res.body.log_ratio - expectedLogRatio(request(i).prompt_ids, request(i).step_ids))).toBeLessThan(1e-5);
    });
    expect((await post(request(8))).status).toBe(200);
  });

  it('x-timeout-ms and timeout_ms: 504 deadline_exceeded while queued, and the expired rows never run', async () => {
    const before = await dropped('deadline_exceeded');
    closeGate();
    const first = track(post(request(0)));
    await until(() => ran.length === 1);
    const expiring = { prompt_ids: [BOS_ID, EXPIRED_MARK, 5], step_ids: [EXPIRED_MARK, 6] };
    const byHeader = post(expiring, { 'x-timeout-ms': '30' });
    const byBody = post({ ...expiring, timeout_ms: 30 });
    const [a, b] = await Promise.all([byHeader, byBody]);
    for (const res of [a, b]) {
      expect(res.status).toBe(504);
      expect(res.body.error.code).toBe('deadline_exceeded');
    }
    expect(first.settled()).toBe(false); // answered at the deadline, not when the batch ahead finished
    expect(engine.batcher.queued).toBe(0);
    expect((await dropped('deadline_exceeded')) - before).toBe(2);

    openGate();
    expect((await first.promise).status).toBe(200);
    expect((await post(request(3), { 'x-timeout-ms': '60000' })).status).toBe(200);
    expect(ran.some((batch) => batch.ids.includes(EXPIRED_MARK))).toBe(false);
  });

  it('a client that disconnects while queued is dropped before its forward pass (pa_dropped_requests_total)', async () => {
    const before = await dropped('client_gone');
    closeGate();
    const first = track(post(request(0)));
    await until(() => ran.length === 1);
    let clientRequest: http.ClientRequest | undefined;
    const gone = post({ prompt_ids: [BOS_ID, GONE_MARK], step_ids: [GONE_MARK, 7] }, {}, (req) => (clientRequest = req)).catch((err) => err);
    await until(() => engine.batcher.queued === 1);
    clientRequest!.destroy();
    expect(await gone).toBeInstanceOf(Error); // the client side saw its own socket close
    await until(async () => (await dropped('client_gone')) === before + 1);
    expect(engine.batcher.queued).toBe(0);
    expect(first.settled()).toBe(false);

    openGate();
    expect((await first.promise).status).toBe(200);
    const after = await post(request(9));
    expect(after.status).toBe(200);
    expect(Math.abs(after.body.log_ratio - expectedLogRatio(request(9).prompt_ids, request(9).step_ids))).toBeLessThan(1e-5);
    expect(ran.some((batch) => batch.ids.includes(GONE_MARK))).toBe(false);
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });
});
