/**
 * /v1/score (design §1): one step, or `items` of many, compiled into one Sequence each. The HTTP
 * route and /v1/tokenize both call `compileScoreRequest`: what tokenize shows is what is scored.
 */
import { eachItem } from '../errors.js';
import type { Scorer } from '../pool.js';
import type { Sequence, TokenScores } from '../sequence.js';
import { compileStepDetailed, type Compiled, type StepInput } from '../text/compile.js';
import { advantageFor, batchItems, compileLimits, resolveBeta, resolveTokenization, tokenDetail, type ScoringOptions } from './options.js';
import { stepContexts } from './windows.js';

export type ScoreItem = Pick<StepInput, 'prompt' | 'prompt_ids' | 'step' | 'step_ids'> & ScoringOptions;
export type ScoreBody = ScoreItem & { model?: string; items?: ScoreItem[]; timeout_ms?: number };

const OPTION_KEYS = ['beta', 'token_aggregate', 'token_aggregate_mode', 'return_tokens', 'truncate', 'long_context', 'tokenization'] as const;
/** What one step is made of: per item only, never request-wide. */
const STEP_FIELDS = ['prompt', 'prompt_ids', 'step', 'step_ids'] as const;

export function scoreItemsOf(body: ScoreBody): ScoreItem[] {
  if (body.items) return batchItems<ScoreItem>({ ...body, items: body.items }, OPTION_KEYS, STEP_FIELDS);
  const { model: _m, items: _i, timeout_ms: _t, ...single } = body;
  return [single];
}

/** Every item → Compiled; an error inside `items` names the item (error.item). */
export function compileScoreRequest(body: ScoreBody, scorer: Scorer): { items: ScoreItem[]; compiled: Compiled[] } {
  const items = scoreItemsOf(body);
  const compiled = eachItem(
    items,
    (item) => {
      resolveBeta(item.beta, scorer); // reject a bad β before any work
      const input = { prompt: item.prompt, prompt_ids: item.prompt_ids, step: item.step, step_ids: item.step_ids };
      return compileStepDetailed({ ...input, tokenization: resolveTokenization(item.tokenization, scorer) }, scorer.tokenizer, compileLimits(scorer, item));
    },
    body.items !== undefined,
  );
  return { items, compiled };
}

export function scoreResult(item: ScoreItem, seq: Sequence, scores: TokenScores, scorer: Scorer) {
  const beta = resolveBeta(item.beta, scorer);
  const r = advantageFor(scores, beta, item);
  const span = seq.spans[0];
  const result: Record<string, unknown> = {
    advantage: r.advantage,
    log_ratio: r.logRatio,
    beta,
    policy_logprob: r.policyLogprob,
    reference_logprob: r.referenceLogprob,
    num_tokens: span.end - span.start,
    truncated: (seq.truncatedTokens ?? 0) > 0,
    partial: span.partial === true,
    ...stepContexts(seq, scorer.maxLength)[0],
  };
  if (item.return_tokens) result.tokens = tokenDetail(scorer, seq.ids.slice(span.start, span.end), scores.policy, scores.reference);
  return result;
}
