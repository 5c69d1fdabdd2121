import { describe, expect, it } from 'vitest';
import { stepBaselines, trajectoryBaselines } from '../../src/scoring/index.js';

/** Closed form from one explicit distribution, computed here independently of the engine. */
function statsOf(p: number[], chosen: number, k: number) {
  const logp = p.map(Math.log);
  const entropy = -p.reduce((s, x) => s + x * Math.log(x), 0);
  const meanLogprob = logp.reduce((s, x) => s + x, 0) / p.length;
  const topk = [...logp].sort((a, b) => b - a).slice(0, k);
  return { lp: logp[chosen], entropy, meanLogprob, topk: topk.reduce((s, x) => s + x, 0) / topk.length };
}

describe('confidence baselines', () => {
  it('match their definitions on a uniform and a peaked distribution', () => {
    const V = 4;
    const u = statsOf([0.25, 0.25, 0.25, 0.25], 1, 20);
    const peaked = statsOf([0.7, 0.1, 0.1, 0.1], 0, 20);
    const b = stepBaselines(
      {
        policy: [u.lp, peaked.lp],
        entropy: [u.entropy, peaked.entropy],
        meanLogprob: [u.meanLogprob, peaked.meanLogprob],
        topkMeanLogprob: [u.topk, peaked.topk],
      },
      V,
    );
    // Self-certainty of the uniform distribution is KL(U‖U) = 0.
    const scPeaked = -Math.log(V) - (Math.log(0.7) + 3 * Math.log(0.1)) / 4;
    expect(b!.self_certainty).toBeCloseTo((0 + scPeaked) / 2, 12);
    expect(b!.mean_logprob).toBeCloseTo((Math.log(0.25) + Math.log(0.7)) / 2, 12);
    expect(b!.neg_entropy).toBeCloseTo(-(Math.log(4) + -(0.7 * Math.log(0.7) + 3 * 0.1 * Math.log(0.1))) / 2, 12);
    // k = 20 > V: top-k is the whole vocabulary, so C = −mean log p.
    expect(b!.deepconf).toBeCloseTo(-(u.meanLogprob + peaked.meanLogprob) / 2, 12);
  });

  it('the peaked distribution is more confident under every baseline', () => {
    const one = (p: number[]) => {
      const s = statsOf(p, 0, 2);
      return stepBaselines({ policy: [s.lp], entropy: [s.entropy], meanLogprob: [s.meanLogprob], topkMeanLogprob: [s.topk] }, p.length);
    };
    const flat = one([0.25, 0.25, 0.25, 0.25]);
    const sharp = one([0.85, 0.05, 0.05, 0.05]);
    for (const key of ['mean_logprob', 'neg_entropy', 'self_certainty', 'deepconf'] as const) {
      expect(sharp![key], key).toBeGreaterThan(flat![key]);
    }
  });

  it('trajectory baselines weight steps by tokens and group DeepConf by tail and bottom 10%', () => {
    const s = (x: number) => ({ mean_logprob: x, neg_entropy: x, self_certainty: x, deepconf: x });
    const t = trajectoryBaselines([s(1), s(4), s(2)], [1, 2, 1]);
    expect(t.mean_logprob).toBeCloseTo((1 + 8 + 2) / 4, 14);
    expect(t.deepconf_tail).toBe(2);
    expect(t.deepconf_bottom10).toBe(1);
  });

  it('a step with no scored token has null baselines and takes no part; none scored gives nulls', () => {
    const none = { policy: [], entropy: [], meanLogprob: [], topkMeanLogprob: [] };
    expect(stepBaselines(none, 4)).toBeNull();
    const s = (x: number) => ({ mean_logprob: x, neg_entropy: x, self_certainty: x, deepconf: x });
    // (1·1 + 2·2) / 3; the tail is the last scored step, not the unscored one after it.
    const t = trajectoryBaselines([s(1), null, s(2), null], [1, 0, 2, 0]);
    expect(t.mean_logprob).toBeCloseTo(5 / 3, 14);
    expect(t.deepconf_tail).toBe(2);
    expect(trajectoryBaselines([null, null], [0, 0])).toEqual({
      mean_logprob: null,
      neg_entropy: null,
      self_certainty: null,
      deepconf: null,
      deepconf_tail: null,
      deepconf_bottom10: null,
    });
  });
});
