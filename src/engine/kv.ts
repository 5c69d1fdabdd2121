/**
 * The KV-cache inputs and outputs of a with-past export, read from its graph (design §3):
 *
 *   optimum / onnxruntime-genai   past_key_values.{i}.key|value [B, kv_heads, P, head] → present.{i}.key|value
 *   (also `past.{i}.key|value`)   (the merged decoder adds a `use_cache_branch` flag)
 *   GPT-2 (stacked)               past_{i} [2, B, heads, P, head] → present_{i}
 *
 * Every past tensor is seen as [outer…, B, heads…, P, inner…]: `outer` elements before the batch
 * axis (2 for stacked key/value, else 1), `heads` between batch and sequence, `inner` after it.
 * Those sizes are read from a present output of a probe run, so symbolic head dims work too.
 */
export type KvElement = 'float32' | 'float16';
export type KvArray = Float32Array | Uint16Array;

export interface KvTensor {
  past: string;
  present: string;
  type: KvElement;
  /** Axes of the batch and of the (past / total) sequence in the past tensor's shape. */
  batchAxis: number;
  seqAxis: number;
  /** Filled by the probe run (kvLayoutFromPresents). */
  outer: number;
  heads: number;
  inner: number;
}

export interface KvLayout {
  tensors: KvTensor[];
  /** Number of transformer layers (distinct layer indices in the past names). */
  layers: number;
  /** Bytes of key + value of one token over all layers. */
  bytesPerToken: number;
  /**
   * GroupQueryAttention reads the past lengths from the mask's row sums (seqlens_k), which
   * assumes every new token of a row is real: rows with past then run one per forward.
   */
  rowsAlone: boolean;
}

type Meta = { name: string; type?: string; shape?: readonly (number | string)[] };

/** The present output written for a past input, by the naming conventions above. */
export function presentName(past: string): string | null {
  let m = /^past_key_values\.(\d+)\.(key|value)$/.exec(past) ?? /^past\.(\d+)\.(key|value)$/.exec(past);
  if (m) return `present.${m[1]}.${m[2]}`;
  m = /^past_(\d+)$/.exec(past);
  if (m) return `present_${m[1]}`;
  return null;
}

export function isPastInput(name: string): boolean {
  return presentName(name) !== null;
}

const BATCH_DIM = /batch/i;

/**
 * The past/present pairs of a graph, or null when it has no cache to use (no past inputs, or
 * a past without its present output): such exports keep the no-past path.
 */
export function detectKv(inputs: readonly Meta[], outputNames: readonly string[], gqa: boolean): Omit<KvLayout, 'bytesPerToken'> | null {
  const tensors: KvTensor[] = [];
  const layers = new Set<string>();
  for (const meta of inputs) {
    const present = presentName(meta.name);
    if (!present) continue;
    if (!outputNames.includes(present)) return null;
    if (meta.type !== 'float32' && meta.type !== 'float16') return null;
    const shape = meta.shape ?? [];
    const batchAxis = shape.findIndex((d) => typeof d === 'string' && BATCH_DIM.test(d));
    const seqAxis = shape.findIndex((d, i) => i !== batchAxis && typeof d === 'string');
    // [B, heads, P, inner] or [outer, B, heads, P, inner]: one axis at most in each gap.
    if (batchAxis < 0 || batchAxis > 1 || seqAxis <= batchAxis || seqAxis - batchAxis > 2 || shape.length !== seqAxis + 2) return null;
    tensors.push({ past: meta.name, present, type: meta.type, batchAxis, seqAxis, outer: 0, heads: 0, inner: 0 });
    layers.add(/(\d+)/.exec(meta.name)![1]);
  }
  if (tensors.length === 0) return null;
  return { tensors, layers: layers.size, rowsAlone: gqa };
}

/** Completes a layout from the present tensors' dims of a run with batch 1. */
export function kvLayoutFromPresents(base: Omit<KvLayout, 'bytesPerToken'>, dimsOf: (present: string) => readonly number[]): KvLayout {
  let bytesPerToken = 0;
  const tensors = base.tensors.map((t) => {
    const dims = dimsOf(t.present);
    const prod = (a: readonly number[]) => a.reduce((p, d) => p * d, 1);
    const outer = prod(dims.slice(0, t.batchAxis));
    const heads = prod(dims.slice(t.batchAxis + 1, t.seqAxis));
    const inner = prod(dims.slice(t.seqAxis + 1));
    bytesPerToken += outer * heads * inner * (t.type === 'float16' ? 2 : 4);
    return { ...t, outer, heads, inner };
  });
  return { ...base, tensors, bytesPerToken };
}

/** Elements of one token of one row in the tensor (outer × heads × inner). */
export function elementsPerToken(t: Pick<KvTensor, 'outer' | 'heads' | 'inner'>): number {
  return t.outer * t.heads * t.inner;
}

/** The past tensor's dims for `rows` rows of `length` past tokens. */
export function pastDims(t: KvTensor, rows: number, length: number): number[] {
  const dims: number[] = [];
  if (t.batchAxis > 0) dims.push(t.outer);
  dims.push(rows);
  if (t.seqAxis - t.batchAxis > 1) dims.push(t.heads);
  dims.push(length);
  dims.push(t.inner);
  return dims;
}

export function newKvArray(type: KvElement, n: number): KvArray {
  return type === 'float16' ? new Uint16Array(n) : new Float32Array(n);
}
