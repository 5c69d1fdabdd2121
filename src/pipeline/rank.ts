/**
 * Best-of-N (design §1): N candidates for one prompt, each scored as the sum (or another step
 * aggregate) of its steps' progress advantages, all N through the engine together.
 */
import type { SubmitOptions } from '../engine/batcher.js';
import { badRequest, unprocessable } from '../errors.js';
import type { Scorer } from '../pool.js';
import { aggregateSteps, type StepAggregate } from '../scoring/index.js';
import type { Sequence } from '../sequence.js';
import { compileStepDetailed, compileTrajectoryDetailed, type Compiled, type PlainLabel } from '../text/compile.js';
import { DEFAULT_ACTION_ROLES, isStep, validateMessages, type Message } from '../text/messages.js';
import type { RenderMode } from '../text/pieces.js';
import { advantageFor, compileLimits, resolveBeta, resolveTokenization, type ScoringOptions } from './options.js';
import { scoreSequences } from './score-sequences.js';
import { spanScores } from './split.js';

export type Candidate = string | string[] | Message[];

export interface RankRequest extends ScoringOptions {
  prompt?: string;
  messages?: Message[];
  candidates: Candidate[];
  step_aggregate?: StepAggregate;
  render?: RenderMode;
  label?: PlainLabel;
}

/** A candidate none of whose steps was scored has a null score: it is ranked after every scored one and is never best. */
export interface RankResult {
  beta: number;
  scores: (number | null)[];
  order: number[];
  best: number | null;
  candidates: {
    advantage: number | null;
    steps: { advantage: number | null; log_ratio: number | null; num_tokens: number; truncated: boolean; partial: boolean }[];
  }[];
}

function isStringList(c: Candidate): c is string[] {
  return Array.isArray(c) && c.every((x) => typeof x === 'string');
}

/** The conversation a candidate continues, as messages (a text prompt is the user's turn). */
function contextMessages(request: RankRequest): Message[] {
  if (request.messages !== undefined) {
    validateMessages(request.messages);
    return request.messages;
  }
  return [{ role: 'user', content: request.prompt ?? '' }];
}

/**
 * One candidate → Compiled. The candidates share their prompt's pieces, which are encoded once
 * per request (paper: the tokenizer's piece cache holds them; joint encodes each whole sequence).
 */
function compileCandidate(request: RankRequest, candidate: Candidate, i: number, scorer: Scorer): Compiled {
  const limits = compileLimits(scorer, request);
  const tokenization = resolveTokenization(request.tokenization, scorer);
  const tok = scorer.tokenizer;
  if (typeof candidate === 'string') {
    if (request.messages !== undefined) {
      return compileStepDetailed({ messages: request.messages, step: candidate, render: request.render, label: request.label, tokenization }, tok, limits);
    }
    return compileStepDetailed({ prompt: request.prompt ?? '', step: candidate, tokenization }, tok, limits);
  }
  if (!Array.isArray(candidate) || candidate.length === 0) {
    throw unprocessable('empty_candidate', `candidates[${i}] is empty`);
  }
  if (isStringList(candidate) && request.messages === undefined) {
    // Text steps after a text prompt: the same pieces /v1/score would make, one span per step.
    return compileTrajectoryDetailed(
      { segments: [{ text: request.prompt ?? '' }, ...candidate.map((text) => ({ text, score: true }))], tokenization },
      tok,
      limits,
    );
  }
  const context = contextMessages(request);
  const continuation: Message[] = isStringList(candidate) ? candidate.map((content) => ({ role: 'assistant', content })) : (candidate as Message[]);
  const messages = [...context, ...continuation];
  validateMessages(messages);
  // Only the candidate's own messages are scored; assistant turns in the shared context are not.
  const steps = messages.map((m, k) => (k >= context.length && isStep(m, DEFAULT_ACTION_ROLES) ? k : -1)).filter((k) => k >= 0);
  if (steps.length === 0) throw unprocessable('no_steps', `candidates[${i}] has no assistant message to score`);
  return compileTrajectoryDetailed({ messages, render: request.render, label: request.label, tokenization, steps }, tok, limits);
}

export function compileRank(request: RankRequest, scorer: Scorer): Compiled[] {
  resolveBeta(request.beta, scorer);
  if (request.prompt !== undefined && request.messages !== undefined) throw badRequest('conflicting_fields', 'give prompt or messages, not both');
  if (!Array.isArray(request.candidates) || request.candidates.length === 0) throw unprocessable('no_candidates', 'candidates is empty');
  return request.candidates.map((c, i) => compileCandidate(request, c, i, scorer));
}

export function rankResult(request: RankRequest, sequences: readonly Sequence[], scores: Parameters<typeof spanScores>[1][], scorer: Scorer): RankResult {
  const beta = resolveBeta(request.beta, scorer);
  const candidates = sequences.map((seq, i) => {
    const steps = spanScores(seq, scores[i]).map((s, k) => {
      const r = advantageFor(s, beta, request);
      const span = seq.spans[k];
      return { advantage: r.advantage, log_ratio: r.logRatio, num_tokens: r.numTokens, truncated: span.truncated === true, partial: span.partial === true };
    });
    const scored = steps.filter((s) => s.advantage !== null).map((s) => s.advantage!);
    return { advantage: aggregateSteps(scored, request.step_aggregate ?? 'sum'), steps };
  });
  const scoreList = candidates.map((c) => c.advantage);
  // Highest first, unscored (null) last; ties keep input order.
  const rankOf = (i: number) => (scoreList[i] === null ? 1 : 0);
  const order = scoreList
    .map((_, i) => i)
    .sort((a, b) => rankOf(a) - rankOf(b) || (rankOf(a) === 0 ? scoreList[b]! - scoreList[a]! : 0) || a - b);
  return { beta, scores: scoreList, order, best: scoreList[order[0]] === null ? null : order[0], candidates };
}

export async function rankCandidates(scorer: Scorer, request: RankRequest, run: SubmitOptions = {}): Promise<RankResult> {
  const sequences = compileRank(request, scorer).map((c) => c.sequence);
  const { scores } = await scoreSequences(scorer, sequences, run);
  return rankResult(request, sequences, scores, scorer);
}
