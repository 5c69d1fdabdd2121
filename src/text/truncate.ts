/**
 * Left-truncation (design §2): drop the oldest tokens until the sequence fits, keep the pinned
 * start (BOS) and the most recent tokens, and never score part of a step.
 *
 * Exactly `maxLength` tokens are kept: the pinned ones, then the most recent. A step is scored
 * whole or not at all: one that lost any token, or whose first token would land at position 0
 * with nothing before it (no BOS), falls off — its span becomes empty (start === end === 1) and
 * is flagged `truncated`, so it scores 0. Tokens of a step that fell off only partly still serve
 * as context for what follows: they are the most recent context there is.
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
  if (ids.length <= maxLength) return { ids, spans, truncatedTokens: 0 };
  if (maxLength < pinned + 1) throw new Error(`max length ${maxLength} leaves no room after ${pinned} pinned tokens`);

  const cut = pinned + (ids.length - maxLength); // first kept token after the pinned ones
  const shift = cut - pinned;
  const keptSpans = spans.map((span): Span => {
    const lostTokens = span.start < cut;
    const noContext = span.start === cut && pinned === 0;
    if (lostTokens || noContext) return { ...span, start: FALLEN_OFF, end: FALLEN_OFF, truncated: true };
    return { ...span, start: span.start - shift, end: span.end - shift };
  });
  return { ids: [...ids.slice(0, pinned), ...ids.slice(cut)], spans: keptSpans, truncatedTokens: shift };
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
