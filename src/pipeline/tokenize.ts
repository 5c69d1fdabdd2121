/**
 * POST /v1/tokenize (design §2): what a scoring route would score, without scoring. It calls the
 * very compile functions the scoring routes call (pipeline/score, trajectory, rank) and stops
 * before the engine, so its ids are the ids whose log-probs scoring returns.
 */
import type { Scorer } from '../pool.js';
import type { Compiled } from '../text/compile.js';
import { describeWindows } from './windows.js';
import { compileRank, type RankRequest } from './rank.js';
import { compileScoreRequest, type ScoreBody } from './score.js';
import { compileTrajectoryBody, type TrajectoryBody } from './trajectory.js';

/** Which scoring route's body it is. */
export type TokenizeKind = 'score' | 'trajectories' | 'rank' | 'attribute';

/** What the scoring route would run for `c`: its ids, pieces, spans and, past the max length, its windows. */
export function tokenizeResult(c: Compiled, maxLength: number) {
  const { sequence } = c;
  return {
    tokenization: c.tokenization,
    ids: sequence.ids,
    bos_added: c.bosAdded,
    added_tokens: c.added,
    num_tokens: sequence.ids.length,
    truncated_tokens: sequence.truncatedTokens ?? 0,
    pieces: c.pieces,
    spans: sequence.spans.map((s) => ({
      index: s.index,
      start: s.start,
      end: s.end,
      ...(s.truncated ? { truncated: true } : {}),
      ...(s.partial ? { partial: true } : {}),
    })),
    // The rows the models run (long_context "window"; one when the sequence fits).
    windows: describeWindows(sequence, maxLength),
  };
}

/** The body's sequences, compiled as its route compiles them; `many` when the route answers a list. */
export function tokenizeBody(kind: TokenizeKind, body: unknown, scorer: Scorer): { compiled: Compiled[]; many: boolean } {
  switch (kind) {
    case 'score': {
      const b = body as ScoreBody;
      return { compiled: compileScoreRequest(b, scorer).compiled, many: b.items !== undefined };
    }
    case 'rank':
      return { compiled: compileRank(body as RankRequest, scorer), many: true };
    case 'trajectories':
    case 'attribute': {
      const b = body as TrajectoryBody;
      return { compiled: compileTrajectoryBody(b, scorer).map((t) => t.compiled), many: b.items !== undefined };
    }
  }
}
