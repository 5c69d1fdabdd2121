/**
 * long_context "window" (design §2): a Sequence longer than the model's max length L is scored
 * in overlapping windows of at most L tokens, each an ordinary row for the batcher.
 *
 *   - Window w reads the body ids[p + w·S ..] after the p pinned tokens (the BOS a profile adds,
 *     which leads every window), stride S = ⌈L/2⌉: each window starts where the previous one's
 *     second half starts.
 *   - Token t (an index into the full sequence) is scored in the first window that gives it at
 *     least ⌊L/2⌋ preceding tokens, or all of them: window 0 for t < L, else
 *     w = 1 + ⌊(t − L) / S⌋, where it sees t − w·S ≥ ⌊L/2⌋ tokens (the pinned ones included).
 *     A step longer than a window is scored token by token across windows like any other span.
 *   - A window ends at its last scored token (a causal model's log-probs do not depend on what
 *     follows), and a window that scores nothing is not run.
 *
 * Scored tokens go to windows in order, so the engine's per-window outputs, concatenated in window
 * order, are the full sequence's per-token outputs in span order (mergeWindowScores). A sequence
 * that fits is its own single row, unchanged.
 */
import type { Sequence, Span, TokenScores } from '../sequence.js';

export function stride(maxLength: number): number {
  return Math.ceil(maxLength / 2);
}

/** The window that scores token t (t ≥ 1) of a sequence cut into windows of `maxLength`. */
export function windowOf(t: number, maxLength: number): number {
  return t < maxLength ? 0 : 1 + Math.floor((t - maxLength) / stride(maxLength));
}

function checkLength(maxLength: number, pinned: number): void {
  if (!Number.isInteger(maxLength) || maxLength < 2 || maxLength < pinned + 1) throw new Error(`max length ${maxLength} leaves no room for a window after ${pinned} pinned tokens`);
}

/** One window: its row (ids ≤ L and spans in its own positions) and where its body starts in the full ids. */
export interface Window {
  row: Sequence;
  /** Index in the full ids of the row's first token after the pinned ones. */
  offset: number;
}

/** The windows a sequence is scored in, in order; a sequence that fits is one window, itself. */
export function planWindows(seq: Sequence, maxLength: number): Window[] {
  const pinned = seq.pinned ?? 0;
  if (seq.ids.length <= maxLength) return [{ row: seq, offset: pinned }];
  checkLength(maxLength, pinned);
  const step = stride(maxLength);
  const byWindow = new Map<number, Span[]>();
  for (const span of seq.spans) {
    let t = span.start;
    while (t < span.end) {
      const w = windowOf(t, maxLength);
      // The window's last token: L − 1 for window 0, else L − 1 + w·S.
      const end = Math.min(span.end, maxLength + w * step);
      const list = byWindow.get(w) ?? [];
      list.push({ ...span, start: t, end });
      byWindow.set(w, list);
      t = end;
    }
  }
  const windows: Window[] = [];
  for (const w of [...byWindow.keys()].sort((a, b) => a - b)) {
    const spans = byWindow.get(w)!;
    const offset = w === 0 ? pinned : pinned + w * step;
    const last = spans[spans.length - 1].end;
    const ids = w === 0 ? seq.ids.slice(0, last) : [...seq.ids.slice(0, pinned), ...seq.ids.slice(offset, last)];
    const shift = offset - pinned;
    windows.push({
      offset,
      row: { ids, pinned, spans: spans.map((s) => ({ ...s, start: s.start - shift, end: s.end - shift })) },
    });
  }
  return windows;
}

/** The rows the engine runs for a sequence. */
export function windowRows(seq: Sequence, maxLength: number): Sequence[] {
  return planWindows(seq, maxLength).map((w) => w.row);
}

/** One sequence's token scores from its windows' scores, in window order. */
export function mergeWindowScores(parts: readonly TokenScores[]): TokenScores {
  if (parts.length === 1) return parts[0];
  const join = (key: 'policy' | 'reference' | 'entropy' | 'meanLogprob' | 'topkMeanLogprob') => {
    const out = new Float64Array(parts.reduce((n, p) => n + p[key].length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p[key], at);
      at += p[key].length;
    }
    return out;
  };
  return {
    policy: join('policy'),
    reference: join('reference'),
    entropy: join('entropy'),
    meanLogprob: join('meanLogprob'),
    topkMeanLogprob: join('topkMeanLogprob'),
    cachedTokens: parts.reduce((n, p) => n + (p.cachedTokens ?? 0), 0),
  };
}

/** What a step saw: the fewest preceding tokens any of its scored tokens had, and whether that is less than all of them. */
export interface StepContext {
  /** null when the step has no scored token. */
  min_context: number | null;
  /** True when some scored token of the step was predicted from less than everything before it. */
  context_truncated: boolean;
}

/**
 * Per span of `seq` (as compiled: after left truncation in "truncate" mode, whole in "window"
 * mode), the context its tokens were predicted from. Token t of a window row sees its position in
 * the row; everything before it in the input is t + the tokens left truncation dropped.
 */
export function stepContexts(seq: Sequence, maxLength: number): StepContext[] {
  const dropped = seq.truncatedTokens ?? 0;
  // The spans of the window rows are pieces of the sequence's spans, in the same order.
  const owners = seq.spans;
  let owner = 0;
  const contexts = owners.map((): StepContext => ({ min_context: null, context_truncated: false }));
  for (const { row, offset } of planWindows(seq, maxLength)) {
    const pinned = row.pinned ?? 0;
    for (const piece of row.spans) {
      if (piece.end === piece.start) continue;
      const fullStart = piece.start + offset - pinned;
      while (!(owners[owner].start <= fullStart && fullStart < owners[owner].end)) owner++;
      const c = contexts[owner];
      // The piece's first token sees the least: its position in the row.
      const seen = piece.start;
      const before = fullStart + dropped;
      c.min_context = c.min_context === null ? seen : Math.min(c.min_context, seen);
      if (seen < before) c.context_truncated = true;
    }
  }
  return contexts;
}

/** A window as /v1/tokenize shows it, in the full sequence's positions. */
export interface WindowView {
  /** The row is ids[0..pinned) followed by ids[start..end). */
  start: number;
  end: number;
  /** [start, end) ranges of the tokens this window scores. */
  scored: [number, number][];
}

export function describeWindows(seq: Sequence, maxLength: number): WindowView[] {
  return planWindows(seq, maxLength).map(({ row, offset }) => {
    const pinned = row.pinned ?? 0;
    const shift = offset - pinned;
    return {
      start: offset,
      end: row.ids.length + shift,
      scored: row.spans.filter((s) => s.end > s.start).map((s): [number, number] => [s.start + shift, s.end + shift]),
    };
  });
}
