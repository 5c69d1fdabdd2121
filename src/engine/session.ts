/**
 * One ONNX causal LM with the scoring head, fed from its own metadata (design §3). Runs inside
 * an engine worker: `session.run()` blocks the calling thread.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import type { EngineBatch, HeadOutputs } from './batch.js';
import { BIAS_INPUT, attentionBias, feedAttentionBias } from './attention-bias.js';
import { detectKv, elementsPerToken, isPastInput, kvLayoutFromPresents, pastDims, type KvLayout } from './kv.js';
import { releaseBuffer } from './buffer-release.js';
import { KvBufferPool } from './kv-pool.js';
import {
  HEAD_INPUTS,
  HEAD_OUTPUTS,
  addScoringHead,
  decodeModel,
  encodeModel,
  externalDataFiles,
  externalizeInlineWeights,
  type HeadInfo,
} from './scoring-head.js';
import { mergeIntoReference, type MergeInfo, type ReferenceMerge } from './merge.js';
import { PRESENT_END_INPUT, sliceNewPresents } from './present-slice.js';
import { TOPK_OUTPUTS, addTopKHead } from './topk-head.js';

export interface SessionSpec {
  onnxFile: string;
  /** Emit the policy's distribution stats as well as the target log-probs. */
  stats: boolean;
  /** The top-K head variant instead (topk-head.ts): target log-probs plus each position's K largest log-probs and ids. */
  topK?: number;
  device: string;
  intraOpThreads: number;
  /** Tokens per prefix-cache block; absent or 0: no cache in this session's worker. */
  blockTokens?: number;
  /** ORT allocator switches (bench/levers.ts measures them); ORT's defaults when absent. */
  memory?: { enableCpuMemArena?: boolean; enableMemPattern?: boolean };
  /** Serve a merge of this model's weights with the policy's instead of its own (merge.ts). */
  merge?: ReferenceMerge & { policyOnnx: string };
}

export interface SessionInfo extends HeadInfo {
  file: string;
  sha256: string;
  inputs: string[];
  /** Execution provider actually used. */
  provider: string;
  /** The export's KV cache (past inputs and present outputs), or null when it has none. */
  kv: KvLayout | null;
  /** Present when the weights are a merge with the policy's. */
  merge?: MergeInfo;
}

/** A past for a run: per row, the tokens already in the feeds (right-aligned in `padded`). */
export interface PastFeed {
  lengths: Int32Array;
  padded: number;
  tensors: Record<string, { data: ArrayBufferView; dims: number[] }>;
}

export interface RunOptions {
  /** Compute the policy's confidence statistics (only in a session loaded with `stats`). */
  stats?: boolean;
  past?: PastFeed;
  /**
   * Also return the presents of this many new tokens (from the past's end on; the blocks to keep
   * in the cache lie in them). A graph without the slice (present-slice.ts) returns them whole.
   */
  presentTokens?: number;
  /**
   * Tokens (rows × length) that one batch's past feed or presents may hold: reused buffers get
   * room up to this, never beyond (the cache's memory bound counts it).
   */
  bufferTokens?: number;
}

export interface RunResult {
  outputs: HeadOutputs;
  /** Keyed by the export's present names; along the sequence they start at `presentStart`. */
  presents?: Record<string, { data: ArrayBufferView; dims: readonly number[] }>;
  /** Index, in the padded past + new layout, of the presents' first token: the padded past when they hold the new tokens only, else 0. */
  presentStart?: number;
  /** Hands the presents' buffers back for reuse and releases onnxruntime's copies: call once their blocks are copied out. */
  releasePresents?: () => void;
}

type InputMeta = { name: string; isTensor: boolean; type?: string; shape?: readonly (number | string)[] };

type ValueInfo = { type?: { tensorType?: { elemType?: number | null; shape?: { dim?: { dimValue?: unknown; dimParam?: string | null }[] | null } | null } | null } | null };

function elemName(elemType: number | null | undefined): string | undefined {
  return elemType === 1 ? 'float32' : elemType === 10 ? 'float16' : undefined;
}

function dimsOf(vi: ValueInfo): (number | string)[] {
  return (vi.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue ?? 0)));
}

export class ModelLoadError extends Error {}

/** Parses `cpu`, `cuda`, `cuda:N`, `auto` into ORT execution providers. */
export function executionProviders(device: string): { providers: ort.InferenceSession.ExecutionProviderConfig[]; name: string }[] {
  const cuda = /^cuda(?::(\d+))?$/.exec(device);
  if (cuda) return [{ providers: [{ name: 'cuda', deviceId: Number(cuda[1] ?? 0) }], name: device }];
  if (device === 'auto') return [...executionProviders('cuda'), ...executionProviders('cpu')];
  if (device === 'cpu') return [{ providers: ['cpu'], name: 'cpu' }];
  throw new ModelLoadError(`unknown device "${device}" (use cpu, cuda, cuda:N or auto)`);
}

function pastTensor(meta: InputMeta, rows: number, past: PastFeed | undefined): ort.Tensor {
  const given = past?.tensors[meta.name];
  if (given) return new ort.Tensor(meta.type === 'float16' ? 'float16' : 'float32', given.data as Float32Array, given.dims);
  return emptyPast(meta, rows);
}

function emptyPast(meta: InputMeta, rows: number): ort.Tensor {
  // [B, kv_heads, 0, head] (optimum) or [2, B, heads, 0, head] (stacked): symbolic dims named
  // like a batch get B, every other symbolic dim (the past length) gets 0.
  const shape = (meta.shape ?? []).map((d) => (typeof d === 'number' && d >= 0 ? d : /batch/i.test(String(d)) ? rows : 0));
  const type = meta.type === 'float16' ? 'float16' : 'float32';
  return new ort.Tensor(type, type === 'float16' ? new Uint16Array(0) : new Float32Array(0), shape);
}

function intTensor(type: string | undefined, values: Int32Array | number[], dims: number[]): ort.Tensor {
  if (type === 'int32') return new ort.Tensor('int32', Int32Array.from(values), dims);
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]);
  return new ort.Tensor('int64', out, dims);
}

export class ScoringSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputs: InputMeta[],
    readonly info: SessionInfo,
    private readonly presentOutputs: readonly { present: string; output: string }[] = [],
    /** The presents come back from the past's end on (the new tokens), not from 0. */
    private readonly presentsNewOnly = false,
  ) {}

  /** The new tokens' presents are fetched into reused buffers (ORT writes them in place). */
  private readonly presentPool = new KvBufferPool();

  static async load(spec: SessionSpec): Promise<ScoringSession> {
    const file = spec.onnxFile;
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw new ModelLoadError(`${file}: cannot read (${(err as Error).message})`);
    }
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    let model;
    try {
      model = decodeModel(bytes);
    } catch (err) {
      throw new ModelLoadError(`${file}: not a valid ONNX model (${(err as Error).message})`);
    }
    const graph = model.graph!;
    const gqa = (graph.node ?? []).some((n) => n.opType === 'GroupQueryAttention');
    const kvBase = detectKv(
      (graph.input ?? []).map((i) => ({ name: i.name!, type: elemName(i.type?.tensorType?.elemType), shape: dimsOf(i as ValueInfo) })),
      (graph.output ?? []).map((o) => o.name!),
      gqa,
    );
    // Several new tokens after a past need the bias fed for genai's MultiHeadAttention graphs.
    if (kvBase) feedAttentionBias(model, kvBase.tensors[0].type === 'float16' ? 10 : 1);
    // The presents come back for the new tokens only (present-slice.ts), where the opset allows.
    const sliced = kvBase ? sliceNewPresents(model, kvBase.tensors) : null;
    const presentOutputs = kvBase ? kvBase.tensors.map((t) => ({ present: t.present, output: sliced?.get(t.present) ?? t.present })) : [];
    let head: HeadInfo;
    try {
      const keepOutputs = presentOutputs.map((p) => p.output);
      head = spec.topK ? addTopKHead(model, file, spec.topK, keepOutputs) : addScoringHead(model, file, { stats: spec.stats, keepOutputs });
    } catch (err) {
      throw new ModelLoadError((err as Error).message);
    }
    // External weights are handed over as buffers: ORT refuses data paths outside the directory
    // of the model it loads, and the rewritten graph is never written into the user's directory.
    const externalData: { path: string; data: Uint8Array }[] = externalDataFiles(model).map((name) => {
      const full = path.resolve(path.dirname(file), name);
      try {
        return { path: name, data: fs.readFileSync(full) };
      } catch (err) {
        throw new ModelLoadError(`${full}: external weights of ${file} cannot be read (${(err as Error).message})`);
      }
    });
    // A merged reference (merge.ts): its weights are replaced in these buffers, in place (the head adds none to a reference).
    let merge: MergeInfo | undefined;
    if (spec.merge) {
      try {
        merge = mergeIntoReference(model, file, new Map(externalData.map((e) => [e.path, e.data])), spec.merge.policyOnnx, spec.merge);
      } catch (err) {
        throw new ModelLoadError((err as Error).message);
      }
    }
    // Large inline weights are read by ORT from the file's own bytes (see externalizeInlineWeights).
    const INLINE = '__pa_inline_weights__.bin';
    if (externalizeInlineWeights(model, bytes, INLINE) > 0) externalData.push({ path: INLINE, data: bytes });
    const rewritten = encodeModel(model);
    let lastError: unknown;
    for (const { providers, name } of executionProviders(spec.device)) {
      try {
        const session = await ort.InferenceSession.create(rewritten, {
          executionProviders: providers,
          intraOpNumThreads: spec.intraOpThreads,
          interOpNumThreads: 1,
          // Memory patterns off by default: on CPU they cost peak RSS (1,690 → 1,064 MiB for one
          // session at vocab 32,000) and bought no speed (bench/RESULTS.md, levers).
          enableMemPattern: false,
          ...spec.memory,
          graphOptimizationLevel: 'all',
          externalData,
        });
        const inputs = (session as unknown as { inputMetadata: InputMeta[] }).inputMetadata;
        const info: SessionInfo = { ...head, file, sha256, inputs: inputs.map((i) => i.name), provider: name, kv: null, ...(merge ? { merge } : {}) };
        const scoring = new ScoringSession(session, inputs, info, presentOutputs, sliced !== null);
        scoring.checkInputs();
        if (kvBase) {
          // The probe's presents give the per-token sizes, whatever the graph's dims are named.
          const { presents } = await scoring.run(probeBatch, { presentTokens: probeBatch.seqLen });
          info.kv = kvLayoutFromPresents(kvBase, (present) => presents![present].dims);
        }
        return scoring;
      } catch (err) {
        lastError = err;
        if (err instanceof ModelLoadError) throw err;
      }
    }
    const message = String((lastError as Error)?.message ?? lastError);
    if (/cuda/i.test(spec.device) && /cuda|libcu|provider/i.test(message)) {
      throw new ModelLoadError(
        `${file}: the CUDA execution provider could not start (${message.split('\n')[0]}). ` +
          'Install the CUDA 12 build of onnxruntime-node (npm run install:cuda after npm ci, or use the CUDA image) ' +
          'with CUDA 12 and cuDNN 9 libraries on the library path, or run with --device cpu / auto.',
      );
    }
    throw new ModelLoadError(`${file}: onnxruntime could not load the model (${message.split('\n')[0]})`);
  }

  /** Fails at load, not at the first request, when the graph wants an input we cannot feed. */
  private checkInputs(): void {
    const unknown = this.inputs.filter((m) => this.feedFor(m, probeBatch) === undefined).map((m) => m.name);
    if (unknown.length > 0) {
      throw new ModelLoadError(`${this.info.file}: cannot feed graph input(s) ${unknown.join(', ')}`);
    }
  }

  /**
   * Feeds of one run. With a past, row b's p_b cached tokens are right-aligned in the padded past
   * P and its new tokens follow at P: the mask is 0 over [0, P − p_b), 1 over the real tokens,
   * 0 over the new tokens' right padding; positions continue at p_b (cumsum(mask) − 1).
   */
  private feedFor(meta: InputMeta, batch: EngineBatch, options: RunOptions = {}): ort.Tensor | undefined {
    const { rows, seqLen } = batch;
    const name = meta.name;
    const past = options.past;
    const P = past?.padded ?? 0;
    const pastOf = (b: number) => past?.lengths[b] ?? 0;
    if (name === 'input_ids') return intTensor(meta.type, batch.ids, [rows, seqLen]);
    if (name === 'attention_mask') {
      const width = P + seqLen;
      const mask = new Int32Array(rows * width);
      for (let b = 0; b < rows; b++) mask.fill(1, b * width + P - pastOf(b), b * width + P + batch.lengths[b]);
      return intTensor(meta.type, mask, [rows, width]);
    }
    if (name === 'position_ids') {
      // cumsum(mask) − 1 with right padding: p..p+len−1, then padding repeats the last position.
      const pos = new Int32Array(rows * seqLen);
      for (let b = 0; b < rows; b++) {
        const p = pastOf(b);
        for (let t = 0; t < seqLen; t++) pos[b * seqLen + t] = p + Math.min(t, Math.max(batch.lengths[b] - 1, 0));
      }
      return intTensor(meta.type, pos, [rows, seqLen]);
    }
    if (name === 'token_type_ids') return intTensor(meta.type, new Int32Array(rows * seqLen), [rows, seqLen]);
    if (isPastInput(name)) return pastTensor(meta, rows, past);
    if (name === BIAS_INPUT) {
      const type = meta.type === 'float16' ? 'float16' : 'float32';
      const bias = attentionBias(type, rows, seqLen, P, pastOf, batch.lengths);
      return new ort.Tensor(type, bias as Float32Array, [rows, 1, seqLen, P + seqLen]);
    }
    if (name === PRESENT_END_INPUT) return intTensor('int64', [P + (options.presentTokens ?? 0)], [1]);
    if (name === 'use_cache_branch') return new ort.Tensor('bool', new Uint8Array([P > 0 ? 1 : 0]), [1]);
    if (name === HEAD_INPUTS.stats) return new ort.Tensor('bool', new Uint8Array([options.stats === false ? 0 : 1]), [1]);
    if (name === 'num_logits_to_keep' || name === 'logits_to_keep') {
      return intTensor(meta.type, [0], (meta.shape ?? []).length === 0 ? [] : [1]);
    }
    if (name === HEAD_INPUTS.gatherIndex) return intTensor('int64', batch.gatherIndex, [batch.gatherIndex.length]);
    if (name === HEAD_INPUTS.targets) return intTensor('int64', batch.targets, [batch.targets.length, 1]);
    return undefined;
  }

  /** Names of the head's outputs in this session (the stats ones only when it was loaded with them). */
  private get headOutputs(): string[] {
    const names: string[] = [HEAD_OUTPUTS.logprob];
    if (this.inputs.some((m) => m.name === HEAD_INPUTS.stats)) names.push(HEAD_OUTPUTS.entropy, HEAD_OUTPUTS.meanLogprob, HEAD_OUTPUTS.topkMean);
    return names;
  }

  async run(batch: EngineBatch, options: RunOptions = {}): Promise<RunResult> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const meta of this.inputs) feeds[meta.name] = this.feedFor(meta, batch, options)!;
    // Only what is needed is fetched: presents only when blocks of them will be kept.
    const fetches = [...this.headOutputs];
    if (this.session.outputNames.includes(TOPK_OUTPUTS.values)) fetches.push(TOPK_OUTPUTS.values, TOPK_OUTPUTS.indices);
    const kv = this.info.kv;
    const E = options.presentTokens ?? 0;
    const presentBuffers =
      E > 0 && this.presentsNewOnly && kv
        ? this.presentPool.take(
            kv.tensors.map((t) => t.type),
            kv.tensors.map((t) => elementsPerToken(t) * batch.rows * E),
            kv.tensors.map((t) => elementsPerToken(t) * (options.bufferTokens ?? Infinity)),
          )
        : null;
    let out: ort.InferenceSession.ReturnType;
    if (presentBuffers && kv) {
      const bound: Record<string, ort.Tensor | null> = Object.fromEntries(fetches.map((name) => [name, null]));
      kv.tensors.forEach((t, i) => {
        bound[this.presentOutputs[i].output] = new ort.Tensor(t.type, presentBuffers.views[i] as Float32Array, pastDims(t, batch.rows, E));
      });
      try {
        out = await this.session.run(feeds, bound);
      } catch (err) {
        this.presentPool.give(presentBuffers.buffers);
        throw err;
      }
    } else {
      if (E > 0) fetches.push(...this.presentOutputs.map((p) => p.output));
      out = await this.session.run(feeds, fetches);
    }
    const read = (name: string) => {
      const t = out[name];
      // The stats branch switched off answers [0, 1] tensors: no statistics, not zeros.
      return t && t.dims[0] !== 0 ? Float32Array.from(t.data as Float32Array) : undefined;
    };
    const indices = out[TOPK_OUTPUTS.indices];
    const outputs: HeadOutputs = {
      logprob: read(HEAD_OUTPUTS.logprob)!,
      entropy: read(HEAD_OUTPUTS.entropy),
      meanLogprob: read(HEAD_OUTPUTS.meanLogprob),
      topkMean: read(HEAD_OUTPUTS.topkMean),
      // Token ids < 2^24 are exact in float32 (the largest vocabularies are ~2^18).
      ...(indices ? { topkValues: read(TOPK_OUTPUTS.values), topkIndices: Float32Array.from(indices.data as BigInt64Array, Number) } : {}),
    };
    if (E === 0) return { outputs };
    // onnxruntime-node hands back a copy even of an output it wrote in place: the presents are
    // read from our buffers and the copies released at once (buffer-release.ts).
    const presents: RunResult['presents'] = {};
    const copies: ArrayBufferLike[] = [];
    this.presentOutputs.forEach(({ present, output }, i) => {
      const copy = out[output].data as ArrayBufferView;
      presents[present] = { data: presentBuffers ? presentBuffers.views[i] : copy, dims: out[output].dims };
      copies.push(copy.buffer);
    });
    if (presentBuffers) for (const c of copies) releaseBuffer(c);
    const release = presentBuffers ? () => this.presentPool.give(presentBuffers.buffers) : () => copies.forEach(releaseBuffer);
    return { outputs, presents, presentStart: this.presentsNewOnly ? (options.past?.padded ?? 0) : 0, releasePresents: release };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A one-row, two-token batch: feeds every input once at load (shape probe) and warms the session. */
export const probeBatch: EngineBatch = {
  rows: 1,
  seqLen: 2,
  ids: Int32Array.of(0, 0),
  lengths: Int32Array.of(2),
  gatherIndex: Int32Array.of(0),
  targets: Int32Array.of(0),
  scored: 1,
};
