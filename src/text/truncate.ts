/**
 * Left-truncation (design §2, long_context "truncate"): drop the oldest tokens until the sequence
 * fits, keep the pinned start (BOS) and the most recent tokens.
 *
 * Exactly `maxLength` tokens are kept: the pinned ones, then the most recent. A step that fits in
 * one pass (at most maxLength − 1 tokens) is scored whole or not at all: one that lost any token,
 * or whose first token would land at position 0 with nothing before it (no BOS), falls off — its
 * span becomes empty (start === end === 1) and is flagged `truncated`, so it scores null. Tokens
 * of a step that fell off only partly still serve as context for what follows.
 *
 * A step longer than that (it could never be scored whole) is not dropped: the first of its kept
 * tokens serves as context and the rest are scored, flagged `partial`. When it is the last step,
 * that is its last maxLength − 1 tokens, or maxLength − 2 after a BOS.
 */
import type { Sequence, Span } from '../sequence.js';

/** A sequence before truncation: `pinned` leading tokens (BOS) survive any cut. */
export interface Draft {
  ids: number[];
  spans: Span[];
  pinned: number;
}

/** Where a span that fell off points: empty, and not at 0 (no span may start there). */
const FALLEN_OFF = 1;

export function truncateLeft(draft: Draft, maxLength: number): Sequence {
  const { ids, spans, pinned } = draft;
  if (ids.length <= maxLength) return { ids, spans, truncatedTokens: 0, pinned };
  if (maxLength < pinned + 1) throw new Error(`max length ${maxLength} leaves no room after ${pinned} pinned tokens`);

  const cut = pinned + (ids.length - maxLength); // first kept token after the pinned ones
  const shift = cut - pinned;
  const keptSpans = spans.map((span): Span => {
    const lostTokens = span.start < cut;
    const noContext = span.start === cut && pinned === 0;
    if (!lostTokens && !noContext) return { ...span, start: span.start - shift, end: span.end - shift };
    const tooLongToFit = span.end - span.start > maxLength - 1;
    // Its kept tokens from the second on: the first kept one is their context.
    if (tooLongToFit && span.end - cut >= 2) return { ...span, start: pinned + 1, end: span.end - shift, partial: true };
    return { ...span, start: FALLEN_OFF, end: FALLEN_OFF, truncated: true };
  });
  return { ids: [...ids.slice(0, pinned), ...ids.slice(cut)], spans: keptSpans, truncatedTokens: shift, pinned };
}

/** A piece's token range after `truncateLeft`; `truncated` when it lost tokens. */
export interface TruncatedRange {
  start: number;
  end: number;
  truncated?: boolean;
}

/**
 * Where each piece's [start, end) lands after `truncateLeft(draft, maxLength)`: pinned pieces and
 * those after the cut shift left; a piece that lost tokens keeps what is left of it (an empty
 * range at the cut when nothing is), flagged `truncated`.
 */
export function truncateRanges(ranges: readonly { start: number; end: number }[], draft: Draft, maxLength: number): TruncatedRange[] {
  const { ids, pinned } = draft;
  if (ids.length <= maxLength) return ranges.map((r) => ({ start: r.start, end: r.end }));
  const cut = pinned + (ids.length - maxLength);
  const shift = cut - pinned;
  return ranges.map(({ start, end }) => {
    if (end <= pinned) return { start, end };
    if (start >= cut) return { start: start - shift, end: end - shift };
    const keptEnd = Math.max(end, cut) - shift;
    return { start: pinned, end: Math.max(keptEnd, pinned), truncated: true };
  });
}
