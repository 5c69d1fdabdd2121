/**
 * The one primitive that flows api → text → engine → scoring (design §3).
 *
 * A Sequence is the exact token ids one forward pass sees, plus the spans whose tokens are
 * scored. Token k of a span is scored by the log-prob the model gave it at position k − 1,
 * so a span never starts at 0 (the first token has no context and is never scored).
 */
export interface Span {
  /** Index of the step in the caller's input (message index, segment index, 0 for /v1/score). */
  index: number;
  /** First token of the span, inclusive, as an index into `Sequence.ids`. */
  start: number;
  /** One past the last token of the span. `start === end` when the span was truncated away. */
  end: number;
  role?: string;
  /** The agent that produced the step (Who&When names, OpenAI `name`). */
  name?: string;
  /** True when left-truncation removed this span's tokens; it then scores null (never 0). */
  truncated?: boolean;
  /**
   * long_context "truncate": the step is longer than one pass can score whole, so only its most
   * recent tokens are scored (the last max_length − 1, or − 2 after a BOS, when it ends the sequence).
   */
  partial?: boolean;
}

export interface Sequence {
  ids: number[];
  spans: Span[];
  /** Context tokens dropped from the left to fit the model's max length. */
  truncatedTokens?: number;
  /**
   * Leading tokens (the BOS a tokenization profile adds) that lead every row this sequence is cut
   * into: kept by left truncation, and repeated at the start of every window (long_context "window").
   */
  pinned?: number;
}

/** What the engine returns for one Sequence: one entry per scored token of every span, in span order. */
export interface TokenScores {
  /** log π(y_k | context), float64 copies of the model's float32 values. */
  policy: Float64Array;
  /** log π_ref(y_k | context). */
  reference: Float64Array;
  /**
   * Policy's distribution at the same positions: entropy H(p) in nats. The three statistics are
   * empty unless the request asked for them (ScoreOptions.stats: confidence baselines).
   */
  entropy: Float64Array;
  /** Mean over the full vocabulary of log p_v (Self-Certainty = −log V − this). */
  meanLogprob: Float64Array;
  /** Mean of the top-k (k = 20, or V if smaller) log-probs (DeepConf confidence = −this). */
  topkMeanLogprob: Float64Array;
  /** Tokens of the context whose keys and values came from the prefix cache (usage.cached_tokens). */
  cachedTokens?: number;
}
