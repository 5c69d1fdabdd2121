/**
 * The `reference_merge` setting of a scorer (the weight arithmetic is in merge.ts): which merge,
 * and the checks the config and the CLI apply before anything loads.
 */
export const MERGE_METHODS = ['linear', 'ties', 'dare_linear'] as const;
export type MergeMethod = (typeof MERGE_METHODS)[number];

export interface ReferenceMerge {
  method: MergeMethod;
  /** α ∈ [0, 1]: 0 is the reference, 1 the policy (linear). */
  alpha: number;
  /** ties / dare_linear: the fraction of each tensor's τ kept, in (0, 1]. */
  density?: number;
  /** dare_linear: the mask's seed (default 0). */
  seed?: number;
}

/** The merge a config asks for, or why it is invalid (null when valid). */
export function mergeProblem(m: ReferenceMerge): string | null {
  if (!(MERGE_METHODS as readonly string[]).includes(m.method)) return `method must be one of ${MERGE_METHODS.join(', ')}`;
  if (!(m.alpha >= 0 && m.alpha <= 1)) return `alpha must lie in [0, 1] (got ${m.alpha})`;
  if (m.method === 'linear' && m.density !== undefined) return 'density applies to ties and dare_linear only';
  if (m.method !== 'linear' && m.density === undefined) return `${m.method} needs a density in (0, 1]`;
  if (m.density !== undefined && !(m.density > 0 && m.density <= 1)) return `density must lie in (0, 1] (got ${m.density})`;
  if (m.seed !== undefined && m.method !== 'dare_linear') return 'seed applies to dare_linear only';
  if (m.seed !== undefined && !(Number.isInteger(m.seed) && m.seed >= 0 && m.seed <= 0xffffffff)) return `seed must be an integer in [0, 2^32) (got ${m.seed})`;
  return null;
}

/** `METHOD:ALPHA[:DENSITY]` (the --reference-merge flag). */
export function parseMergeFlag(value: string): ReferenceMerge {
  const parts = value.split(':');
  const [method, alpha, density] = parts;
  if (parts.length < 2 || parts.length > 3 || !(MERGE_METHODS as readonly string[]).includes(method) || !/^\d*\.?\d+(e-?\d+)?$/i.test(alpha) || (density !== undefined && !/^\d*\.?\d+(e-?\d+)?$/i.test(density))) {
    throw new Error(`expected METHOD:ALPHA[:DENSITY] with METHOD one of ${MERGE_METHODS.join(', ')} (e.g. linear:0.5, ties:0.5:0.2), got ${JSON.stringify(value)}`);
  }
  return { method: method as MergeMethod, alpha: Number(alpha), ...(density !== undefined ? { density: Number(density) } : {}) };
}

