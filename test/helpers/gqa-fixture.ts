/**
 * A one-layer causal LM built on com.microsoft GroupQueryAttention, the attention of
 * onnxruntime-genai's CUDA builds (ORT runs it on CPU too), wired the way the builder wires it:
 * seqlens_k = ReduceSum(attention_mask) − 1 and total_sequence_length = attention_mask's width,
 * with optimum's past/present names. No rotary, so its log-probs have a plain-JS closed form
 * (`gqaLogprobs`): logits = softmax-attention(embed · Wq, embed · Wk, embed · Wv) · Wo.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { floatTensor, seededRandom, valueInfo } from './onnx-fixtures.js';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;

export interface GqaWeights {
  V: number;
  H: number;
  heads: number;
  kvHeads: number;
  head: number;
  embed: Float32Array; // [V, H]
  wq: Float32Array; // [H, heads·head]
  wk: Float32Array; // [H, kvHeads·head]
  wv: Float32Array;
  wo: Float32Array; // [heads·head, V]
}

export function gqaWeights(seed = 1, V = 40, H = 16, heads = 4, kvHeads = 2, head = 8): GqaWeights {
  const rand = seededRandom(seed);
  const w = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  return { V, H, heads, kvHeads, head, embed: w(V * H, 1), wq: w(H * heads * head, 0.8), wk: w(H * kvHeads * head, 0.8), wv: w(H * kvHeads * head, 1), wo: w(heads * head * V, 1) };
}

const attr = (name: string, i: number) => onnx.AttributeProto.create({ name, i, type: onnx.AttributeProto.AttributeType.INT });

export function writeGqaModel(dir: string, w: GqaWeights): string {
  fs.mkdirSync(dir, { recursive: true });
  const { V, H, heads, kvHeads, head } = w;
  const n = (opType: string, input: string[], output: string[], attribute: InstanceType<typeof onnx.AttributeProto>[] = [], domain = '') =>
    onnx.NodeProto.create({ opType, input, output, attribute, domain, name: output[0] });
  const i64 = (name: string, values: number[]) =>
    onnx.TensorProto.create({ name, dataType: DataType.INT64, dims: [values.length], rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
  const node = [
    n('Gather', ['embed', 'input_ids'], ['x'], [attr('axis', 0)]),
    n('MatMul', ['x', 'wq'], ['q']),
    n('MatMul', ['x', 'wk'], ['k']),
    n('MatMul', ['x', 'wv'], ['v']),
    n('ReduceSum', ['attention_mask', 'axis1'], ['mask_sum'], [attr('keepdims', 0)]),
    n('Sub', ['mask_sum', 'one'], ['seqlens_i64']),
    n('Cast', ['seqlens_i64'], ['seqlens_k'], [attr('to', DataType.INT32)]),
    n('Shape', ['attention_mask'], ['mask_shape']),
    n('Gather', ['mask_shape', 'one_scalar'], ['total_i64'], [attr('axis', 0)]),
    n('Cast', ['total_i64'], ['total_sequence_length'], [attr('to', DataType.INT32)]),
    n('GroupQueryAttention', ['q', 'k', 'v', 'past_key_values.0.key', 'past_key_values.0.value', 'seqlens_k', 'total_sequence_length'], ['attn', 'present.0.key', 'present.0.value'], [attr('num_heads', heads), attr('kv_num_heads', kvHeads)], 'com.microsoft'),
    n('MatMul', ['attn', 'wo'], ['logits']),
  ];
  const one = onnx.TensorProto.create({ name: 'one', dataType: DataType.INT64, dims: [], rawData: new Uint8Array(BigInt64Array.of(1n).buffer) });
  const oneScalar = onnx.TensorProto.create({ name: 'one_scalar', dataType: DataType.INT64, dims: [], rawData: new Uint8Array(BigInt64Array.of(1n).buffer) });
  const past = ['batch_size', kvHeads, 'past_sequence_length', head];
  const present = ['batch_size', kvHeads, 'total_sequence_length', head];
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'progress-advantage-server test fixture (GroupQueryAttention)',
    opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'gqa',
      node,
      initializer: [
        floatTensor('embed', [V, H], w.embed),
        floatTensor('wq', [H, heads * head], w.wq),
        floatTensor('wk', [H, kvHeads * head], w.wk),
        floatTensor('wv', [H, kvHeads * head], w.wv),
        floatTensor('wo', [heads * head, V], w.wo),
        i64('axis1', [1]),
        one,
        oneScalar,
      ],
      input: [
        valueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']),
        valueInfo('attention_mask', DataType.INT64, ['batch_size', 'total_sequence_length']),
        valueInfo('past_key_values.0.key', DataType.FLOAT, past),
        valueInfo('past_key_values.0.value', DataType.FLOAT, past),
      ],
      output: [
        valueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', V]),
        valueInfo('present.0.key', DataType.FLOAT, present),
        valueInfo('present.0.value', DataType.FLOAT, present),
      ],
    },
  });
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'gqa-fixture', vocab_size: V, max_position_embeddings: 512 }));
  return dir;
}

/** log p(ids[t+1] | ids[..t]) for every t, in float64, by the formula in the file comment. */
export function gqaLogprobs(w: GqaWeights, ids: number[]): number[] {
  const { V, H, heads, kvHeads, head } = w;
  const matvec = (x: ArrayLike<number>, m: Float32Array, cols: number) => {
    const out = new Float64Array(cols);
    for (let i = 0; i < x.length; i++) for (let j = 0; j < cols; j++) out[j] += x[i] * m[i * cols + j];
    return out;
  };
  const xs = ids.map((id) => w.embed.subarray(id * H, (id + 1) * H));
  const qs = xs.map((x) => matvec(x, w.wq, heads * head));
  const ks = xs.map((x) => matvec(x, w.wk, kvHeads * head));
  const vs = xs.map((x) => matvec(x, w.wv, kvHeads * head));
  const group = heads / kvHeads;
  const out: number[] = [];
  for (let t = 0; t + 1 < ids.length; t++) {
    const attn = new Float64Array(heads * head);
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const scores = Array.from({ length: t + 1 }, (_, j) => {
        let s = 0;
        for (let d = 0; d < head; d++) s += qs[t][h * head + d] * ks[j][g * head + d];
        return s / Math.sqrt(head);
      });
      const m = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j <= t; j++) for (let d = 0; d < head; d++) attn[h * head + d] += (e[j] / z) * vs[j][g * head + d];
    }
    const logits = matvec(attn, w.wo, V);
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, x) => a + Math.exp(x - m), 0));
    out.push(logits[ids[t + 1]] - lse);
  }
  return out;
}
