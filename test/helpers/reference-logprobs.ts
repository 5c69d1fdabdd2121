/**
 * The independent side of the engine's exactness tests: run the *unmodified* ONNX model with
 * onnxruntime-node, read its raw `[1, S, V]` logits, and compute float64 log-softmax statistics
 * in plain JS. Shares no code with src/engine.
 */
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

export interface PositionStats {
  /** log p(ids[t+1] | ids[..t]) */
  logprob: number;
  entropy: number;
  meanLogprob: number;
  top20Mean: number;
}

type Meta = { name: string; type: string; shape: (number | string)[] };

/** The unmodified model's raw logits tensor over one unpadded row: all-ones mask, positions 0..n−1, empty past. */
async function runRaw(onnxFile: string, ids: number[]): Promise<ort.Tensor> {
  const externalData = fs
    .readdirSync(path.dirname(onnxFile))
    .filter((f) => /\.onnx[._]data$/.test(f))
    .map((f) => ({ path: f, data: fs.readFileSync(path.join(path.dirname(onnxFile), f)) }));
  const session = await ort.InferenceSession.create(fs.readFileSync(onnxFile), { externalData });
  const n = ids.length;
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of (session as unknown as { inputMetadata: Meta[] }).inputMetadata) {
    const ints = (values: number[]) =>
      m.type === 'int32'
        ? new ort.Tensor('int32', Int32Array.from(values), [1, n])
        : new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, n]);
    if (m.name === 'input_ids') feeds[m.name] = ints(ids);
    else if (m.name === 'attention_mask') feeds[m.name] = ints(ids.map(() => 1));
    else if (m.name === 'position_ids') feeds[m.name] = ints(ids.map((_, i) => i));
    else if (m.name.startsWith('past')) {
      const dims = m.shape.map((d) => (typeof d === 'number' ? d : String(d).includes('batch') ? 1 : 0));
      feeds[m.name] = m.type === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), dims) : new ort.Tensor('float32', new Float32Array(0), dims);
    } else throw new Error(`reference runner cannot feed ${m.name}`);
  }
  const out = await session.run(feeds);
  await session.release();
  return out.logits;
}

/** Row t of a [1, S, V] logits tensor in float64. */
function logitsRow(logits: ort.Tensor, t: number): Float64Array {
  const vocab = logits.dims[2];
  const data = logits.data as Float32Array | Uint16Array;
  const row = new Float64Array(vocab);
  for (let v = 0; v < vocab; v++) {
    const x = data[t * vocab + v];
    row[v] = logits.type === 'float16' ? halfToFloat(x) : x;
  }
  return row;
}

/** Raw logits of one unpadded sequence: all-ones mask, positions 0..n−1, empty past. */
export async function rawLogits(onnxFile: string, ids: number[]): Promise<{ rows: Float64Array[]; vocab: number }> {
  const logits = await runRaw(onnxFile, ids);
  return { rows: ids.map((_, t) => logitsRow(logits, t)), vocab: logits.dims[2] };
}

/** log Σ exp(row), in float64, shifted by the max so nothing overflows. */
export function logsumexp(row: Float64Array): number {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sumExp = 0;
  for (const x of row) sumExp += Math.exp(x - max);
  return max + Math.log(sumExp);
}

/** float64 log-softmax statistics of one logits row. */
export function statsOfRow(row: Float64Array, target: number): PositionStats {
  const lse = logsumexp(row);
  let entropy = 0;
  let sumLogp = 0;
  for (const x of row) {
    const lp = x - lse;
    entropy -= Math.exp(lp) * lp;
    sumLogp += lp;
  }
  const top = Array.from(row).sort((a, b) => b - a).slice(0, Math.min(20, row.length));
  return {
    logprob: row[target] - lse,
    entropy,
    meanLogprob: sumLogp / row.length,
    top20Mean: top.reduce((a, x) => a + x - lse, 0) / top.length,
  };
}

/** Stats at every position t in `positions`, for the token ids[t + 1]. */
export async function referenceStats(onnxFile: string, ids: number[], positions: number[]): Promise<PositionStats[]> {
  const { rows } = await rawLogits(onnxFile, ids);
  return positions.map((t) => statsOfRow(rows[t], ids[t + 1]));
}

/**
 * log p(ids[t+1] | ids[..t]) at the given positions only, from the unmodified model's raw logits
 * over one unpadded row: for long rows at large vocabularies, where converting every logits row
 * (rawLogits) would hold S × V float64s.
 */
export async function logprobsAt(onnxFile: string, ids: number[], positions: number[]): Promise<number[]> {
  const logits = await runRaw(onnxFile, ids);
  return positions.map((t) => {
    const row = logitsRow(logits, t);
    return row[ids[t + 1]] - logsumexp(row);
  });
}
