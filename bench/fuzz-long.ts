/**
 * The long fuzz run (issue 7): 10,000 fast-check bodies (2,500 per POST route) through
 * app.inject() on the embedded gridworld pair, with the same bodies and verdict as the CI test
 * (test/reliability/fuzz.test.ts runs 1,000). Prints the status/code histogram per route (how
 * deep the bodies got: 200s went through the engine) and writes bench/out/fuzz-long.json.
 * Exits 1 on the first unacceptable answer (5xx, hang, 4xx without error.code, null score).
 *
 *   npx tsx bench/fuzz-long.ts [--runs 10000] [--seed N]
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { buildApp } from '../src/app.js';
import { defaultConfig, PACKAGE_ROOT, validateConfig } from '../src/config.js';
import { Metrics } from '../src/metrics.js';
import { ScorerPool } from '../src/pool.js';
import { payloadOf, ROUTES, verdict } from '../test/reliability/fuzz-bodies.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(arg('runs') ?? 10_000);
const SEED = arg('seed') !== undefined ? Number(arg('seed')) : Date.now() % 2 ** 31;
const HANG_MS = 15_000;


const config = validateConfig({
  ...defaultConfig(),
  threads: 1,
  // unexpected errors (the 500s) are logged with their stack on stderr
  log_level: 'error',
  max_items: 16,
  body_limit: 256 * 1024,
  scorers: [{ name: 'default', policy: path.join(PACKAGE_ROOT, 'models/gridworld-policy'), reference: path.join(PACKAGE_ROOT, 'models/gridworld-reference') }],
});
const metrics = new Metrics({ defaultMetrics: false });
const pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
const app = buildApp(config, pool, { metrics });
await pool.load();

const histogram: Record<string, Record<string, number>> = {};
const started = performance.now();
let failure: string | null = null;
for (const [r, route] of ROUTES.entries()) {
  histogram[route] = {};
  try {
    await fc.assert(
      fc.asyncProperty(payloadOf(route), async (payload) => {
        let timer: NodeJS.Timeout | undefined;
        const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms`)), HANG_MS)));
        const res = await Promise.race([app.inject({ method: 'POST', url: route, payload, headers: { 'content-type': 'application/json' } }), hang]).finally(() => clearTimeout(timer));
        let key = String(res.statusCode);
        try {
          key += res.statusCode >= 400 ? ` ${JSON.parse(res.body).error?.code}` : '';
        } catch {
          // the verdict reports it
        }
        histogram[route][key] = (histogram[route][key] ?? 0) + 1;
        const problem = verdict(res.statusCode, res.body);
        if (problem) throw new Error(problem);
      }),
      { numRuns: Math.ceil(RUNS / ROUTES.length), seed: SEED + r },
    );
  } catch (err) {
    failure = `${route}: ${(err as Error).message}`;
    break;
  }
}
const seconds = (performance.now() - started) / 1000;
const health = (await app.inject({ method: 'GET', url: '/health' })).statusCode;
await app.close();
await pool.close();

const result = { date: new Date().toISOString(), runs: RUNS, seed: SEED, seconds: Number(seconds.toFixed(1)), health_after: health, ok: failure === null && health === 200, failure, histogram };
fs.mkdirSync(path.join(PACKAGE_ROOT, 'bench', 'out'), { recursive: true });
fs.writeFileSync(path.join(PACKAGE_ROOT, 'bench', 'out', 'fuzz-long.json'), `${JSON.stringify(result, null, 2)}\n`);
for (const route of ROUTES) {
  const entries = Object.entries(histogram[route] ?? {}).sort((a, b) => b[1] - a[1]);
  console.log(`${route}: ${entries.map(([k, n]) => `${k}×${n}`).join(', ')}`);
}
console.log(`${RUNS} runs in ${seconds.toFixed(1)} s, seed ${SEED}: ${result.ok ? 'no 5xx, no hang' : `FAILED ${failure}`}; /health after: ${health}`);
process.exit(result.ok ? 0 : 1);
