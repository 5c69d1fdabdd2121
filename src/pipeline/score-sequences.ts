/**
 * The one way the pipeline runs Sequences through a scorer's engine: each is cut into its windows
 * (windows.ts; a sequence that fits is one row), all rows of all sequences go to the batcher in
 * one submit so they can share forward batches, and each sequence's outputs are put back together.
 */
import type { ScoreOptions } from '../engine/scorer.js';
import type { Scorer } from '../pool.js';
import type { Sequence, TokenScores } from '../sequence.js';
import { mergeWindowScores, windowRows } from './windows.js';

export interface ScoredSequences {
  /** Per sequence: one entry per scored token of every span, in span order. */
  scores: TokenScores[];
  /** Per sequence: the rows that went through the models (its windows). */
  rows: Sequence[][];
}

export async function scoreSequences(scorer: Scorer, sequences: readonly Sequence[], run: ScoreOptions = {}): Promise<ScoredSequences> {
  const rows = sequences.map((seq) => windowRows(seq, scorer.maxLength));
  const flat = await scorer.engine.score(rows.flat(), run);
  let next = 0;
  const scores = rows.map((r) => mergeWindowScores(flat.slice(next, (next += r.length))));
  return { scores, rows };
}
