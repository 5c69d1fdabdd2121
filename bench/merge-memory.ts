/**
 * Peak memory of building a merged reference (engine/merge.ts) against loading the plain
 * reference, each in a fresh process, on a synthetic pair whose weights are two large float32
 * tensors (embedding [V, H] and LM head [H, V]) that differ everywhere. Prints the peaks and the
 * ratios measured in this run; the merge should cost a few chunk-sized scratch arrays, not a
 * copy of the weights (the policy is read from disk tensor by tensor and the reference merged in
 * place).
 *
 *   nice -n 10 npx tsx bench/merge-memory.ts [--vocab 32000] [--hidden 512]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { seededRandom } from '../src/scoring/evaluation.js';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const V = arg('vocab', 32000);
const H = arg('hidden', 512);

function tensor(name: string, dims: number[], seed: number) {
  const rand = seededRandom(seed);
  const values = new Float32Array(dims[0] * dims[1]);
  for (let i = 0; i < values.length; i++) values[i] = (rand() * 2 - 1) * 0.1;
  return onnx.TensorProto.create({ name, dataType: DataType.FLOAT, dims, rawData: new Uint8Array(values.buffer) });
}

function info(name: string, elemType: number, dims: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
}

function writePair(dir: string, seed: number): string {
  fs.mkdirSync(dir, { recursive: true });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'merge-bench',
      node: [
        onnx.NodeProto.create({ opType: 'Gather', name: 'embed', input: ['embedding', 'input_ids'], output: ['hidden'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }),
        onnx.NodeProto.create({ opType: 'MatMul', name: 'lm_head', input: ['hidden', 'lm_head'], output: ['logits'] }),
      ],
      initializer: [tensor('embedding', [V, H], seed), tensor('lm_head', [H, V], seed + 1)],
      input: [info('input_ids', DataType.INT64, ['batch_size', 'sequence_length']), info('attention_mask', DataType.INT64, ['batch_size', 'sequence_length'])],
      output: [info('logits', DataType.FLOAT, ['batch_size', 'sequence_length', V])],
    },
  });
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  return file;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'merge-memory-'));
try {
  const reference = writePair(path.join(tmp, 'reference'), 1);
  const policy = writePair(path.join(tmp, 'policy'), 11);
  const modelMiB = fs.statSync(reference).size / 2 ** 20;
  const probe = (merge: object | null) => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'lib', 'merge-probe.ts'), JSON.stringify({ reference, policy, merge })], { cwd: ROOT, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(run.stderr);
    return JSON.parse(run.stdout.trim().split('\n').pop()!) as { peakRssMiB: number; loadSeconds: number };
  };
  const plain = probe(null);
  const runs = [
    ['plain reference', plain],
    ['linear α=0.5', probe({ method: 'linear', alpha: 0.5 })],
    ['ties α=0.5 density 0.2', probe({ method: 'ties', alpha: 0.5, density: 0.2 })],
    ['dare_linear α=0.5 density 0.3', probe({ method: 'dare_linear', alpha: 0.5, density: 0.3, seed: 0 })],
  ] as const;
  console.log(`merge memory: synthetic float32 pair, vocabulary ${V}, hidden ${H}: ${modelMiB.toFixed(1)} MiB of weights per model (${os.cpus().length} cores)`);
  console.log('load                            peak RSS MiB   ÷ plain   (peak − plain) ÷ model size   load s');
  for (const [name, r] of runs) {
    console.log(
      `${name.padEnd(32)}${r.peakRssMiB.toFixed(0).padStart(12)}   ${(r.peakRssMiB / plain.peakRssMiB).toFixed(2).padStart(7)}   ${((r.peakRssMiB - plain.peakRssMiB) / modelMiB).toFixed(2).padStart(27)}   ${r.loadSeconds.toFixed(1).padStart(6)}`,
    );
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
