/**
 * The app on the embedded default pair (models/gridworld-*), loaded and ready, for tests that
 * drive routes through app.inject(). Small, real, and fast to load.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, PACKAGE_ROOT, validateConfig, type Config, type ScorerConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

export const GRIDWORLD_POLICY = path.join(PACKAGE_ROOT, 'models', 'gridworld-policy');
export const GRIDWORLD_REFERENCE = path.join(PACKAGE_ROOT, 'models', 'gridworld-reference');

/** The first `count` episodes of the default pair's evaluation file (bench/data/gridworld-eval.jsonl). */
export function gridworldEpisodes(count: number): any[] {
  return fs
    .readFileSync(path.join(PACKAGE_ROOT, 'bench', 'data', 'gridworld-eval.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .slice(0, count)
    .map((line) => JSON.parse(line));
}

export interface DefaultPairApp {
  app: App;
  pool: ScorerPool;
  metrics: Metrics;
  close(): Promise<void>;
}

/** `overrides` change the service config; `scorer` the default scorer's entry (e.g. beta). */
export async function defaultPairApp(overrides: Partial<Config> = {}, scorer: Partial<ScorerConfig> = {}): Promise<DefaultPairApp> {
  const config = validateConfig({
    ...defaultConfig(),
    threads: 1,
    log_level: 'silent',
    ...overrides,
    scorers: [{ name: 'default', policy: GRIDWORLD_POLICY, reference: GRIDWORLD_REFERENCE, ...scorer }],
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
  const app = buildApp(config, pool, { metrics });
  await pool.load();
  return {
    app,
    pool,
    metrics,
    async close() {
      await app.close();
      await pool.close();
    },
  };
}
