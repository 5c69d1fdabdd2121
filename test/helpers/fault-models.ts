/**
 * Model directories that are broken on purpose, for the reliability tests. Each one is broken in
 * exactly one way, so the failure the server reports can only come from that fault:
 *
 * - `writeCorruptModel`: a valid tokenizer and config.json beside a model.onnx of random bytes.
 * - `writeBfloat16Model`: a valid ONNX causal LM whose logits output is bfloat16 (Cast at the end).
 * - `writePoisonedModel`: a valid ONNX causal LM whose forward output is NaN or −∞ for chosen
 *   tokens only: logits[b, k, :] = Log(table[ids[b, k]]), with table rows that are positive
 *   everywhere except the poisoned ones (Log of a negative number is NaN, Log(0) is −∞). Any other
 *   input gives finite, closed-form log-probs (log p(j | a) = log table[a][j] − log Σ_v table[a][v]).
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { floatTensor, seededRandom, valueInfo, writeWordLevelTokenizer } from './onnx-fixtures.js';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;


function writeConfig(dir: string, vocab: number): void {
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ model_type: 'fault-fixture', vocab_size: vocab, max_position_embeddings: 256, bos_token_id: 2 }),
  );
}

function writeModel(dir: string, graph: Record<string, unknown>, opset = 17): string {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'progress-advantage-server fault fixture',
    opsetImport: [{ domain: '', version: opset }],
    graph,
  });
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  return file;
}

/** A model directory whose model.onnx is `bytes` random bytes (seeded); returns the ONNX path. */
export function writeCorruptModel(dir: string, vocab = 16, bytes = 4096, seed = 7): string {
  fs.mkdirSync(dir, { recursive: true });
  const rand = seededRandom(seed);
  const garbage = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) garbage[i] = Math.floor(rand() * 256);
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, garbage);
  writeConfig(dir, vocab);
  writeWordLevelTokenizer(dir, vocab);
  return file;
}

/** Gather(identity, ids) → MatMul(W) → Cast(bfloat16) → logits: valid ONNX, bf16 output. Returns the ONNX path. */
export function writeBfloat16Model(dir: string, vocab = 16): string {
  fs.mkdirSync(dir, { recursive: true });
  const identity = new Float32Array(vocab * vocab);
  for (let i = 0; i < vocab; i++) identity[i * vocab + i] = 1;
  const file = writeModel(dir, {
    name: 'bf16-logits',
    node: [
      { opType: 'Gather', name: 'embed', input: ['embedding', 'input_ids'], output: ['hidden'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
      { opType: 'MatMul', name: 'lm_head', input: ['hidden', 'lm_head'], output: ['logits_f32'] },
      { opType: 'Cast', name: 'to_bf16', input: ['logits_f32'], output: ['logits'], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.BFLOAT16 }] },
    ],
    initializer: [floatTensor('embedding', [vocab, vocab], identity), floatTensor('lm_head', [vocab, vocab], identity)],
    input: [valueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']), valueInfo('attention_mask', DataType.INT64, ['batch_size', 'sequence_length'])],
    output: [valueInfo('logits', DataType.BFLOAT16, ['batch_size', 'sequence_length', vocab])],
  });
  writeConfig(dir, vocab);
  writeWordLevelTokenizer(dir, vocab);
  return file;
}

export interface PoisonOptions {
  vocab: number;
  /** Rows (previous-token ids) whose whole logit row is NaN: the next token's log-prob is NaN. */
  nanAfter?: number[];
  /** [a, j]: after token a, token j has probability exactly 0, so its log-prob is −∞. */
  zeroProbability?: [number, number][];
  seed?: number;
}

/**
 * table[a][v] > 0 (uniform in [0.1, 1.1)) except the poisoned entries; logits = Log(table[ids]).
 * Returns the table so tests can compute the finite log-probs in closed form.
 */
export function writePoisonedModel(dir: string, options: PoisonOptions): number[][] {
  const V = options.vocab;
  fs.mkdirSync(dir, { recursive: true });
  const rand = seededRandom(options.seed ?? 3);
  const table = Array.from({ length: V }, () => Array.from({ length: V }, () => Math.fround(0.1 + rand())));
  for (const a of options.nanAfter ?? []) table[a] = table[a].map(() => -1);
  for (const [a, j] of options.zeroProbability ?? []) table[a][j] = 0;
  writeModel(dir, {
    name: 'poisoned',
    node: [
      { opType: 'Gather', name: 'embed', input: ['table', 'input_ids'], output: ['rows'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
      { opType: 'Log', name: 'log', input: ['rows'], output: ['logits'] },
    ],
    initializer: [floatTensor('table', [V, V], Float32Array.from(table.flat()))],
    input: [valueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']), valueInfo('attention_mask', DataType.INT64, ['batch_size', 'sequence_length'])],
    output: [valueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', V])],
  });
  writeConfig(dir, V);
  writeWordLevelTokenizer(dir, V);
  return table;
}

/** log p(ids[k] | ids[k−1]) for k ≥ start under logits = log(table[prev]), in float64. */
export function poisonedLogprobs(table: number[][], ids: number[], start: number): number[] {
  const out: number[] = [];
  for (let k = start; k < ids.length; k++) {
    const row = table[ids[k - 1]];
    out.push(Math.log(row[ids[k]]) - Math.log(row.reduce((a, b) => a + b, 0)));
  }
  return out;
}
