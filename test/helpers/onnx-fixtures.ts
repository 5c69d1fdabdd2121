/**
 * Model directories for tests, written here so their log-probs are known independently of the
 * engine:
 *
 * - `writeBigramModel`: a hand-built causal LM whose logits at position k depend only on token k
 *   (logits[b, k, :] = table[ids[b, k]]), so log p(y_k | y_<k) = table[y_{k−1}][y_k] −
 *   logsumexp(table[y_{k−1}]) in closed form. The graph ends in `MatMul(hidden, W) → logits`
 *   (hidden = one-hot rows of an identity embedding, W = table), the shape of real exports, so
 *   the engine's gather-before-LM-head path runs; `lmHead: 'add'` appends a zero bias Add after
 *   the MatMul so the graph ends otherwise and the fallback path runs. Comes with config.json and
 *   a WordLevel tokenizer (one word per id) so text requests work too.
 * - `perturbModel`: a copy of a real model directory with every sizeable float weight multiplied
 *   by (1 + scale·u), u uniform in [−1, 1) from a seeded generator: a second, different model
 *   with the same architecture and tokenizer, for non-zero log-ratios. Handles inline and
 *   external-data initializers, float32 and float16. Never writes into the source directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { seededRandom } from '../../src/scoring/evaluation.js';
import { halfToFloat } from './reference-logprobs.js';

const { onnx } = onnxProto;
type TensorProto = InstanceType<typeof onnx.TensorProto>;
const DataType = onnx.TensorProto.DataType;

// A seeded PRNG (mulberry32), shared with the evaluation bootstrap; re-exported for the fault fixtures.
export { seededRandom };

/** A V×V table of logits, uniform in [−spread, spread), rounded to float32 (what the model holds). */
export function randomTable(vocab: number, seed: number, spread = 3): number[][] {
  const rand = seededRandom(seed);
  return Array.from({ length: vocab }, () => Array.from({ length: vocab }, () => Math.fround((rand() * 2 - 1) * spread)));
}

/** Special tokens every fixture vocabulary starts with (ids 0..3). */
export const SPECIAL_TOKENS = ['<pad>', '<unk>', '<bos>', '<eos>'] as const;
export const BOS_ID = 2;

/** Letters-only word for an id ≥ 4 ("wa", "wb", …, "wba", …): one WordLevel token each. */
export function fixtureWord(id: number): string {
  let n = id - SPECIAL_TOKENS.length;
  let s = '';
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  } while (n > 0);
  return 'w' + s;
}

export function fixtureVocabulary(vocab: number): string[] {
  return Array.from({ length: vocab }, (_, id) => (id < SPECIAL_TOKENS.length ? SPECIAL_TOKENS[id] : fixtureWord(id)));
}

export interface BigramOptions {
  /** table[a][b]: the logit of token b after token a; V×V. */
  table: number[][];
  /** 'matmul' (default): the graph ends in MatMul(hidden, W); 'add': MatMul then Add(zero bias). */
  lmHead?: 'matmul' | 'add';
  /** Also declare a position_ids input (unused by the bigram, as in models that ignore it). */
  positionIds?: boolean;
  /** config.json max_position_embeddings (default 512). */
  maxPositions?: number;
  /** config.json kl_beta, when given. */
  klBeta?: number;
  /** Write tokenizer.json + tokenizer_config.json (default true). */
  tokenizer?: boolean;
}

export function floatTensor(name: string, dims: number[], values: Float32Array): TensorProto {
  return onnx.TensorProto.create({
    name,
    dataType: DataType.FLOAT,
    dims,
    rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  });
}

export function valueInfo(name: string, elemType: number, dims: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

/** Writes the bigram model directory; returns its path. */
export function writeBigramModel(dir: string, options: BigramOptions): string {
  const { table } = options;
  const V = table.length;
  if (V < SPECIAL_TOKENS.length + 1 || table.some((row) => row.length !== V)) throw new Error('table must be V×V with V ≥ 5');
  fs.mkdirSync(dir, { recursive: true });

  // hidden = Gather(I_V, ids) is the one-hot row of each token; one-hot · W reproduces W's row
  // exactly in float32 (every other term is an exact zero), so logits == table bit for bit.
  const identity = new Float32Array(V * V);
  for (let i = 0; i < V; i++) identity[i * V + i] = 1;
  const weight = new Float32Array(V * V);
  table.forEach((row, a) => row.forEach((x, b) => (weight[a * V + b] = x)));

  const initializer = [floatTensor('embedding', [V, V], identity), floatTensor('lm_head', [V, V], weight)];
  const node = [
    onnx.NodeProto.create({ opType: 'Gather', name: 'embed', input: ['embedding', 'input_ids'], output: ['hidden'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }),
  ];
  if ((options.lmHead ?? 'matmul') === 'matmul') {
    node.push(onnx.NodeProto.create({ opType: 'MatMul', name: 'lm_head', input: ['hidden', 'lm_head'], output: ['logits'] }));
  } else {
    initializer.push(floatTensor('lm_bias', [V], new Float32Array(V)));
    node.push(onnx.NodeProto.create({ opType: 'MatMul', name: 'lm_head', input: ['hidden', 'lm_head'], output: ['projected'] }));
    node.push(onnx.NodeProto.create({ opType: 'Add', name: 'lm_bias', input: ['projected', 'lm_bias'], output: ['logits'] }));
  }
  const input = [valueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']), valueInfo('attention_mask', DataType.INT64, ['batch_size', 'sequence_length'])];
  if (options.positionIds) input.push(valueInfo('position_ids', DataType.INT64, ['batch_size', 'sequence_length']));

  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'progress-advantage-server test fixture',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'bigram',
      node,
      initializer,
      input,
      output: [valueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', V])],
    },
  });
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());

  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'bigram-fixture',
      vocab_size: V,
      max_position_embeddings: options.maxPositions ?? 512,
      bos_token_id: BOS_ID,
      ...(options.klBeta !== undefined ? { kl_beta: options.klBeta } : {}),
    }),
  );
  if (options.tokenizer ?? true) writeWordLevelTokenizer(dir, V);
  return dir;
}

/** A WordLevel tokenizer whose id i is the word fixtureVocabulary(V)[i]; words split on whitespace. */
export function writeWordLevelTokenizer(dir: string, V: number): void {
  const words = fixtureVocabulary(V);
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, id) => [w, id])), unk_token: '<unk>' },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: '<bos>',
      eos_token: '<eos>',
      pad_token: '<pad>',
      unk_token: '<unk>',
      add_bos_token: true,
      clean_up_tokenization_spaces: false,
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Perturbed copies of real models

export function floatToHalf(value: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

const ONNX_NAMES = ['model.onnx', 'onnx/model.onnx', 'decoder_model_merged.onnx', 'past.onnx'];

export interface PerturbOptions {
  /** Relative size of the multiplicative noise (default 0.1). */
  scale?: number;
  seed?: number;
  /** Initializers with fewer elements are left alone (shape constants, scalars). Default 64. */
  minElements?: number;
}

function elementCount(t: TensorProto): number {
  return t.dims.reduce((n: number, d) => n * Number(d), 1);
}

/** Multiplies each element of a float32 / float16 little-endian byte range in place. */
function perturbBytes(bytes: Uint8Array, dataType: number, noise: () => number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dataType === DataType.FLOAT) {
    for (let o = 0; o + 4 <= bytes.byteLength; o += 4) view.setFloat32(o, view.getFloat32(o, true) * noise(), true);
  } else if (dataType === DataType.FLOAT16) {
    for (let o = 0; o + 2 <= bytes.byteLength; o += 2) view.setUint16(o, floatToHalf(halfToFloat(view.getUint16(o, true)) * noise()), true);
  }
}

/**
 * Copies srcDir to dstDir (every file, sub-folders too) with the float weights perturbed.
 * Returns the number of initializers changed.
 */
export function perturbModel(srcDir: string, dstDir: string, options: PerturbOptions = {}): number {
  const scale = options.scale ?? 0.1;
  const rand = seededRandom(options.seed ?? 1);
  const noise = () => 1 + scale * (rand() * 2 - 1);
  const minElements = options.minElements ?? 64;
  if (path.resolve(dstDir).startsWith(path.resolve(srcDir) + path.sep) || path.resolve(dstDir) === path.resolve(srcDir)) {
    throw new Error('perturbModel: the destination must not be the source directory');
  }
  fs.cpSync(srcDir, dstDir, { recursive: true });
  // Copies of read-only sources are read-only too; the perturbed files are rewritten below.
  for (const f of fs.readdirSync(dstDir, { recursive: true }) as string[]) fs.chmodSync(path.join(dstDir, f), 0o755);

  const onnxName = ONNX_NAMES.find((f) => fs.existsSync(path.join(dstDir, f)));
  if (!onnxName) throw new Error(`perturbModel: no ONNX file in ${srcDir}`);
  const onnxFile = path.join(dstDir, onnxName);
  const model = onnx.ModelProto.decode(fs.readFileSync(onnxFile));
  const externalFiles = new Map<string, Buffer>();
  let changed = 0;
  for (const t of model.graph!.initializer as TensorProto[]) {
    if (t.dataType !== DataType.FLOAT && t.dataType !== DataType.FLOAT16) continue;
    if (elementCount(t) < minElements) continue;
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const entry = (key: string) => t.externalData.find((e) => e.key === key)?.value ?? undefined;
      const location = entry('location')!;
      const offset = Number(entry('offset') ?? 0);
      const elementBytes = t.dataType === DataType.FLOAT ? 4 : 2;
      const length = Number(entry('length') ?? elementCount(t) * elementBytes);
      if (!externalFiles.has(location)) externalFiles.set(location, fs.readFileSync(path.join(path.dirname(onnxFile), location)));
      const data = externalFiles.get(location)!;
      perturbBytes(data.subarray(offset, offset + length), t.dataType, noise);
    } else if (t.rawData && t.rawData.length > 0) {
      const copy = Uint8Array.from(t.rawData);
      perturbBytes(copy, t.dataType, noise);
      t.rawData = copy;
    } else if (t.dataType === DataType.FLOAT && t.floatData.length > 0) {
      t.floatData = t.floatData.map((x) => Math.fround(x * noise()));
    } else if (t.dataType === DataType.FLOAT16 && t.int32Data.length > 0) {
      t.int32Data = t.int32Data.map((h) => floatToHalf(halfToFloat(h) * noise()));
    } else continue;
    changed++;
  }
  for (const [location, data] of externalFiles) fs.writeFileSync(path.join(path.dirname(onnxFile), location), data);
  fs.writeFileSync(onnxFile, onnx.ModelProto.encode(model).finish());
  return changed;
}
