/**
 * A tiny policy/reference pair written from TypeScript, for `--quick` (the smoke test): the
 * benches must start and write JSON on a machine without Python or torch. The graph is a small
 * embedding + MLP language model that ends in `MatMul(hidden, lm_head) → logits` like the real
 * exports, so the scoring head takes the same gather-before-LM-head path. Not for timing claims.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { rng } from './common.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

function tensor(name: string, dims: number[], values: Float32Array) {
  return onnx.TensorProto.create({ name, dataType: FLOAT, dims, rawData: new Uint8Array(values.buffer) });
}

function valueInfo(name: string, elemType: number, dims: (string | number)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({
          dim: dims.map((d) =>
            typeof d === 'number' ? onnx.TensorShapeProto.Dimension.create({ dimValue: d }) : onnx.TensorShapeProto.Dimension.create({ dimParam: d }),
          ),
        }),
      }),
    }),
  });
}

function node(opType: string, input: string[], output: string[]) {
  return onnx.NodeProto.create({ opType, name: output[0], input, output });
}

export interface TinyWeights {
  embed: Float32Array;
  positions: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  lmHead: Float32Array;
}

function randomWeights(vocab: number, hidden: number, maxPositions: number, seed: number): TinyWeights {
  const next = rng(seed);
  // Sum of uniforms ≈ normal; scale keeps logits O(1).
  const gauss = () => (next() + next() + next() - 1.5) * 2;
  const fill = (n: number, std: number) => Float32Array.from({ length: n }, () => gauss() * std);
  return {
    embed: fill(vocab * hidden, 0.5),
    positions: fill(maxPositions * hidden, 0.1),
    w1: fill(hidden * 4 * hidden, 1 / Math.sqrt(hidden)),
    w2: fill(4 * hidden * hidden, 1 / Math.sqrt(4 * hidden)),
    lmHead: fill(hidden * vocab, 1 / Math.sqrt(hidden)),
  };
}

function perturb(w: TinyWeights, noise: number, seed: number): TinyWeights {
  const next = rng(seed);
  const jitter = (a: Float32Array) => a.map((v) => v + (next() - 0.5) * 2 * noise * Math.abs(v));
  return { embed: jitter(w.embed), positions: jitter(w.positions), w1: jitter(w.w1), w2: jitter(w.w2), lmHead: jitter(w.lmHead) };
}

function buildModel(w: TinyWeights, vocab: number, hidden: number, maxPositions: number): Uint8Array {
  const graph = onnx.GraphProto.create({
    name: 'tiny_lm',
    input: [valueInfo('input_ids', INT64, ['batch_size', 'sequence_length']), valueInfo('position_ids', INT64, ['batch_size', 'sequence_length'])],
    output: [valueInfo('logits', FLOAT, ['batch_size', 'sequence_length', vocab])],
    initializer: [
      tensor('embed', [vocab, hidden], w.embed),
      tensor('positions', [maxPositions, hidden], w.positions),
      tensor('w1', [hidden, 4 * hidden], w.w1),
      tensor('w2', [4 * hidden, hidden], w.w2),
      tensor('lm_head', [hidden, vocab], w.lmHead),
    ],
    node: [
      node('Gather', ['embed', 'input_ids'], ['tok']),
      node('Gather', ['positions', 'position_ids'], ['pos']),
      node('Add', ['tok', 'pos'], ['x']),
      node('MatMul', ['x', 'w1'], ['up']),
      node('Relu', ['up'], ['act']),
      node('MatMul', ['act', 'w2'], ['down']),
      node('Add', ['x', 'down'], ['hidden']),
      node('MatMul', ['hidden', 'lm_head'], ['logits']),
    ],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'progress-advantage-server bench/lib/tiny-pair.ts',
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 14 })],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** The same side files tools/bench-models/make_pair.py writes: the server loads the folder as-is. */
function writeSideFiles(dir: string, vocab: number, hidden: number, maxPositions: number, beta?: number): void {
  const config: Record<string, unknown> = { model_type: 'tiny-bench-lm', vocab_size: vocab, hidden_size: hidden, max_position_embeddings: maxPositions };
  if (beta !== undefined) config.kl_beta = beta;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 1));
  const vocabMap: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let i = 3; i < vocab; i++) vocabMap[`t${i}`] = i;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab: vocabMap, unk_token: '<unk>' },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', model_max_length: maxPositions }),
  );
}

/** Writes OUT/tiny-v{V}-h{H}/{policy,reference}/ unless present; returns the pair folder. */
export function writeTinyPair(out: string, vocab: number, hidden = 32, maxPositions = 256): string {
  const root = path.join(out, `tiny-v${vocab}-h${hidden}`);
  const done = path.join(root, 'arch.json');
  if (fs.existsSync(done)) return root;
  const policy = randomWeights(vocab, hidden, maxPositions, 7);
  const reference = perturb(policy, 0.05, 11);
  for (const [role, weights] of [['policy', policy], ['reference', reference]] as const) {
    const dir = path.join(root, role);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'model.onnx'), buildModel(weights, vocab, hidden, maxPositions));
    writeSideFiles(dir, vocab, hidden, maxPositions, role === 'policy' ? 1 : undefined);
  }
  // Written last: its presence means the pair is complete.
  fs.writeFileSync(done, JSON.stringify({ name: path.basename(root), vocab, hidden, layers: 1, max_positions: maxPositions }, null, 1));
  return root;
}
