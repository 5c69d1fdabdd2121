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

/** A step's four baseline scores (0 for an empty step). */
export function stepBaselines(stats: PositionStats, vocabSize: number): Record<Baseline, number> {
  const n = stats.policy.length;
  if (n === 0) return { mean_logprob: 0, neg_entropy: 0, self_certainty: 0, deepconf: 0 };
  const logV = Math.log(vocabSize);
  const selfCertainty = new Float64Array(n);
  const deepconf = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    selfCertainty[k] = -logV - stats.meanLogprob[k];
    deepconf[k] = -stats.topkMeanLogprob[k];
  }
  return {
    mean_logprob: aggregateTokens(stats.policy, 'mean'),
    neg_entropy: -aggregateTokens(stats.entropy, 'mean'),
    self_certainty: aggregateTokens(selfCertainty, 'mean'),
    deepconf: aggregateTokens(deepconf, 'mean'),
  };
}

export type TrajectoryBaseline = Baseline | 'deepconf_tail' | 'deepconf_bottom10';
export const TRAJECTORY_BASELINES: readonly TrajectoryBaseline[] = [...BASELINES, 'deepconf_tail', 'deepconf_bottom10'];

/**
 * A trajectory's baselines from its steps' baselines: token-weighted means for the four
 * per-token scores (all scored tokens of the trajectory count equally, as the papers average
 * over the generated text), plus DeepConf's tail and bottom-10% step groups.
 */
export function trajectoryBaselines(steps: readonly Record<Baseline, number>[], numTokens: readonly number[]): Record<TrajectoryBaseline, number> {
  const out = {} as Record<TrajectoryBaseline, number>;
  const total = numTokens.reduce((a, b) => a + b, 0);
  for (const b of BASELINES) {
    let s = 0;
    for (let i = 0; i < steps.length; i++) s += steps[i][b] * numTokens[i];
    out[b] = total > 0 ? s / total : 0;
  }
  const confidences = steps.filter((_, i) => numTokens[i] > 0).map((s) => s.deepconf);
  out.deepconf_tail = confidences.length ? confidences[confidences.length - 1] : 0;
  out.deepconf_bottom10 = bottomFractionMean(confidences, 0.1);
  return out;
}
