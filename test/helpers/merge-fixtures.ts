/**
 * For the merged-reference tests: the independent merge (tools/merge-check/merge_pair.py, numpy,
 * run with /usr/bin/python3 or PA_MERGE_PYTHON) and small fixture graphs on which a merge must
 * be refused: renamed initializers, and weights quantized with DequantizeLinear or MatMulNBits.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { PACKAGE_ROOT } from '../../src/config.js';
import { floatTensor, valueInfo, writeBigramModel, writeWordLevelTokenizer } from './onnx-fixtures.js';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;
type ModelProto = InstanceType<typeof onnx.ModelProto>;

export const PYTHON = process.env.PA_MERGE_PYTHON ?? '/usr/bin/python3';
export const MERGE_SCRIPT = path.join(PACKAGE_ROOT, 'tools', 'merge-check', 'merge_pair.py');
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

/** Whether the interpreter has onnx and numpy (Debian python3-onnx, python3-numpy). */
export const pythonReady = spawnSync(PYTHON, ['-c', 'import onnx, numpy'], { stdio: 'ignore' }).status === 0;

export interface IndependentMerge {
  weights_sha256: string;
  merged_tensors: number;
  tensors: number;
}

export interface MergeArgs {
  policy: string;
  reference: string;
  method: string;
  alpha: number;
  density?: number;
  seed?: number;
  out: string;
  dump?: string;
}

export function independentMerge(a: MergeArgs): IndependentMerge {
  const args = [MERGE_SCRIPT, '--policy', a.policy, '--reference', a.reference, '--method', a.method, '--alpha', String(a.alpha), '--out', a.out];
  if (a.density !== undefined) args.push('--density', String(a.density));
  if (a.seed !== undefined) args.push('--seed', String(a.seed));
  if (a.dump) args.push('--dump', a.dump);
  const run = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`merge_pair.py failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

function readModel(file: string): ModelProto {
  return onnx.ModelProto.decode(fs.readFileSync(file));
}

function writeModel(file: string, model: ModelProto): void {
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
}

/** A bigram model directory whose initializer `from` is called `to` (the graph reads it under the new name). */
export function writeRenamedBigram(dir: string, table: number[][], from: string, to: string): string {
  writeBigramModel(dir, { table });
  const file = path.join(dir, 'model.onnx');
  const model = readModel(file);
  for (const t of model.graph!.initializer!) if (t.name === from) t.name = to;
  for (const n of model.graph!.node!) n.input = n.input!.map((i) => (i === from ? to : i));
  writeModel(file, model);
  return dir;
}

/** Signed int8 quantization of a table with one scale: q = round(x / scale), scale = max|x| / 127. */
function quantizeInt8(table: number[][]): { q: Int8Array; scale: number } {
  const flat = table.flat();
  const scale = Math.max(...flat.map(Math.abs)) / 127;
  return { q: Int8Array.from(flat.map((x) => Math.max(-127, Math.min(127, Math.round(x / scale))))), scale };
}

/**
 * The bigram model with its LM head stored quantized: `dequantize_linear` as int8 + scale
 * (QDQ), `matmul_nbits` as 4-bit blocks in a com.microsoft MatMulNBits node (V must be 16).
 */
export function writeQuantizedBigram(dir: string, table: number[][], kind: 'dequantize_linear' | 'matmul_nbits'): string {
  const V = table.length;
  fs.mkdirSync(dir, { recursive: true });
  const identity = new Float32Array(V * V);
  for (let i = 0; i < V; i++) identity[i * V + i] = 1;
  const initializer = [floatTensor('embedding', [V, V], identity)];
  const node = [
    onnx.NodeProto.create({ opType: 'Gather', name: 'embed', input: ['embedding', 'input_ids'], output: ['hidden'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }),
  ];
  const opsetImport = [{ domain: '', version: 17 }];
  if (kind === 'dequantize_linear') {
    const { q, scale } = quantizeInt8(table);
    initializer.push(
      onnx.TensorProto.create({ name: 'lm_head_q', dataType: DataType.INT8, dims: [V, V], rawData: new Uint8Array(q.buffer) }),
      floatTensor('lm_head_scale', [], Float32Array.of(scale)),
    );
    node.push(onnx.NodeProto.create({ opType: 'DequantizeLinear', name: 'lm_head_dq', input: ['lm_head_q', 'lm_head_scale'], output: ['lm_head'] }));
    node.push(onnx.NodeProto.create({ opType: 'MatMul', name: 'lm_head', input: ['hidden', 'lm_head'], output: ['logits'] }));
  } else {
    if (V !== 16) throw new Error('matmul_nbits fixture needs V = 16 (one 16-element block per column)');
    // B is [N, K/block, block/2]: column n of W (W[k][n] = table[k][n]), 4-bit codes q + 8, two per byte, low nibble first.
    const blob = new Uint8Array(V * 8);
    const scales = new Float32Array(V);
    for (let n = 0; n < V; n++) {
      const column = table.map((row) => row[n]);
      const scale = Math.max(...column.map(Math.abs)) / 7 || 1;
      scales[n] = scale;
      for (let k = 0; k < V; k++) {
        const code = Math.max(0, Math.min(15, Math.round(column[k] / scale) + 8));
        blob[n * 8 + (k >> 1)] |= k & 1 ? code << 4 : code;
      }
    }
    initializer.push(
      onnx.TensorProto.create({ name: 'lm_head_blocks', dataType: DataType.UINT8, dims: [V, 1, 8], rawData: blob }),
      floatTensor('lm_head_scales', [V], scales),
    );
    const int = (name: string, i: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
    node.push(
      onnx.NodeProto.create({
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        name: 'lm_head_nbits',
        input: ['hidden', 'lm_head_blocks', 'lm_head_scales'],
        output: ['logits'],
        attribute: [int('K', V), int('N', V), int('bits', 4), int('block_size', 16)],
      }),
    );
    opsetImport.push({ domain: 'com.microsoft', version: 1 });
  }
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'progress-advantage-server test fixture',
    opsetImport,
    graph: {
      name: 'quantized-bigram',
      node,
      initializer,
      input: [valueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']), valueInfo('attention_mask', DataType.INT64, ['batch_size', 'sequence_length'])],
      output: [valueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', V])],
    },
  });
  writeModel(path.join(dir, 'model.onnx'), model);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'bigram-fixture', vocab_size: V, max_position_embeddings: 512, bos_token_id: 2 }));
  writeWordLevelTokenizer(dir, V);
  return dir;
}
