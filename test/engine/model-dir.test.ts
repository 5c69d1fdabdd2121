/**
 * Model directories as found on the hub (issue 3): the ONNX file under each conventional name,
 * external weights in `model.onnx_data`, size facts from config.json or genai_config.json, and
 * merged-decoder inputs (`use_cache_branch`, `num_logits_to_keep`) fed by the session wrapper.
 * Every layout is scored and compared with the bigram's closed form; the directory is never
 * written to.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveModelDir } from '../../src/engine/model-dir.js';
import { ScorerEngine } from '../../src/engine/scorer.js';
import { valueInfo, writeBigramModel } from '../helpers/onnx-fixtures.js';
import { logsumexp } from '../helpers/reference-logprobs.js';

const { onnx } = onnxProto;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-model-dir-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const V = 8;
const table = Array.from({ length: V }, (_, a) => Array.from({ length: V }, (_, b) => Math.sin(1 + a * 3.1 + b * 1.7) * 2));
const ids = [2, 5, 3, 7, 4, 6];
const expected = ids.slice(1).map((id, k) => table[ids[k]][id] - logsumexp(Float64Array.from(table[ids[k]])));

function snapshot(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).map((e) => `${e.parentPath ?? ''}/${e.name}:${e.isFile() ? fs.statSync(path.join(e.parentPath ?? dir, e.name)).size : 'dir'}`).sort();
}

async function scoreWith(dir: string): Promise<number[]> {
  const onnxFile = resolveModelDir(dir).onnxFile;
  const before = snapshot(dir);
  const engine = await ScorerEngine.start({
    name: 'layout',
    policyOnnx: onnxFile,
    referenceOnnx: onnxFile,
    device: 'cpu',
    threads: 1,
    batching: { maxBatchTokens: 1024, maxBatchRows: 8, maxQueue: 64, maxWaitMs: 0, maxInflight: 2 },
  });
  try {
    const [scores] = await engine.score([{ ids, spans: [{ index: 0, start: 1, end: ids.length }] }]);
    expect(snapshot(dir)).toEqual(before); // nothing written into the user's directory
    return Array.from(scores.policy);
  } finally {
    await engine.close();
  }
}

function rewrite(file: string, edit: (model: any) => void): void {
  const model: any = onnx.ModelProto.decode(fs.readFileSync(file));
  edit(model);
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
}

describe('model directory layouts', () => {
  it.each(['onnx/model.onnx', 'decoder_model_merged.onnx', 'past.onnx'])('finds and scores %s', async (name) => {
    const dir = path.join(tmp, name.replace(/[/.]/g, '_'));
    writeBigramModel(dir, { table, tokenizer: false });
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.renameSync(path.join(dir, 'model.onnx'), path.join(dir, name));
    expect(resolveModelDir(dir).onnxFile).toBe(path.join(dir, name));
    (await scoreWith(dir)).forEach((v, k) => expect(Math.abs(v - expected[k])).toBeLessThan(1e-5));
  });

  it('reads external weights from model.onnx_data beside the graph', async () => {
    const dir = path.join(tmp, 'external');
    writeBigramModel(dir, { table, tokenizer: false });
    const file = path.join(dir, 'model.onnx');
    rewrite(file, (model) => {
      const head = model.graph.initializer.find((t: any) => t.name === 'lm_head');
      fs.writeFileSync(path.join(dir, 'model.onnx_data'), head.rawData);
      head.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      head.externalData = [
        { key: 'location', value: 'model.onnx_data' },
        { key: 'offset', value: '0' },
        { key: 'length', value: String(head.rawData.byteLength) },
      ];
      head.rawData = new Uint8Array(0);
    });
    (await scoreWith(dir)).forEach((v, k) => expect(Math.abs(v - expected[k])).toBeLessThan(1e-5));
  });

  it('feeds use_cache_branch = false and num_logits_to_keep = 0 to a merged decoder that declares them', async () => {
    const dir = path.join(tmp, 'merged-inputs');
    writeBigramModel(dir, { table, tokenizer: false });
    const file = path.join(dir, 'model.onnx');
    rewrite(file, (model) => {
      // Both inputs take part in the graph (ORT drops inputs nothing reads): logits += 0·cast(input).
      model.graph.input.push(valueInfo('use_cache_branch', onnx.TensorProto.DataType.BOOL, [1]));
      model.graph.input.push(valueInfo('num_logits_to_keep', onnx.TensorProto.DataType.INT64, []));
      const mm = model.graph.node.find((n: any) => n.output.includes('logits'));
      mm.output = ['projected'];
      const nodes = [
        ['Cast', ['use_cache_branch'], ['ucb_f'], { to: onnx.TensorProto.DataType.FLOAT }],
        ['Cast', ['num_logits_to_keep'], ['nlk_f'], { to: onnx.TensorProto.DataType.FLOAT }],
        ['Add', ['ucb_f', 'nlk_f'], ['flags'], null],
        ['Mul', ['flags', 'zero'], ['zeroed'], null],
        ['Add', ['projected', 'zeroed'], ['logits'], null],
      ] as const;
      model.graph.initializer.push(onnx.TensorProto.create({ name: 'zero', dataType: onnx.TensorProto.DataType.FLOAT, dims: [], floatData: [0] }));
      for (const [opType, input, output, to] of nodes) {
        model.graph.node.push(
          onnx.NodeProto.create({ opType, input: [...input], output: [...output], attribute: to ? [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: to.to }] : [] }),
        );
      }
    });
    (await scoreWith(dir)).forEach((v, k) => expect(Math.abs(v - expected[k])).toBeLessThan(1e-5));
  });

  it('takes the file name and context length from genai_config.json, and max positions from config.json', () => {
    const dir = path.join(tmp, 'genai');
    writeBigramModel(dir, { table, tokenizer: false });
    fs.renameSync(path.join(dir, 'model.onnx'), path.join(dir, 'custom-name.onnx'));
    fs.rmSync(path.join(dir, 'config.json'), { force: true });
    fs.writeFileSync(path.join(dir, 'genai_config.json'), JSON.stringify({ model: { context_length: 777, vocab_size: V, decoder: { filename: 'custom-name.onnx' } } }));
    const found = resolveModelDir(dir);
    expect(found.onnxFile).toBe(path.join(dir, 'custom-name.onnx'));
    expect([found.maxPositions, found.vocabSize, found.klBeta]).toEqual([777, V, null]);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ n_positions: 64, vocab_size: V, kl_beta: 0.1 }));
    expect([resolveModelDir(dir).maxPositions, resolveModelDir(dir).klBeta]).toEqual([64, 0.1]);
  });

  it('names the directory when it holds no model', () => {
    const dir = path.join(tmp, 'empty');
    fs.mkdirSync(dir);
    expect(() => resolveModelDir(dir)).toThrow(`${dir}: no ONNX model found`);
    expect(() => resolveModelDir(path.join(tmp, 'missing'))).toThrow('model directory not found');
  });
});
