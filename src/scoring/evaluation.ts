/**
 * Offline evaluation statistics for the paper's three jobs (used by `pa-server eval`).
 * Pure and deterministic: the bootstrap takes a seed.
 */

/** Ranks 1..n with ties given their average rank. */
export function averageRanks(values: readonly number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(values.length);
  let i = 0;
  while (i < order.length) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k][1]] = rank;
    i = j + 1;
  }
  return ranks;
}

/**
 * Area under the ROC curve of `scores` for predicting `labels` (true = positive), via the
 * Mann–Whitney U statistic with ties counted one half. NaN when a class is empty.
 */
export function auroc(scores: readonly number[], labels: readonly boolean[]): number {
  if (scores.length !== labels.length) throw new Error('scores and labels differ in length');
  const ranks = averageRanks(scores);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i]) {
      positives++;
      rankSum += ranks[i];
    }
  }
  const negatives = scores.length - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

function pearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

/** Spearman's rank correlation (Pearson on average ranks). NaN when either side is constant. */
export function spearman(x: readonly number[], y: readonly number[]): number {
  if (x.length !== y.length) throw new Error('x and y differ in length');
  if (x.length < 2) return NaN;
  return pearson(averageRanks(x), averageRanks(y));
}

/** mulberry32: a small seeded PRNG so bootstrap intervals are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Interval {
  estimate: number;
  low: number;
  high: number;
}

/**
 * Percentile bootstrap over groups (tasks): resample `groups` with replacement, recompute
 * `statistic` on the union, report the (1−level)/2 and (1+level)/2 quantiles. Resamples whose
 * statistic is NaN (e.g. one class only) are skipped.
 */
export function bootstrapInterval<G>(
  groups: readonly G[],
  statistic: (sample: readonly G[]) => number,
  options: { resamples?: number; level?: number; seed?: number } = {},
): Interval {
  const { resamples = 1000, level = 0.95, seed = 0 } = options;
  const estimate = statistic(groups);
  const random = seededRandom(seed);
  const values: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const sample = Array.from({ length: groups.length }, () => groups[Math.floor(random() * groups.length)]);
    const v = statistic(sample);
    if (!Number.isNaN(v)) values.push(v);
  }
  if (values.length === 0) return { estimate, low: NaN, high: NaN };
  values.sort((a, b) => a - b);
  const q = (p: number) => values[Math.min(values.length - 1, Math.max(0, Math.floor(p * values.length)))];
  return { estimate, low: q((1 - level) / 2), high: q((1 + level) / 2) };
}

/** Best-of-N: the success of the top-scored candidate (first on ties), per task. */
export function bestOfN(scores: readonly number[], successes: readonly boolean[]): boolean {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return successes[best];
}
