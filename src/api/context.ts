/**
 * What every route needs (config, pool, metrics) and the one path all scoring routes share:
 * compile → engine, timed, cancellable, with TEI-style timing headers.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { badRequest } from '../errors.js';
import type { RequestTiming } from '../engine/batcher.js';
import type { Metrics } from '../metrics.js';
import { scoreSequences } from '../pipeline/score-sequences.js';
import { usageReport, type UsageReport } from '../pipeline/split.js';
import type { Scorer, ScorerPool } from '../pool.js';
import type { Sequence, TokenScores } from '../sequence.js';

export interface RouteContext {
  config: Config;
  pool: ScorerPool;
  metrics: Metrics;
}

const ms = (seconds: number) => (seconds * 1000).toFixed(3);

/** Deadline from the body's `timeout_ms` or the `x-timeout-ms` header, as epoch ms. */
function deadlineOf(request: FastifyRequest): number | undefined {
  const fromBody = (request.body as { timeout_ms?: number } | undefined)?.timeout_ms;
  const header = request.headers['x-timeout-ms'];
  let timeout = fromBody;
  if (timeout === undefined && typeof header === 'string') {
    timeout = Number(header);
    if (!Number.isInteger(timeout) || timeout <= 0) throw badRequest('invalid_timeout', 'x-timeout-ms must be a positive integer');
  }
  return timeout === undefined ? undefined : Date.now() + timeout;
}

export async function runScoring(
  request: FastifyRequest,
  reply: FastifyReply,
  ctx: RouteContext,
  scorer: Scorer,
  compile: () => Sequence[],
  /** `stats`: the request asks for the policy's confidence baselines. Read after compile() ran. */
  options: { readonly stats?: boolean } = {},
): Promise<{ sequences: Sequence[]; scores: TokenScores[]; report: UsageReport }> {
  const deadline = deadlineOf(request);
  const t0 = performance.now();
  const sequences = compile();
  request.scoredRows = (request.scoredRows ?? 0) + sequences.length;
  const tokenizationSeconds = (performance.now() - t0) / 1000;
  ctx.metrics.tokenization.observe(tokenizationSeconds);
  reply.header('x-tokenization-time', ms(tokenizationSeconds));

  // A client that goes away before its rows run is dropped from the queue (nothing is computed for it).
  const abort = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) abort.abort();
  };
  reply.raw.once('close', onClose);
  const timing: RequestTiming = { queueSeconds: 0, inferenceSeconds: 0 };
  try {
    const { scores, rows } = await scoreSequences(scorer, sequences, { signal: abort.signal, deadline, timing, stats: options.stats });
    // Usage counts what went through the models: every window of a long sequence.
    // Unknown-word tokens are counted once per sequence, not once per window.
    const report = usageReport(rows.flat(), scores, scorer.tokenizer.unkId, sequences);
    ctx.metrics.scoredTokens.inc({ scorer: scorer.name }, report.usage.scored_tokens);
    return { sequences, scores, report };
  } finally {
    reply.raw.off('close', onClose);
    reply.header('x-queue-time', ms(timing.queueSeconds));
    reply.header('x-inference-time', ms(timing.inferenceSeconds));
  }
}
