/**
 * memory: peak RSS of the service (main thread + both engine workers: one process) at vocabulary
 * 32,000 vs 151,936, under the same load: identical requests (ids drawn below 32,000, so both
 * pairs accept them) at concurrency 64. The peak is read from /proc (VmHWM) once the models are
 * loaded and again after the load, so loading and serving are told apart.
 */
import { makeItems, median, stepTokens, table, timedBench, writeJson, type BenchContext, type BenchOutput, type BenchResult, type Pair } from './lib/common.js';
import { largeVocabPair, mainPair } from './lib/pairs.js';
import { BenchServer, runLoad } from './lib/server.js';
import { cycle, scoreBody } from './service.js';

export interface MemoryRun {
  pair: string;
  vocab: number;
  /** Peak RSS once both sessions were loaded and warmed (loading included). */
  peakAfterLoadMiB: number;
  /** Peak RSS after the load (the process's overall peak). */
  peakMiB: number;
  scoredTokensPerSecond: number;
  p50Ms: number;
}

export interface MemoryResult extends BenchResult {
  concurrency: number;
  requests: number;
  runs: MemoryRun[];
  /** peak(151,936) ÷ peak(32,000) − 1. */
  increase: number;
}

const CONCURRENCY = 64;

async function measure(pair: Pair, bodies: string[], scored: number, device: string): Promise<MemoryRun> {
  const server = await BenchServer.start(pair, { device });
  try {
    const peakAfterLoadMiB = server.peakRssMiB();
    const load = await runLoad(`${server.url}/v1/score`, bodies, CONCURRENCY);
    return {
      pair: pair.name,
      vocab: pair.vocab,
      peakAfterLoadMiB,
      peakMiB: server.peakRssMiB(),
      scoredTokensPerSecond: scored / load.seconds,
      p50Ms: median(load.latenciesMs),
    };
  } finally {
    await server.stop();
  }
}

export async function runMemory(ctx: BenchContext): Promise<BenchOutput<MemoryResult>> {
  const { options, sizes } = ctx;
  const small = mainPair(options);
  const large = largeVocabPair(options);
  const items = cycle(makeItems(sizes.items, sizes, Math.min(small.vocab, large.vocab), Math.min(small.maxPositions, large.maxPositions), 5), Math.max(sizes.requests, 2 * CONCURRENCY));
  const bodies = items.map(scoreBody);
  const scored = stepTokens(items);
  const result = await timedBench(ctx, 'memory', { small: small.name, large: large.name }, async () => {
    const runs = [await measure(small, bodies, scored, options.device), await measure(large, bodies, scored, options.device)];
    return { concurrency: CONCURRENCY, requests: bodies.length, runs, increase: runs[1].peakMiB / runs[0].peakMiB - 1 };
  });
  writeJson(options, 'memory', result);
  const tables = [
    table(
      `memory: service peak RSS under the same load (concurrency ${CONCURRENCY}, ${result.requests} requests)`,
      ['pair', 'vocab', 'peak after load MiB', 'peak under load MiB', 'scored tok/s', 'p50 ms'],
      result.runs.map((r) => [r.pair, r.vocab, r.peakAfterLoadMiB, r.peakMiB, r.scoredTokensPerSecond, r.p50Ms]),
    ),
  ];
  return { result, tables };
}
