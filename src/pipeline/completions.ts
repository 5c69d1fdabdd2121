/**
 * Echo log-probs of one model (POST /v1/completions): every token of a prompt scored by the
 * scorer's policy or its reference, with each position's top-K over the vocabulary. No HTTP here.
 *
 * A text prompt is compiled as one scored segment in the scorer's tokenization profile (paper:
 * BOS when the tokenizer names one, then the text; joint: the tokenizer's own special tokens, as
 * vLLM tokenizes a prompt); token ids are used as given, with no BOS added. Token 0
 * has no context and gets no log-prob. Prompts longer than the model's max length are refused
 * (422 input_too_long), never truncated: an echo must cover the whole prompt.
 */
import type { SubmitOptions } from '../engine/batcher.js';
import { sequenceRow } from '../engine/scorer.js';
import { topKEngineFor, type ModelRole } from '../engine/topk-engine.js';
import { ServiceError, unprocessable } from '../errors.js';
import type { Scorer } from '../pool.js';
import { compileTrajectory } from '../text/compile.js';
import { compileLimits, resolveTokenization } from './options.js';

export type CompletionPrompt = string | number[];

export interface PromptLogprobs {
  ids: number[];
  /** log p(ids[t] | ids[<t]); null for t = 0. */
  tokenLogprobs: (number | null)[];
  /** Per position t ≥ 1, the k most likely tokens there (ids and log-probs, descending); null for t = 0. */
  top: ({ ids: number[]; logprobs: number[] } | null)[];
}

function checkId(id: number, k: number, vocabSize: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw unprocessable('ids_out_of_vocabulary', `token ${JSON.stringify(id)} at position ${k} is not an id of the model's vocabulary [0, ${vocabSize})`);
  }
}

/** The exact ids of a prompt; a prompt of two or more tokens goes through the scoring routes' compiler. */
function promptIds(prompt: CompletionPrompt, scorer: Scorer): number[] {
  const limits = compileLimits(scorer, { truncate: false });
  if (typeof prompt === 'string') {
    const bos = scorer.tokenizer.bosId;
    const text = scorer.tokenizer.encode(prompt);
    if (text.length === 0) {
      if (bos === null) throw unprocessable('empty_prompt', 'the prompt encodes to no tokens');
      checkId(bos, 0, scorer.vocabSize);
      return [bos];
    }
    if (bos === null && text.length === 1) {
      checkId(text[0], 0, scorer.vocabSize);
      return text;
    }
    return compileTrajectory({ segments: [{ text: prompt, score: true }], tokenization: resolveTokenization(undefined, scorer) }, scorer.tokenizer, limits).ids;
  }
  if (prompt.length === 0) throw unprocessable('empty_prompt', 'the prompt has no tokens');
  if (prompt.length === 1) {
    checkId(prompt[0], 0, scorer.vocabSize);
    return [...prompt];
  }
  return compileTrajectory({ segments: [{ ids: prompt, score: true }] }, scorer.tokenizer, limits).ids;
}

/** Compiles every prompt first (so a bad one fails the request before any work), then runs them together. */
export async function promptLogprobs(
  scorer: Scorer,
  role: ModelRole,
  prompts: readonly CompletionPrompt[],
  k: number,
  run: SubmitOptions = {},
): Promise<PromptLogprobs[]> {
  const all = prompts.map((p, i) => {
    try {
      return promptIds(p, scorer);
    } catch (err) {
      if (err instanceof ServiceError && prompts.length > 1) {
        err.message = `prompt[${i}]: ${err.message}`;
        err.item = i;
      }
      throw err;
    }
  });
  const runnable = all.map((ids, i) => ({ ids, i })).filter((p) => p.ids.length >= 2);
  const rowsOf = runnable.map((p) => sequenceRow({ ids: p.ids, spans: [{ index: 0, start: 1, end: p.ids.length }] }));
  // Only a prompt of two or more tokens needs the model (and only then is its top-K engine started).
  const rows = rowsOf.length > 0 ? await (await topKEngineFor(scorer.engine, role)).run(rowsOf, run) : [];
  const out: PromptLogprobs[] = all.map((ids) => ({ ids, tokenLogprobs: [null], top: [null] }));
  runnable.forEach((p, r) => {
    const row = rows[r];
    const target = out[p.i];
    const take = Math.min(k, row.k);
    for (let t = 0; t < row.logprob.length; t++) {
      target.tokenLogprobs.push(row.logprob[t]);
      const ids: number[] = [];
      const logprobs: number[] = [];
      for (let j = 0; j < take; j++) {
        ids.push(row.indices[t * row.k + j]);
        logprobs.push(row.values[t * row.k + j]);
      }
      target.top.push({ ids, logprobs });
    }
  });
  return out;
}
