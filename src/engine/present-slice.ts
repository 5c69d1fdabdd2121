/**
 * Present outputs of the new tokens only. A with-past export's present.{i} holds the past and
 * the new tokens, [.., P + S, ..]; the prefix cache keeps blocks of the new tokens only (the past
 * came out of it), so copying the whole present to JS on every run costs O(context) for nothing.
 * This adds, for each present, `Slice(present, starts = Shape(past)[seqAxis], ends = pa_new_end,
 * axis = seqAxis)` as a graph output `pa_new/<present>`: the run hands back the new tokens' part,
 * and the copy follows the step's own tokens. `pa_new_end` (an int64 [1] input) is where the
 * slice ends in the past + new layout: the past's length plus the new tokens whose blocks are
 * kept (the cache's memory bound limits them per batch), and the past's length alone (nothing
 * copied) when no block is kept. The original present stays inside the graph (attention reads it).
 */
import onnxProto from 'onnx-proto';
import type { KvTensor } from './kv.js';
import { constant, defaultOpset } from './scoring-head.js';

const { onnx } = onnxProto;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
type GraphProto = InstanceType<typeof onnx.GraphProto>;
type ValueInfoProto = InstanceType<typeof onnx.ValueInfoProto>;

export const NEW_PRESENT_PREFIX = 'pa_new/';
/** Graph input: the slices' end along the sequence (past + new layout). */
export const PRESENT_END_INPUT = 'pa_new_end';
const MIN_OPSET = 10; // Slice with starts/ends/axes as inputs

/**
 * Adds the sliced outputs; returns present name → output name, or null (and changes nothing)
 * when the graph's opset is too old for it or a present is not a graph output.
 */
export function sliceNewPresents(model: ModelProto, tensors: readonly Pick<KvTensor, 'past' | 'present' | 'seqAxis'>[]): Map<string, string> | null {
  const graph = model.graph as GraphProto;
  if (defaultOpset(model) < MIN_OPSET) return null;
  const outputs = graph.output as ValueInfoProto[];
  if (!tensors.every((t) => outputs.some((o) => o.name === t.present))) return null;
  const names = new Map<string, string>();
  const INT64 = onnx.TensorProto.DataType.INT64;
  graph.input.push(onnx.ValueInfoProto.create({ name: PRESENT_END_INPUT, type: { tensorType: { elemType: INT64, shape: { dim: [{ dimValue: 1 }] } } } }));
  for (const t of tensors) {
    const out = `${NEW_PRESENT_PREFIX}${t.present}`;
    const axis = `pa_new/axis_${t.seqAxis}`;
    if (!graph.initializer.some((i) => i.name === axis)) graph.initializer.push(constant(axis, INT64, [1], BigInt64Array.of(BigInt(t.seqAxis))));
    graph.node.push(
      onnx.NodeProto.create({ opType: 'Shape', name: `pa_new/shape/${t.past}`, input: [t.past], output: [`pa_new/shape/${t.past}`] }),
      onnx.NodeProto.create({
        opType: 'Gather',
        name: `pa_new/start/${t.past}`,
        input: [`pa_new/shape/${t.past}`, axis],
        output: [`pa_new/start/${t.past}`],
        attribute: [onnx.AttributeProto.create({ name: 'axis', i: 0, type: onnx.AttributeProto.AttributeType.INT })],
      }),
      onnx.NodeProto.create({ opType: 'Slice', name: out, input: [t.present, `pa_new/start/${t.past}`, PRESENT_END_INPUT, axis], output: [out] }),
    );
    const elemType = outputs.find((o) => o.name === t.present)!.type?.tensorType?.elemType;
    outputs.push(onnx.ValueInfoProto.create({ name: out, type: { tensorType: { elemType } } }));
    names.set(t.present, out);
  }
  return names;
}
