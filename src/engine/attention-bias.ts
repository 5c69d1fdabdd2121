/**
 * onnxruntime-genai's CPU builds (MultiHeadAttention, like the Llama in ../shared/real) turn
 * `attention_mask` into the attention bias with a subgraph that only handles a prompt without
 * past or one new token with past: several new tokens after a past fail in its Expand. With
 * past, the engine feeds that bias itself instead: a graph input `pa_attention_bias`
 * [B, 1, S, P + S], 0 where the key is a real token at or before the query, the type's lowest
 * finite value elsewhere (what the builder's subgraph writes). The bypassed subgraph is removed.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type ModelProto = InstanceType<typeof onnx.ModelProto>;
type GraphProto = InstanceType<typeof onnx.GraphProto>;
type NodeProto = InstanceType<typeof onnx.NodeProto>;

export const BIAS_INPUT = 'pa_attention_bias';
const BIAS_SLOT = 5; // MultiHeadAttention(query, key, value, bias, key_padding_mask, attention_bias, past_key, past_value)

/** Rewires every MultiHeadAttention's attention_bias to the fed input; returns whether it did. */
export function feedAttentionBias(model: ModelProto, elemType: number): boolean {
  const graph = model.graph as GraphProto;
  const mha = (graph.node as NodeProto[]).filter((n) => n.opType === 'MultiHeadAttention' && n.domain === 'com.microsoft');
  if (mha.length === 0) return false;
  const sources = new Set(mha.map((n) => n.input[BIAS_SLOT] ?? ''));
  if (sources.size !== 1 || [...sources][0] === '') return false;
  for (const n of mha) n.input[BIAS_SLOT] = BIAS_INPUT;
  graph.input.push(
    onnx.ValueInfoProto.create({
      name: BIAS_INPUT,
      type: {
        tensorType: {
          elemType,
          shape: { dim: ['batch_size', 1, 'sequence_length', 'total_sequence_length'].map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    }),
  );
  pruneDeadNodes(graph);
  return true;
}

function namesUsedBy(node: NodeProto, into: Set<string>): void {
  for (const i of node.input) if (i) into.add(i);
  for (const a of node.attribute) {
    const graphs = [a.g, ...(a.graphs ?? [])].filter(Boolean) as GraphProto[];
    for (const g of graphs) for (const n of g.node as NodeProto[]) namesUsedBy(n, into);
  }
}

/** Drops nodes none of whose outputs reach a graph output (graph order is topological). */
export function pruneDeadNodes(graph: GraphProto): void {
  const needed = new Set<string>((graph.output as { name: string }[]).map((o) => o.name));
  const nodes = graph.node as NodeProto[];
  const live: boolean[] = new Array(nodes.length).fill(false);
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (nodes[i].output.some((o) => needed.has(o))) {
      live[i] = true;
      namesUsedBy(nodes[i], needed);
    }
  }
  const kept = nodes.filter((_, i) => live[i]);
  nodes.splice(0, nodes.length, ...kept);
}

/** fp16 bits of −65504 and the float32 lowest finite value: what the builder's subgraph writes. */
const LOWEST = { float16: 0xfbff, float32: -3.4028234663852886e38 } as const;

/** The bias of one run (see the file comment), float16 as its bits. */
export function attentionBias(
  type: 'float16' | 'float32',
  rows: number,
  seqLen: number,
  padded: number,
  pastOf: (b: number) => number,
  lengths: Int32Array,
): Float32Array | Uint16Array {
  const T = padded + seqLen;
  const bias = (type === 'float16' ? new Uint16Array(rows * seqLen * T) : new Float32Array(rows * seqLen * T)).fill(LOWEST[type]);
  for (let b = 0; b < rows; b++) {
    const from = padded - pastOf(b);
    for (let i = 0; i < seqLen; i++) {
      // query i sees the real past and the new tokens up to itself (a padding query sees its row's real tokens)
      const last = padded + Math.min(i, Math.max(lengths[b] - 1, 0));
      bias.fill(0, (b * seqLen + i) * T + from, (b * seqLen + i) * T + last + 1);
    }
  }
  return bias;
}
