/**
 * memory: peak RSS of the service (main thread + both engine workers: one process) at vocabulary
 * 32,000 vs 151,936, under the same load: identical requests (ids drawn below 32,000, so both
 * pairs accept them) at concurrency 64. The peak is read from /proc (VmHWM) once the models are
 * loaded and again after the load, so loading and serving are told apart.
 *
 * cache bound (issue 12): the with-past export of the main pair, served with the prefix cache off
 * (--prefix-cache-mb 0, the baseline) and on with bounds that the load overfills: requests that
 * draw their prompt from a pool of long prompts (so later requests hit) whose KV is several times
 * every bound (so the cache evicts). The cache-on peak must stay within the cache-off peak plus
 * the bound: RSS ≤ model + cache bound + today's overhead.
 */
import { makeItems, median, randInt, randomIds, rng, stepTokens, table, timedBench, writeJson, type BenchContext, type BenchOutput, type BenchResult, type Pair } from './lib/common.js';
import { largeVocabPair, mainPair, withPastPair } from './lib/pairs.js';
import { BenchServer, metricSum, runLoad } from './lib/server.js';
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

export interface CacheBoundRun {
  /** --prefix-cache-mb. */
  boundMiB: number;
  peakAfterLoadMiB: number;
  peakMiB: number;
  /** pa_prefix_cache_bytes after the load, summed over the roles. */
  cacheMiB: number;
  hitTokens: number;
  evictions: number;
  /** peak − (cache-off peak + bound): ≤ 0 when the bound holds. */
  overBoundMiB: number;
}

export interface CacheBoundResult {
  pair: string;
  kvBytesPerToken: number;
  requests: number;
  poolPrompts: number;
  poolTokens: number;
  runs: CacheBoundRun[];
}

export interface MemoryResult extends BenchResult {
  concurrency: number;
  requests: number;
  runs: MemoryRun[];
  /** peak(151,936) ÷ peak(32,000) − 1. */
  increase: number;
  cacheBound?: CacheBoundResult;
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

async function cacheBound(pair: Pair, device: string, quick: boolean): Promise<CacheBoundResult> {
  const kv = withPastPair(pair, quick);
  const next = rng(12);
  const poolPrompts = quick ? 8 : 96;
  const requests = quick ? 16 : 192;
  const promptRange: [number, number] = quick ? [60, 200] : [1000, 1500];
  const ids = (n: number) => (quick ? Array.from({ length: n }, () => 4 + Math.floor(next() * 40)) : randomIds(next, n, kv.vocab));
  const pool = Array.from({ length: poolPrompts }, () => ids(randInt(next, promptRange)));
  // every prompt once, then prompts drawn from the pool again (hits while they are still cached)
  const bodies = Array.from({ length: requests }, (_, i) => {
    const prompt = i < poolPrompts ? pool[i] : pool[Math.floor(next() * poolPrompts)];
    return JSON.stringify({ items: [{ prompt_ids: prompt, step_ids: ids(randInt(next, quick ? [2, 6] : [20, 60])) }] });
  });
  const poolTokens = pool.reduce((n, p) => n + p.length, 0);
  const bounds = quick ? [0, 1] : [0, 32, 128];
  const runs: CacheBoundRun[] = [];
  let kvBytesPerToken = 0;
  for (const boundMiB of bounds) {
    const server = await BenchServer.start(kv, { device, flags: ['--prefix-cache-mb', String(boundMiB)] });
    try {
      const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { policy: { kv_bytes_per_token: number | null }; reference: { kv_bytes_per_token: number | null } }[] };
      const scorer = models.data[0];
      kvBytesPerToken = (scorer?.policy.kv_bytes_per_token ?? 0) + (scorer?.reference.kv_bytes_per_token ?? 0);
      const peakAfterLoadMiB = server.peakRssMiB();
      await runLoad(`${server.url}/v1/score`, bodies, CONCURRENCY);
      const metrics = await server.metrics();
      runs.push({
        boundMiB,
        peakAfterLoadMiB,
        peakMiB: server.peakRssMiB(),
        cacheMiB: metricSum(metrics, 'pa_prefix_cache_bytes') / 2 ** 20,
        hitTokens: metricSum(metrics, 'pa_prefix_cache_hit_tokens_total'),
        evictions: metricSum(metrics, 'pa_prefix_cache_evictions_total'),
        overBoundMiB: 0,
      });
    } finally {
      await server.stop();
    }
  }
  for (const r of runs) r.overBoundMiB = r.peakMiB - (runs[0].peakMiB + r.boundMiB);
  return { pair: kv.name, kvBytesPerToken, requests, poolPrompts, poolTokens, runs };
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
    const bound = await cacheBound(small, options.device, options.quick);
    return { concurrency: CONCURRENCY, requests: bodies.length, runs, increase: runs[1].peakMiB / runs[0].peakMiB - 1, cacheBound: bound };
  });
  writeJson(options, 'memory', result);
  const tables = [
    table(
      `memory: service peak RSS under the same load (concurrency ${CONCURRENCY}, ${result.requests} requests)`,
      ['pair', 'vocab', 'peak after load MiB', 'peak under load MiB', 'scored tok/s', 'p50 ms'],
      result.runs.map((r) => [r.pair, r.vocab, r.peakAfterLoadMiB, r.peakMiB, r.scoredTokensPerSecond, r.p50Ms]),
    ),
  ];
  const cb = result.cacheBound;
  if (cb) {
    tables.push(
      table(
        `memory: prefix-cache bound under load (${cb.pair}, ${cb.kvBytesPerToken} B of KV per token for both roles; ${cb.requests} requests at concurrency ${CONCURRENCY}, prompts from a pool of ${cb.poolPrompts} = ${cb.poolTokens} tokens)`,
        ['--prefix-cache-mb', 'peak after load MiB', 'peak under load MiB', 'cache at end MiB', 'hit tokens', 'evictions', 'peak − (off peak + bound) MiB'],
        cb.runs.map((r) => [r.boundMiB, r.peakAfterLoadMiB, r.peakMiB, r.cacheMiB, r.hitTokens, r.evictions, r.overBoundMiB]),
      ),
    );
  }
  return { result, tables };
}
