/**
 * Merged references π_α (design §3): the reference session's weights replaced, at load time, by
 * a weight-space merge of the policy and the reference, τ = θ_policy − θ_ref per tensor:
 *
 *   linear       α·θ_policy + (1 − α)·θ_ref
 *   ties         θ_ref + α·trim(τ): in each tensor the entries whose |τ| is at least the k-th
 *                largest |τ|, k = max(1, ⌊density·n⌋), the others zero (with one policy, TIES's
 *                sign election keeps every remaining entry)
 *   dare_linear  θ_ref + α·(m ⊙ τ)/density, m ~ Bernoulli(density) from a seeded PRNG
 *
 * Exact arithmetic, so an independent implementation reproduces it bit for bit (tools/merge-check):
 * every operation is one float32 operation, rounded to nearest even: a = f32(α), b = f32(1 − a),
 * τ = p − r; linear r' = a·p + b·r; ties r' = r + a·τ where kept; dare r' = r + a·(τ / f32(density))
 * where m = 1. Entries not kept keep θ_ref as stored. A tensor whose stored values are identical
 * in both graphs is kept as it is (merging a tensor with itself gives itself; this also keeps
 * shared constants such as −∞ masks). Values are read into float32 and stored back in the
 * initializer's own type (float16 stays float16). The DARE mask of a tensor comes from
 * mulberry32 seeded with FNV-1a of "<seed>:<name>", one draw per element in order: m = draw < density.
 *
 * The reference is merged in place in its own in-memory bytes (the buffers the session is built
 * from); the policy's weights are located without loading them (onnx-scan.ts) and read from disk
 * a chunk at a time. Peak memory is the reference's weights plus a few float32 arrays of
 * MERGE_CHUNK elements, whatever the tensor sizes (bench/merge-memory.ts). Nothing is written to disk.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { seededRandom } from '../scoring/evaluation.js';
import { FLOAT, FLOAT16, DOUBLE, BFLOAT16, FLOAT_TYPE_BYTES, fromFloat32, isFloatType, toFloat32 } from './merge-dtypes.js';
import { mergeProblem, type MergeMethod, type ReferenceMerge } from './merge-spec.js';
import { OnnxScanError, scanOnnxFile, type ScannedTensor } from './onnx-scan.js';

export { MERGE_METHODS, mergeProblem, parseMergeFlag, type MergeMethod, type ReferenceMerge } from './merge-spec.js';

const { onnx } = onnxProto;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type GraphProto = InstanceType<typeof onnx.GraphProto>;

/** What the reference session was merged with, for /v1/models and pa_model_info. */
export interface MergeInfo {
  method: MergeMethod;
  alpha: number;
  density: number | null;
  seed: number | null;
  /** The policy file the weights were merged with. */
  policy: string;
  /** sha256 over the merged floating-point initializers: for each, in graph order, its name, a NUL, its stored bytes. */
  weights_sha256: string;
  /** Floating-point initializers, and how many of them differ between the graphs (the others are shared). */
  tensors: number;
  merged_tensors: number;
}

export class MergeError extends Error {}

/** Ops whose weight inputs are quantized blocks or integers: merging them is undefined. */
const QUANTIZED_OPS = new Set([
  'MatMulNBits',
  'MatMulBnb4',
  'GatherBlockQuantized',
  'DequantizeLinear',
  'DynamicQuantizeMatMul',
  'MatMulInteger',
  'MatMulIntegerToFloat',
  'QLinearMatMul',
  'QLinearConv',
  'ConvInteger',
  'QGemm',
  'QAttention',
  'QOrderedMatMul',
  'QMoE',
  'DynamicQuantizeLSTM',
]);
/** Element types that are quantized by construction: float8 variants, int4, uint4, float4. */
const QUANTIZED_TYPES = new Map([
  [17, 'float8e4m3fn'],
  [18, 'float8e4m3fnuz'],
  [19, 'float8e5m2'],
  [20, 'float8e5m2fnuz'],
  [21, 'uint4'],
  [22, 'int4'],
  [23, 'float4e2m1'],
]);
const TYPE_NAMES: Record<number, string> = { [FLOAT]: 'float32', [FLOAT16]: 'float16', [DOUBLE]: 'float64', [BFLOAT16]: 'bfloat16', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool' };
const typeName = (t: number) => TYPE_NAMES[t] ?? QUANTIZED_TYPES.get(t) ?? `type ${t}`;

function quantizedWeight(nodes: readonly { name: string; opType: string; inputs: readonly string[] }[], initializers: ReadonlySet<string>, file: string): string | null {
  for (const n of nodes) {
    if (!QUANTIZED_OPS.has(n.opType)) continue;
    const weight = n.inputs.find((i) => initializers.has(i));
    if (weight !== undefined) {
      return `weight "${weight}" of ${file} is quantized (${n.opType} node "${n.name}"); merging is defined on floating-point weights only — merge the float checkpoints, then quantize`;
    }
  }
  return null;
}

const elementCount = (dims: readonly number[]) => dims.reduce((n, d) => n * d, 1);

/** FNV-1a (32-bit) of a string's UTF-8 bytes. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h >>> 0;
}

/** Elements per step when a tensor is merged: scratch memory is a few float32 arrays of this size. */
export const MERGE_CHUNK = 1 << 18;

/**
 * The k-th largest |x| (k ≥ 1) over the float32 values that `chunks()` yields, exactly, without
 * holding them: the bits of a non-negative float order like the float, so a two-pass radix
 * select over the top and bottom 16 bits finds it. `chunks` is called twice.
 */
export function kthLargestMagnitude(chunks: () => Iterable<Float32Array>, k: number): number {
  const high = new Float64Array(65536);
  for (const c of chunks()) {
    const bits = new Uint32Array(c.buffer, c.byteOffset, c.length);
    for (let i = 0; i < bits.length; i++) high[(bits[i] & 0x7fffffff) >>> 16]++;
  }
  let rest = k;
  let h = 65535;
  for (; h > 0 && rest > high[h]; h--) rest -= high[h];
  const low = new Float64Array(65536);
  for (const c of chunks()) {
    const bits = new Uint32Array(c.buffer, c.byteOffset, c.length);
    for (let i = 0; i < bits.length; i++) {
      const u = bits[i] & 0x7fffffff;
      if (u >>> 16 === h) low[u & 0xffff]++;
    }
  }
  let l = 65535;
  for (; l > 0 && rest > low[l]; l--) rest -= low[l];
  return new Float32Array(Uint32Array.of(((h << 16) | l) >>> 0).buffer)[0];
}

/**
 * Merges one tensor of n elements chunk by chunk: `ref(start, count)` and `pol(start, count)` read
 * float32 values, `write(start, values)` stores merged ones. ties reads τ once more to find its
 * threshold first; dare_linear draws its mask in element order.
 */
function mergeTensor(
  name: string,
  n: number,
  ref: (start: number, count: number) => Float32Array,
  pol: (start: number, count: number) => Float32Array,
  write: (start: number, values: Float32Array) => void,
  merge: ReferenceMerge,
  fail: (why: string) => Error,
): void {
  const a = Math.fround(merge.alpha);
  const b = Math.fround(1 - a);
  const density = merge.density ?? 1;
  const d = Math.fround(density);
  const tauChunks = function* (): Iterable<Float32Array> {
    for (let start = 0; start < n; start += MERGE_CHUNK) {
      const count = Math.min(MERGE_CHUNK, n - start);
      const r = ref(start, count);
      const tau = pol(start, count);
      for (let i = 0; i < count; i++) {
        tau[i] = tau[i] - r[i];
        if (!Number.isFinite(tau[i])) throw fail(`initializer "${name}" holds a non-finite value where the graphs differ`);
      }
      yield tau;
    }
  };
  const threshold = merge.method === 'ties' ? kthLargestMagnitude(tauChunks, Math.max(1, Math.floor(density * n))) : 0;
  const draw = merge.method === 'dare_linear' ? seededRandom(fnv1a32(`${merge.seed ?? 0}:${name}`)) : undefined;
  for (let start = 0; start < n; start += MERGE_CHUNK) {
    const count = Math.min(MERGE_CHUNK, n - start);
    const r = ref(start, count);
    const p = pol(start, count);
    for (let i = 0; i < count; i++) {
      if (!Number.isFinite(r[i]) || !Number.isFinite(p[i])) throw fail(`initializer "${name}" holds a non-finite value where the graphs differ`);
    }
    if (merge.method === 'linear') {
      for (let i = 0; i < count; i++) r[i] = Math.fround(a * p[i]) + Math.fround(b * r[i]);
    } else if (merge.method === 'ties') {
      for (let i = 0; i < count; i++) {
        const tau = Math.fround(p[i] - r[i]);
        if (Math.abs(tau) >= threshold) r[i] = r[i] + Math.fround(a * tau);
      }
    } else {
      for (let i = 0; i < count; i++) if (draw!() < density) r[i] = r[i] + Math.fround(a * Math.fround(Math.fround(p[i] - r[i]) / d));
    }
    write(start, r);
  }
}

// ---------------------------------------------------------------- tensor storage

/** Where a reference tensor's stored bytes live: a view to write in place, or its typed fields. */
function referenceBytes(t: TensorProto, external: ReadonlyMap<string, Uint8Array>, file: string): Uint8Array {
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const entry = (key: string) => t.externalData.find((e) => e.key === key)?.value ?? undefined;
    const location = entry('location')!;
    const data = external.get(location);
    if (!data) throw new MergeError(`${file}: external weights ${location} of ${t.name} are not loaded`);
    const offset = Number(entry('offset') ?? 0);
    const length = Number(entry('length') ?? elementCount(t.dims.map(Number)) * (FLOAT_TYPE_BYTES[t.dataType] ?? 1));
    return data.subarray(offset, offset + length);
  }
  if (t.rawData && t.rawData.length > 0) return t.rawData;
  return typedFieldBytes(t);
}

/** The stored values of a tensor held in typed fields, as its little-endian bytes. */
function typedFieldBytes(t: TensorProto): Uint8Array {
  const n = elementCount(t.dims.map(Number));
  if (t.dataType === FLOAT) return new Uint8Array(Float32Array.from(t.floatData.length ? t.floatData : new Array(n).fill(0)).buffer);
  if (t.dataType === DOUBLE) return new Uint8Array(Float64Array.from(t.doubleData.length ? t.doubleData : new Array(n).fill(0)).buffer);
  if (t.dataType === FLOAT16 || t.dataType === BFLOAT16) return new Uint8Array(Uint16Array.from(t.int32Data.length ? t.int32Data : new Array(n).fill(0)).buffer);
  // Any other type: compared only, never merged; the encoded message (name aside) stands for the values.
  return onnx.TensorProto.encode(onnx.TensorProto.create({ ...t, name: '', docString: '' })).finish();
}

function storeTyped(t: TensorProto, bytes: Uint8Array): void {
  if (t.dataType === FLOAT) t.floatData = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
  else if (t.dataType === DOUBLE) t.doubleData = Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8));
  else t.int32Data = Array.from(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));
}

/** Reads the policy's tensors from disk one at a time. */
class PolicyReader {
  private readonly fds = new Map<string, number>();
  constructor(private readonly file: string) {}

  private fd(location: string): number {
    let fd = this.fds.get(location);
    if (fd === undefined) {
      const full = location === '' ? this.file : path.resolve(path.dirname(this.file), location);
      try {
        fd = fs.openSync(full, 'r');
      } catch (err) {
        throw new MergeError(`${full}: external weights of ${this.file} cannot be read (${(err as Error).message})`);
      }
      this.fds.set(location, fd);
    }
    return fd;
  }

  private read(location: string, offset: number, length: number): Uint8Array {
    const out = Buffer.alloc(length);
    const got = fs.readSync(this.fd(location), out, 0, length, offset);
    if (got !== length) throw new MergeError(`${this.file}: a weight runs past the end of ${location || 'the file'}`);
    return out;
  }

  /** Stored size in bytes. */
  size(t: ScannedTensor): number {
    if (t.external) return t.external.length ?? elementCount(t.dims) * (FLOAT_TYPE_BYTES[t.dataType] ?? 1);
    if (t.raw) return t.raw.length;
    return this.typed(t).byteLength;
  }

  /** `length` stored bytes from byte `start` of the tensor. */
  bytes(t: ScannedTensor, start = 0, length = this.size(t) - start): Uint8Array {
    if (t.external) return this.read(t.external.location, t.external.offset + start, length);
    if (t.raw) return this.read('', t.raw.offset + start, length);
    return this.typed(t).subarray(start, start + length);
  }

  private typedCache: { t: ScannedTensor; bytes: Uint8Array } | undefined;
  /** A tensor held in typed fields (small), as bytes; the last one is kept for its chunks. */
  private typed(t: ScannedTensor): Uint8Array {
    if (this.typedCache?.t !== t) this.typedCache = { t, bytes: typedFieldBytes(t.decoded ?? onnx.TensorProto.create({ dataType: t.dataType, dims: t.dims })) };
    return this.typedCache.bytes;
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function subgraphInitializers(nodes: readonly NodeProto[]): string | null {
  for (const n of nodes) {
    for (const attr of n.attribute) {
      for (const g of [attr.g, ...(attr.graphs ?? [])] as (GraphProto | null | undefined)[]) {
        if (!g) continue;
        if (g.initializer.length > 0) return `node "${n.name}" (${n.opType}) has a subgraph with initializers`;
        const inner = subgraphInitializers(g.node as NodeProto[]);
        if (inner) return inner;
      }
    }
  }
  return null;
}

/**
 * Replaces the floating-point initializers of the decoded `reference` model (read from
 * `referenceFile`, its external-data files in `external`) by their merge with those of
 * `policyFile`, in place. Throws a MergeError with one line naming the first problem.
 */
export function mergeIntoReference(
  reference: ModelProto,
  referenceFile: string,
  external: ReadonlyMap<string, Uint8Array>,
  policyFile: string,
  merge: ReferenceMerge,
): MergeInfo {
  const problem = mergeProblem(merge);
  if (problem) throw new MergeError(`reference_merge: ${problem}`);
  const fail = (why: string) => new MergeError(`cannot merge ${referenceFile} with ${policyFile}: ${why}`);
  let policy;
  try {
    policy = scanOnnxFile(policyFile);
  } catch (err) {
    if (err instanceof OnnxScanError) throw fail(`${policyFile} is not a readable ONNX model (${err.message})`);
    throw new MergeError(`${policyFile}: cannot read (${(err as Error).message})`);
  }
  const graph = reference.graph as GraphProto;
  // Constants the engine's own rewrites added (present-slice.ts; a head's) are not weights.
  const refTensors = (graph.initializer as TensorProto[]).filter((t) => !/^pa_(new|head)\//.test(t.name));
  if (graph.sparseInitializer.length > 0 || policy.sparseInitializers > 0) throw fail('sparse initializers cannot be merged');
  const nested = subgraphInitializers(graph.node as NodeProto[]);
  if (nested) throw fail(`${nested} in ${referenceFile}; only the main graph's initializers can be merged`);

  const policyByName = new Map(policy.initializers.map((t) => [t.name, t]));
  const refNames = new Set(refTensors.map((t) => t.name));
  const missingInPolicy = refTensors.filter((t) => !policyByName.has(t.name));
  const missingInRef = policy.initializers.filter((t) => !refNames.has(t.name));
  if (missingInPolicy.length > 0 || missingInRef.length > 0) {
    const count = missingInPolicy.length + missingInRef.length;
    const first = missingInPolicy[0]
      ? `initializer "${missingInPolicy[0].name}" of the reference is not in the policy`
      : `initializer "${missingInRef[0].name}" of the policy is not in the reference`;
    throw fail(`the graphs differ in initializer names: ${first} (${count} name${count === 1 ? '' : 's'} differ)`);
  }
  const quantized =
    quantizedWeight(
      (graph.node as NodeProto[]).map((n) => ({ name: n.name, opType: n.opType, inputs: n.input })),
      refNames,
      referenceFile,
    ) ?? quantizedWeight(policy.nodes, new Set(policyByName.keys()), policyFile);
  if (quantized) throw fail(quantized);
  for (const t of refTensors) {
    const p = policyByName.get(t.name)!;
    const dims = t.dims.map(Number);
    const qType = QUANTIZED_TYPES.get(t.dataType) ?? QUANTIZED_TYPES.get(p.dataType);
    if (qType) throw fail(`weight "${t.name}" is quantized (${qType}); merging is defined on floating-point weights only`);
    if (p.dataType !== t.dataType) throw fail(`initializer "${t.name}" is ${typeName(p.dataType)} in the policy but ${typeName(t.dataType)} in the reference`);
    if (p.dims.length !== dims.length || p.dims.some((d, i) => d !== dims[i])) {
      throw fail(`initializer "${t.name}" has shape [${p.dims.join(', ')}] in the policy but [${dims.join(', ')}] in the reference`);
    }
  }

  const reader = new PolicyReader(policyFile);
  const digest = crypto.createHash('sha256');
  let tensors = 0;
  let merged = 0;
  try {
    for (const t of refTensors) {
      const pTensor = policyByName.get(t.name)!;
      const refBytes = referenceBytes(t, external, referenceFile);
      const float = isFloatType(t.dataType);
      const size = reader.size(pTensor);
      if (float) {
        const expected = elementCount(pTensor.dims) * FLOAT_TYPE_BYTES[t.dataType];
        if (refBytes.byteLength !== expected || size !== expected) {
          throw fail(`initializer "${t.name}" holds ${refBytes.byteLength === expected ? size : refBytes.byteLength} bytes, not the ${expected} its shape needs`);
        }
      }
      // Identical stored bytes: the tensor is shared and kept (compared a chunk at a time).
      let same = refBytes.byteLength === size;
      const step = MERGE_CHUNK * 4;
      for (let start = 0; same && start < size; start += step) {
        const length = Math.min(step, size - start);
        same = sameBytes(refBytes.subarray(start, start + length), reader.bytes(pTensor, start, length));
      }
      if (!same) {
        if (!float) throw fail(`initializer "${t.name}" (${typeName(t.dataType)}) differs between the graphs; only floating-point weights can be merged`);
        const width = FLOAT_TYPE_BYTES[t.dataType];
        const inPlace = refBytes === t.rawData || t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
        // A tensor in typed fields (small) is merged into a copy and stored back at the end.
        const target = inPlace ? refBytes : Uint8Array.from(refBytes);
        mergeTensor(
          t.name,
          refBytes.byteLength / width,
          (start, count) => toFloat32(target.subarray(start * width, (start + count) * width), t.dataType),
          (start, count) => toFloat32(reader.bytes(pTensor, start * width, count * width), t.dataType),
          (start, values) => fromFloat32(values, t.dataType, target.subarray(start * width, (start + values.length) * width)),
          merge,
          fail,
        );
        if (!inPlace) storeTyped(t, target);
        merged++;
      }
      if (float) {
        tensors++;
        digest.update(Buffer.from(`${t.name}\0`, 'utf8'));
        digest.update(referenceBytes(t, external, referenceFile));
      }
    }
  } finally {
    reader.close();
  }
  return {
    method: merge.method,
    alpha: merge.alpha,
    density: merge.method === 'linear' ? null : merge.density!,
    seed: merge.method === 'dare_linear' ? (merge.seed ?? 0) : null,
    policy: policyFile,
    weights_sha256: digest.digest('hex'),
    tensors,
    merged_tensors: merged,
  };
}
