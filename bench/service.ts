/**
 * service: the real server (child process, compiled, default settings) under a closed-loop load
 * at concurrency 1, 8 and 64. Each request is one independent step as token ids (prompt 200–1,500
 * tokens, step 10–80) to POST /v1/score → scored step tokens/s, p50/p99 latency, and the mean
 * rows per forward batch from the server's own pa_batch_rows histogram.
 */
import { makeItems, median, percentile, table, timedBench, writeJson, type BenchContext, type BenchOutput, type BenchResult, type Item } from './lib/common.js';
import { mainPair } from './lib/pairs.js';
import { BenchServer, runLoad } from './lib/server.js';

export interface ServiceLevel {
  concurrency: number;
  requests: number;
  seconds: number;
  scoredTokensPerSecond: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanBatchRows: number;
}

export interface ServiceResult extends BenchResult {
  levels: ServiceLevel[];
  peakRssMiB: number;
}

export const scoreBody = (item: Item) => JSON.stringify({ prompt_ids: item.promptIds, step_ids: item.stepIds });

/** `count` items, cycling through the list when it is shorter. */
export function cycle<T>(list: readonly T[], count: number): T[] {
  return Array.from({ length: count }, (_, i) => list[i % list.length]);
}

export async function runService(ctx: BenchContext): Promise<BenchOutput<ServiceResult>> {
  const { options, sizes } = ctx;
  const pair = mainPair(options);
  const items = makeItems(sizes.items, sizes, pair.vocab, pair.maxPositions);
  const result = await timedBench(ctx, 'service', { main: pair.name }, async () => {
    const server = await BenchServer.start(pair, { device: options.device });
    try {
      const url = `${server.url}/v1/score`;
      await runLoad(url, cycle(items, Math.min(items.length, 16)).map(scoreBody), 8); // warm-up, not timed
      const levels: ServiceLevel[] = [];
      for (const c of sizes.concurrency) {
        // Concurrency 1 times the same items as the limit's single-item time, for the p50 target.
        const chosen = c === 1 ? items.slice(0, sizes.singleItems) : cycle(items, Math.max(sizes.requests, 2 * c));
        const before = await server.batchRows();
        const load = await runLoad(url, chosen.map(scoreBody), c);
        const after = await server.batchRows();
        const scored = chosen.reduce((n, it) => n + it.stepIds.length, 0);
        levels.push({
          concurrency: c,
          requests: load.requests,
          seconds: load.seconds,
          scoredTokensPerSecond: scored / load.seconds,
          requestsPerSecond: load.requests / load.seconds,
          p50Ms: median(load.latenciesMs),
          p99Ms: percentile(load.latenciesMs, 0.99),
          meanBatchRows: (after.sum - before.sum) / Math.max(1, after.count - before.count),
        });
      }
      return { levels, peakRssMiB: server.peakRssMiB() };
    } finally {
      await server.stop();
    }
  });
  writeJson(options, 'service', result);
  const tables = [
    table(
      `service: POST /v1/score with token ids, real server (${pair.name})`,
      ['concurrency', 'requests', 'scored tok/s', 'req/s', 'p50 ms', 'p99 ms', 'mean batch rows'],
      result.levels.map((l) => [l.concurrency, l.requests, l.scoredTokensPerSecond, l.requestsPerSecond, l.p50Ms, l.p99Ms, l.meanBatchRows]),
    ),
  ];
  return { result, tables };
}
