/**
 * Rewrites a causal-LM ONNX graph so a session returns per-position log-probs of given target
 * tokens instead of `[batch, seq, vocab]` logits (design §3, "Scoring head").
 *
 * Added inputs:
 *   pa_gather_index [N]    int64  flat row index b·S + t of every scored position t
 *   pa_targets      [N, 1] int64  the token whose log-prob is read at that position (ids[t + 1])
 * Outputs (all float32):
 *   pa_logprob      [N, 1] log p(target | prefix)
 *   and, with `stats`, the policy's distribution at the same positions:
 *   pa_entropy      [N, 1] −Σ_v p_v log p_v
 *   pa_mean_logprob [N, 1] (1/V) Σ_v log p_v
 *   pa_topk_mean    [N, 1] mean of the top-k log p_v
 *
 * When the logits come from `MatMul(final_hidden, lm_head)` (both real exports and optimum's do),
 * the scored rows of the final hidden state are gathered *before* that MatMul, so the vocabulary
 * projection costs O(scored tokens) instead of O(all tokens). Otherwise the rows of the logits are
 * gathered (same outputs, full projection). Sums over the vocabulary are MatMuls with a constant
 * column, which needs no opset-dependent ReduceSum/axes handling.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type GraphProto = InstanceType<typeof onnx.GraphProto>;
type ValueInfoProto = InstanceType<typeof onnx.ValueInfoProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;

/** Decoded messages always carry their repeated fields as arrays; the generated types do not say so. */
function graphOf(model: ModelProto): GraphProto | undefined {
  return (model.graph ?? undefined) as GraphProto | undefined;
}
const DataType = onnx.TensorProto.DataType;

export const HEAD_INPUTS = { gatherIndex: 'pa_gather_index', targets: 'pa_targets', stats: 'pa_stats' } as const;
export const HEAD_OUTPUTS = {
  logprob: 'pa_logprob',
  entropy: 'pa_entropy',
  meanLogprob: 'pa_mean_logprob',
  topkMean: 'pa_topk_mean',
} as const;

export interface HeadOptions {
  /** Also emit entropy / mean log-prob / top-k mean (the policy's confidence baselines). */
  stats: boolean;
  /** k of the top-k mean (DeepConf uses 20); clamped to the vocabulary size. */
  topK?: number;
  /** Name of the logits output; default `logits`, else the graph's first output. */
  logitsName?: string;
  /** Graph outputs to keep next to the head's (the KV presents of a with-past export). */
  keepOutputs?: readonly string[];
}

export interface HeadInfo {
  /** Whether the scored rows were gathered before the LM-head MatMul. */
  gatherBeforeLmHead: boolean;
  vocabSize: number;
  /** Element type of the original logits (1 = float32, 10 = float16). */
  logitsType: number;
}

const MIN_OPSET = 11; // GatherElements, TopK with K as input

export class UnsupportedModelError extends Error {}

export function defaultOpset(model: ModelProto): number {
  const entry = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry ? Number(entry.version) : 0;
}

function elemType(valueInfo: ValueInfoProto | undefined): number | undefined {
  return valueInfo?.type?.tensorType?.elemType ?? undefined;
}

/** bf16 graph inputs/outputs cannot be fed or read from JS: reject at load (design §3). */
export function assertNoBfloat16Io(model: ModelProto, file: string): void {
  const graph = graphOf(model)!;
  for (const vi of [...graph.input, ...graph.output] as ValueInfoProto[]) {
    if (elemType(vi) === DataType.BFLOAT16) {
      throw new UnsupportedModelError(
        `${file}: ${vi.name} is bfloat16; bf16 inputs/outputs are not supported — export with float16 or float32 I/O`,
      );
    }
  }
}

/** An initializer holding `values` (raw little-endian bytes). */
export function constant(name: string, dataType: number, dims: number[], values: Float32Array | BigInt64Array) {
  return onnx.TensorProto.create({
    name,
    dataType,
    dims,
    rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  });
}

function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, number> = {}): NodeProto {
  return onnx.NodeProto.create({
    opType,
    name: `pa_head/${outputs[0]}`,
    input: inputs,
    output: outputs,
    attribute: Object.entries(attrs).map(([name, i]) =>
      onnx.AttributeProto.create({ name, i, type: onnx.AttributeProto.AttributeType.INT }),
    ),
  });
}

/** A graph input or output of a tensor type; string dims are symbolic. */
export function tensorInput(name: string, dataType: number, dims: (string | number)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: dataType,
        shape: onnx.TensorShapeProto.create({
          dim: dims.map((d) =>
            typeof d === 'number'
              ? onnx.TensorShapeProto.Dimension.create({ dimValue: d })
              : onnx.TensorShapeProto.Dimension.create({ dimParam: d }),
          ),
        }),
      }),
    }),
  });
}

function dimOf(valueInfo: ValueInfoProto | undefined, axis: number): number | undefined {
  const dims = valueInfo?.type?.tensorType?.shape?.dim;
  if (!dims || dims.length === 0) return undefined;
  const d = dims[axis < 0 ? dims.length + axis : axis];
  const v = d?.dimValue != null ? Number(d.dimValue) : 0;
  return v > 0 ? v : undefined;
}

/**
 * Adds the scoring head to `model` in place and makes its outputs the head's outputs only, so
 * ORT neither materialises nor copies the full logits. Returns what was done.
 */
export function addScoringHead(model: ModelProto, file: string, options: HeadOptions): HeadInfo {
  const graph = graphOf(model);
  if (!graph) throw new UnsupportedModelError(`${file}: no graph`);
  const outputsOf = graph.output as ValueInfoProto[];
  const nodes = graph.node as NodeProto[];
  assertNoBfloat16Io(model, file);
  const opset = defaultOpset(model);
  if (opset < MIN_OPSET) {
    throw new UnsupportedModelError(`${file}: opset ${opset} is older than ${MIN_OPSET}; re-export with opset ≥ ${MIN_OPSET}`);
  }
  const logitsName =
    options.logitsName ?? (outputsOf.some((o) => o.name === 'logits') ? 'logits' : outputsOf[0]?.name);
  const logitsInfo = outputsOf.find((o) => o.name === logitsName);
  if (!logitsInfo) throw new UnsupportedModelError(`${file}: no logits output`);
  const logitsType = elemType(logitsInfo) ?? DataType.FLOAT;
  if (logitsType !== DataType.FLOAT && logitsType !== DataType.FLOAT16 && logitsType !== DataType.DOUBLE) {
    throw new UnsupportedModelError(`${file}: logits element type ${logitsType} is not float32/float16/float64`);
  }

  const producer = nodes.find((n) => n.output.includes(logitsName));
  const initializers = new Map((graph.initializer as TensorProto[]).map((t) => [t.name, t]));
  let vocabSize = dimOf(logitsInfo, -1);
  let gatherBeforeLmHead = false;
  const added: NodeProto[] = [];
  const rows = 'pa_head/rows';

  if (producer && producer.opType === 'MatMul' && (!producer.domain || producer.domain === 'ai.onnx')) {
    // logits = MatMul(hidden [B,S,H], W [H,V]): gather hidden rows, then project only those.
    const [hidden, weight] = producer.input;
    const w = initializers.get(weight);
    if (w && w.dims.length === 2) vocabSize = vocabSize ?? Number(w.dims[1]);
    added.push(node('Flatten', [hidden], ['pa_head/hidden_flat'], { axis: 2 }));
    added.push(node('Gather', ['pa_head/hidden_flat', HEAD_INPUTS.gatherIndex], ['pa_head/hidden_rows'], { axis: 0 }));
    added.push(node('MatMul', ['pa_head/hidden_rows', weight], [rows]));
    gatherBeforeLmHead = true;
    // The original projection of every position is dead once logits stop being an output, but
    // ORT still runs it (and holds its [B, S, V] result): measured on a 151,936-vocabulary pair,
    // it was most of the time and memory. Remove it unless another node reads the logits.
    if (!nodes.some((n) => n !== producer && n.input.includes(logitsName))) nodes.splice(nodes.indexOf(producer), 1);
  } else {
    added.push(node('Flatten', [logitsName], ['pa_head/logits_flat'], { axis: 2 }));
    added.push(node('Gather', ['pa_head/logits_flat', HEAD_INPUTS.gatherIndex], [rows], { axis: 0 }));
  }
  if (!vocabSize) {
    throw new UnsupportedModelError(`${file}: cannot tell the vocabulary size from the logits output or the LM head`);
  }

  added.push(node('Cast', [rows], ['pa_head/rows_f32'], { to: DataType.FLOAT }));
  added.push(node('LogSoftmax', ['pa_head/rows_f32'], ['pa_head/logsoftmax'], { axis: 1 }));
  added.push(node('GatherElements', ['pa_head/logsoftmax', HEAD_INPUTS.targets], [HEAD_OUTPUTS.logprob], { axis: 1 }));

  const outputs = [tensorInput(HEAD_OUTPUTS.logprob, DataType.FLOAT, ['pa_rows', 1])];
  if (options.stats) {
    // The statistics sit in an If on the bool input pa_stats: a request that asks for no
    // baselines runs the else branch, which answers empty [0, 1] tensors and costs nothing.
    const k = Math.min(options.topK ?? 20, vocabSize);
    graph.initializer.push(
      constant('pa_head/neg_ones_v', DataType.FLOAT, [vocabSize, 1], new Float32Array(vocabSize).fill(-1)),
      constant('pa_head/inv_v', DataType.FLOAT, [vocabSize, 1], new Float32Array(vocabSize).fill(1 / vocabSize)),
      constant('pa_head/inv_k', DataType.FLOAT, [k, 1], new Float32Array(k).fill(1 / k)),
      constant('pa_head/k', DataType.INT64, [1], BigInt64Array.of(BigInt(k))),
      constant('pa_head/empty', DataType.FLOAT, [0, 1], new Float32Array(0)),
    );
    const statNames = [HEAD_OUTPUTS.entropy, HEAD_OUTPUTS.meanLogprob, HEAD_OUTPUTS.topkMean];
    const inner = statNames.map((n) => `pa_head/${n}_on`);
    const thenNodes = [
      node('Exp', ['pa_head/logsoftmax'], ['pa_head/probs']),
      node('Mul', ['pa_head/probs', 'pa_head/logsoftmax'], ['pa_head/plogp']),
      node('MatMul', ['pa_head/plogp', 'pa_head/neg_ones_v'], [inner[0]]),
      node('MatMul', ['pa_head/logsoftmax', 'pa_head/inv_v'], [inner[1]]),
      node('TopK', ['pa_head/logsoftmax', 'pa_head/k'], ['pa_head/topk_values', 'pa_head/topk_indices'], { axis: 1 }),
      node('MatMul', ['pa_head/topk_values', 'pa_head/inv_k'], [inner[2]]),
    ];
    const elseNodes = statNames.map((n) => node('Identity', ['pa_head/empty'], [`pa_head/${n}_off`]));
    const branch = (name: string, nodes: NodeProto[], outs: string[]) =>
      onnx.GraphProto.create({ name, node: nodes, output: outs.map((o) => tensorInput(o, DataType.FLOAT, ['pa_rows_or_0', 1])) });
    const ifNode = onnx.NodeProto.create({
      opType: 'If',
      name: 'pa_head/stats',
      input: [HEAD_INPUTS.stats],
      output: statNames,
      attribute: [
        onnx.AttributeProto.create({ name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: branch('pa_stats_on', thenNodes, inner) }),
        onnx.AttributeProto.create({
          name: 'else_branch',
          type: onnx.AttributeProto.AttributeType.GRAPH,
          g: branch('pa_stats_off', elseNodes, statNames.map((n) => `pa_head/${n}_off`)),
        }),
      ],
    });
    added.push(ifNode);
    for (const name of statNames) outputs.push(tensorInput(name, DataType.FLOAT, ['pa_rows_or_0', 1]));
    graph.input.push(tensorInput(HEAD_INPUTS.stats, DataType.BOOL, [1]));
  }

  graph.node.push(...added);
  graph.input.push(
    tensorInput(HEAD_INPUTS.gatherIndex, DataType.INT64, ['pa_rows']),
    tensorInput(HEAD_INPUTS.targets, DataType.INT64, ['pa_rows', 1]),
  );
  // Only the head's outputs remain: the full logits (and KV-cache presents) are no longer
  // graph outputs, so nothing of size [B, S, V] is produced for or copied to JS.
  const kept = outputsOf.filter((o) => options.keepOutputs?.includes(o.name!));
  graph.output.splice(0, graph.output.length, ...outputs, ...kept);
  return { gatherBeforeLmHead, vocabSize, logitsType };
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Locations of the external-data files the model's initializers point to (relative paths). */
export function externalDataFiles(model: ModelProto): string[] {
  const files = new Set<string>();
  for (const t of (graphOf(model)?.initializer ?? []) as TensorProto[]) {
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const loc = t.externalData.find((e) => e.key === 'location')?.value ?? undefined;
      if (loc) files.add(loc);
    }
  }
  return [...files];
}

/**
 * Points every large inline initializer at its bytes in the model file instead of copying them:
 * the tensor becomes "external data" in a virtual file `name` whose contents are `file` itself
 * (its raw bytes are views into it after decoding). The re-encoded model is then only the graph,
 * and ORT reads the weights from the one buffer: loading no longer holds the weights three times
 * (file, re-encoded model, ORT's parse), which at a 151,936 vocabulary was most of the peak RSS.
 * Returns how many tensors were moved.
 */
export function externalizeInlineWeights(model: ModelProto, file: Uint8Array, name: string, minBytes = 1024): number {
  let moved = 0;
  for (const t of (graphOf(model)?.initializer ?? []) as TensorProto[]) {
    const raw = t.rawData as Uint8Array | undefined;
    if (!raw || raw.byteLength < minBytes || raw.buffer !== file.buffer) continue;
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) continue;
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [
      onnx.StringStringEntryProto.create({ key: 'location', value: name }),
      onnx.StringStringEntryProto.create({ key: 'offset', value: String(raw.byteOffset - file.byteOffset) }),
      onnx.StringStringEntryProto.create({ key: 'length', value: String(raw.byteLength) }),
    ];
    t.rawData = new Uint8Array(0);
    moved++;
  }
  return moved;
}

