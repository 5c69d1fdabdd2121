/**
 * Confidence baselines from the policy's own distribution at the scored positions (design §1).
 * Every score is oriented so that higher means more confident:
 *   mean_logprob    = mean_k log p(y_k)                         (higher: more likely tokens)
 *   neg_entropy     = −mean_k H(p_k)                            (higher: sharper distributions)
 *   self_certainty  = mean_k KL(U ‖ p_k) = mean_k (−log V − mean_v log p_k,v)
 *   deepconf        = mean_k C_k, C_k = −mean_{top-20} log p_k  (DeepConf token confidence)
 * Trajectory groups for DeepConf: `deepconf_tail` (its last step) and `deepconf_bottom10`
 * (mean of the lowest 10% of step confidences), as DeepConf groups its windows.
 */
import { aggregateTokens } from './tokens.js';
import { bottomFractionMean } from './steps.js';

export const BASELINES = ['mean_logprob', 'neg_entropy', 'self_certainty', 'deepconf'] as const;
export type Baseline = (typeof BASELINES)[number];

export interface PositionStats {
  policy: ArrayLike<number>;
  entropy: ArrayLike<number>;
  meanLogprob: ArrayLike<number>;
  topkMeanLogprob: ArrayLike<number>;
}

/** A step's four baseline scores; null for a step with no scored token (nothing was measured). */
export function stepBaselines(stats: PositionStats, vocabSize: number): Record<Baseline, number> | null {
  const n = stats.policy.length;
  if (n === 0) return null;
  const logV = Math.log(vocabSize);
  const selfCertainty = new Float64Array(n);
  const deepconf = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    selfCertainty[k] = -logV - stats.meanLogprob[k];
    deepconf[k] = -stats.topkMeanLogprob[k];
  }
  return {
    mean_logprob: aggregateTokens(stats.policy, 'mean')!,
    neg_entropy: -aggregateTokens(stats.entropy, 'mean')!,
    self_certainty: aggregateTokens(selfCertainty, 'mean')!,
    deepconf: aggregateTokens(deepconf, 'mean')!,
  };
}

export type TrajectoryBaseline = Baseline | 'deepconf_tail' | 'deepconf_bottom10';
export const TRAJECTORY_BASELINES: readonly TrajectoryBaseline[] = [...BASELINES, 'deepconf_tail', 'deepconf_bottom10'];

/**
 * A trajectory's baselines from its steps' baselines: token-weighted means for the four
 * per-token scores (all scored tokens of the trajectory count equally, as the papers average
 * over the generated text), plus DeepConf's tail and bottom-10% step groups. Steps with no scored
 * token (null) take no part; with none scored, every baseline is null.
 */
export function trajectoryBaselines(
  steps: readonly (Record<Baseline, number> | null)[],
  numTokens: readonly number[],
): Record<TrajectoryBaseline, number | null> {
  const out = {} as Record<TrajectoryBaseline, number | null>;
  const scored = steps.map((s, i) => ({ s, n: numTokens[i] })).filter((x): x is { s: Record<Baseline, number>; n: number } => x.s !== null && x.n > 0);
  const total = scored.reduce((a, x) => a + x.n, 0);
  for (const b of BASELINES) {
    let s = 0;
    for (const x of scored) s += x.s[b] * x.n;
    out[b] = total > 0 ? s / total : null;
  }
  const confidences = scored.map((x) => x.s.deepconf);
  out.deepconf_tail = confidences.length ? confidences[confidences.length - 1] : null;
  out.deepconf_bottom10 = bottomFractionMean(confidences, 0.1);
  return out;
}
