/**
 * The top-K head variant (for /v1/completions' `logprobs: K`): the scoring head of
 * scoring-head.ts (log-softmax of each gathered position, the target token's log-prob), plus the
 * K largest log-probs of the position's distribution over the whole vocabulary and their token ids.
 *
 * Added outputs, next to pa_logprob [N, 1]:
 *   pa_topk_values  [N, K] float32  the K largest log p_v, in descending order (ONNX TopK, sorted)
 *   pa_topk_indices [N, K] int64    their token ids
 * K is fixed when the graph is built (min(MAX_TOP_K, V)); requests take the first k ≤ K columns.
 */
import onnxProto from 'onnx-proto';
import { addScoringHead, constant, tensorInput, type HeadInfo } from './scoring-head.js';

const { onnx } = onnxProto;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
const DataType = onnx.TensorProto.DataType;

/** The largest `logprobs` OpenAI's completions API allows. */
export const MAX_TOP_K = 20;

export const TOPK_OUTPUTS = { values: 'pa_topk_values', indices: 'pa_topk_indices' } as const;

/** The log-softmax rows scoring-head.ts computes for the gathered positions ([N, V] float32). */
const LOGSOFTMAX = 'pa_head/logsoftmax';

export interface TopKHeadInfo extends HeadInfo {
  topK: number;
}

/** `keepOutputs`: graph outputs kept next to the head's (a with-past export's presents, as scoring-head.ts keeps them). */
export function addTopKHead(model: ModelProto, file: string, k = MAX_TOP_K, keepOutputs: readonly string[] = []): TopKHeadInfo {
  const head = addScoringHead(model, file, { stats: false, keepOutputs });
  const graph = model.graph as InstanceType<typeof onnx.GraphProto>;
  if (!graph.node!.some((n) => (n.output ?? []).includes(LOGSOFTMAX))) {
    throw new Error(`${file}: the scoring head has no ${LOGSOFTMAX} to take the top-K of`);
  }
  const topK = Math.min(k, head.vocabSize);
  const kValue = BigInt64Array.of(BigInt(topK));
  graph.initializer!.push(
    constant('pa_topk/k', DataType.INT64, [1], kValue),
  );
  graph.node!.push(
    onnx.NodeProto.create({
      opType: 'TopK',
      name: 'pa_topk/topk',
      input: [LOGSOFTMAX, 'pa_topk/k'],
      output: [TOPK_OUTPUTS.values, TOPK_OUTPUTS.indices],
      attribute: [
        onnx.AttributeProto.create({ name: 'axis', i: 1, type: onnx.AttributeProto.AttributeType.INT }),
        onnx.AttributeProto.create({ name: 'largest', i: 1, type: onnx.AttributeProto.AttributeType.INT }),
        onnx.AttributeProto.create({ name: 'sorted', i: 1, type: onnx.AttributeProto.AttributeType.INT }),
      ],
    }),
  );
  graph.output!.push(tensorInput(TOPK_OUTPUTS.values, DataType.FLOAT, ['pa_rows', topK]), tensorInput(TOPK_OUTPUTS.indices, DataType.INT64, ['pa_rows', topK]));
  return { ...head, topK };
}
