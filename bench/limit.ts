/**
 * limit: the engine's ceiling. The raw batched forward of both sessions with the scoring head,
 * in their workers, over the batches the service would form from the same items (the batcher's
 * rule and the service's default limits), with as many batches in flight as the service allows;
 * no HTTP, no JSON, no queue. Also the single-item time: one item alone through both workers,
 * the floor under the service's latency at concurrency 1.
 */
import { defaultConfig } from '../src/config.js';
import { makeItems, median, percentile, stepTokens, table, timedBench, writeJson, type BenchContext, type BenchOutput, type BenchResult } from './lib/common.js';
import { formBatches, itemRow, runBatches, serviceBatching, singleItemSeconds, startEngine } from './lib/engine.js';
import { mainPair } from './lib/pairs.js';

export interface LimitResult extends BenchResult {
  threadsPerSession: number;
  batching: ReturnType<typeof serviceBatching>;
  items: number;
  batches: number;
  meanBatchRows: number;
  paddedFraction: number;
  scoredTokensPerSecond: number;
  tokensPerSecond: number;
  singleItem: { items: number; p50Ms: number; p99Ms: number; meanMs: number };
}

export async function runLimit(ctx: BenchContext): Promise<BenchOutput<LimitResult>> {
  const { options, sizes } = ctx;
  const pair = mainPair(options);
  const items = makeItems(sizes.items, sizes, pair.vocab, pair.maxPositions);
  const threads = defaultConfig().threads;
  const batching = serviceBatching();
  const result = await timedBench(ctx, 'limit', { main: pair.name }, async () => {
    const engine = await startEngine(pair, options.device, threads, batching);
    try {
      const batches = formBatches(items.map(itemRow), batching);
      // Warm-up: every padded shape once, so arena growth is not timed (the service warms the same way as it runs).
      const shapes = new Map(batches.map((b) => [`${b.rows}x${b.seqLen}`, b]));
      await runBatches(engine, [...shapes.values()].slice(0, 4), 1);
      const seconds = await runBatches(engine, batches, batching.maxInflight);
      const single = await singleItemSeconds(engine, items.slice(0, sizes.singleItems));
      const padded = batches.reduce((n, b) => n + b.rows * b.seqLen, 0);
      const real = items.reduce((n, it) => n + it.promptIds.length + it.stepIds.length, 0);
      return {
        threadsPerSession: threads,
        batching,
        items: items.length,
        batches: batches.length,
        meanBatchRows: items.length / batches.length,
        paddedFraction: 1 - real / padded,
        scoredTokensPerSecond: stepTokens(items) / seconds,
        tokensPerSecond: real / seconds,
        singleItem: {
          items: single.length,
          p50Ms: median(single) * 1000,
          p99Ms: percentile(single, 0.99) * 1000,
          meanMs: (single.reduce((a, b) => a + b, 0) / single.length) * 1000,
        },
      };
    } finally {
      await engine.close();
    }
  });
  writeJson(options, 'limit', result);
  const tables = [
    table(
      `limit: both sessions in workers, no HTTP (${pair.name}, ${threads} thread(s) per session)`,
      ['items', 'batches', 'mean rows', 'padding', 'scored tok/s', 'all tok/s', 'single p50 ms', 'single p99 ms'],
      [[
        result.items,
        result.batches,
        result.meanBatchRows,
        `${(result.paddedFraction * 100).toFixed(1)}%`,
        result.scoredTokensPerSecond,
        result.tokensPerSecond,
        result.singleItem.p50Ms,
        result.singleItem.p99Ms,
      ]],
    ),
  ];
  return { result, tables };
}
