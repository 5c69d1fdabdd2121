/**
 * Graph surgery at load time, on the real exports: the head replaces the full-vocabulary
 * projection (no node computes [B, S, V] logits any more), and inline weights are read from the
 * file's own bytes instead of being copied into the re-encoded model.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import onnxProto from 'onnx-proto';
import { resolveModelDir } from '../../src/engine/model-dir.js';
import { addScoringHead, decodeModel, encodeModel, externalizeInlineWeights } from '../../src/engine/scoring-head.js';
import { describeIf, needShared } from '../helpers/shared.js';
import { DIRS } from '../text/real-files.js';

const { onnx } = onnxProto;

describeIf(needShared(import.meta.url, [DIRS.llama, DIRS.tinyGpt2])).each([
  ['tiny-random-LlamaForCausalLM-fp16', DIRS.llama],
  ['tiny-random-gpt2-fp32', DIRS.tinyGpt2],
])('%s', (_name, dir) => {
  const file = resolveModelDir(dir).onnxFile;

  it('drops the original LM-head MatMul: nothing produces the logits any more', () => {
    const model: any = decodeModel(fs.readFileSync(file));
    const before = model.graph!.node.filter((n: any) => n.output.includes('logits'));
    expect(before).toHaveLength(1);
    const info = addScoringHead(model, file, { stats: true });
    expect(info.gatherBeforeLmHead).toBe(true);
    expect(model.graph!.node.some((n: any) => n.output.includes('logits'))).toBe(false);
    expect(model.graph!.output.map((o: any) => o.name)).toEqual(['pa_logprob', 'pa_entropy', 'pa_mean_logprob', 'pa_topk_mean']);
  });

  it('points large inline weights at the file bytes, so the re-encoded model is the graph only', () => {
    const bytes = fs.readFileSync(file);
    const model: any = decodeModel(bytes);
    const inlineBytes = model.graph!.initializer.reduce((n: number, t: any) => n + (t.rawData?.byteLength ?? 0), 0);
    const moved = externalizeInlineWeights(model, bytes, 'w.bin');
    const encoded = encodeModel(model);
    if (inlineBytes > 0) {
      expect(moved).toBeGreaterThan(0);
      expect(encoded.byteLength).toBeLessThan(bytes.byteLength - inlineBytes / 2);
    }
    // Every moved tensor names a slice of the original file holding exactly its old bytes.
    const again: any = decodeModel(bytes);
    const byName = new Map<string, any>(again.graph.initializer.map((t: any) => [t.name, t]));
    for (const t of (decodeModel(encoded) as any).graph.initializer) {
      if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
      const kv = Object.fromEntries(t.externalData.map((e: any) => [e.key, e.value]));
      if (kv.location !== 'w.bin') continue;
      const slice = bytes.subarray(Number(kv.offset), Number(kv.offset) + Number(kv.length));
      expect(Buffer.compare(slice, Buffer.from(byName.get(t.name)!.rawData!))).toBe(0);
    }
  });
});
