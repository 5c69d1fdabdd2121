/**
 * Fuzz (issue 7): fast-check bodies (test/reliability/fuzz-bodies.ts) against every POST route
 * through app.inject() on the embedded gridworld pair, 250 runs per route (1,000 in all; the
 * 10,000-run version is bench/fuzz-long.ts). Every answer must be:
 *  - below 500, never a hang (each request is raced against a 15 s limit);
 *  - a 4xx with a machine-readable error.code, or a 200 whose advantages and log-ratios are
 *    numbers (a NaN would serialize as null);
 * and /health, /ready and a known-good request answer normally afterwards.
 * FUZZ_SEED=<n> replays a run (fast-check prints the seed and the shrunk counterexample).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { defaultPairApp, type DefaultPairApp } from '../helpers/default-pair-app.js';
import { payloadOf, ROUTES, verdict } from './fuzz-bodies.js';

const RUNS_PER_ROUTE = 250;
const HANG_MS = 15_000;

let app: App;

let served: DefaultPairApp;

beforeAll(async () => {
  served = await defaultPairApp({ max_items: 16, body_limit: 256 * 1024 });
  ({ app } = served);
});
afterAll(async () => served?.close());


async function answer(url: string, payload: string): Promise<{ status: number; raw: string }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms`)), HANG_MS)));
  try {
    const res = await Promise.race([app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } }), hang]);
    return { status: res.statusCode, raw: res.body };
  } finally {
    clearTimeout(timer);
  }
}

describe('fuzzed bodies against every POST route', () => {
  for (const route of ROUTES) {
    it(`${route}: ${RUNS_PER_ROUTE} bodies, never a 5xx, never a hang, always an error.code on 4xx`, async () => {
      const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
      await fc.assert(
        fc.asyncProperty(payloadOf(route), async (payload) => {
          const { status, raw } = await answer(route, payload);
          const problem = verdict(status, raw);
          if (problem) throw new Error(problem);
        }),
        { numRuns: RUNS_PER_ROUTE, ...(seed !== undefined ? { seed } : {}) },
      );
    }, 300_000);
  }

  it('the server is healthy afterwards', async () => {
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
    const res = await app.inject({ method: 'POST', url: '/v1/score', payload: { prompt: '[user]: at 0 0', step: '\n[assistant]: up' } });
    expect(res.statusCode).toBe(200);
    expect(Number.isFinite(res.json().advantage)).toBe(true);
  });
});
