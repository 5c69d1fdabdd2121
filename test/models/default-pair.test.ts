/**
 * The embedded default pair (models/gridworld-policy, models/gridworld-reference) loads in
 * onnxruntime-node with optimum's names, is correct under left and right padding, ends in the
 * LM-head MatMul the scoring head relies on, and the two models differ in the direction the
 * progress advantage needs. Inputs are built here from the Node tokenizer and the committed
 * evaluation file; expectations are computed here from the models' own unpadded outputs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { Tokenizer } from '@huggingface/tokenizers';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIRS = {
  policy: path.join(ROOT, 'models', 'gridworld-policy'),
  reference: path.join(ROOT, 'models', 'gridworld-reference'),
};
const readJson = (file: string): any => JSON.parse(fs.readFileSync(file, 'utf8'));

interface Msg {
  role: string;
  content: string;
}
interface EvalRecord {
  messages: Msg[];
  success: boolean;
  first_bad_action: number | null;
  first_bad_message: number | null;
}

const config = readJson(path.join(DIRS.policy, 'config.json'));
const tokConfig = readJson(path.join(DIRS.policy, 'tokenizer_config.json'));
const tok = new Tokenizer(readJson(path.join(DIRS.policy, 'tokenizer.json')), tokConfig);
const BOS = tok.token_to_id(tokConfig.bos_token)!;
const PAD = tok.token_to_id(tokConfig.pad_token)!;
const V: number = config.vocab_size;

/** Plain renderer (design.md §2): BOS + each "[role]: content" message encoded on its own. */
function render(messages: Msg[]): { ids: number[]; spans: [number, number][] } {
  const ids = [BOS];
  const spans: [number, number][] = [];
  messages.forEach((m, i) => {
    const seg = tok.encode(`${i > 0 ? '\n' : ''}[${m.role}]: ${m.content}`, { add_special_tokens: false }).ids;
    spans.push([ids.length, ids.length + seg.length]);
    ids.push(...seg);
  });
  return { ids, spans };
}

const evalRecords: EvalRecord[] = fs
  .readFileSync(path.join(ROOT, 'bench', 'data', 'gridworld-eval.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));

type Session = ort.InferenceSession;
const sessions: Partial<Record<'policy' | 'reference', Session>> = {};

/** Runs a batch of rows padded on `side`; returns per row its logits at real positions ([len][V]). */
async function run(session: Session, rows: number[][], side: 'left' | 'right' | 'none'): Promise<Float32Array[][]> {
  const B = rows.length;
  const S = Math.max(...rows.map((r) => r.length));
  if (side === 'none' && rows.some((r) => r.length !== S)) throw new Error('unpadded rows must have equal length');
  const ids = new BigInt64Array(B * S).fill(BigInt(PAD));
  const mask = new BigInt64Array(B * S);
  const pos = new BigInt64Array(B * S);
  const offsets = rows.map((r) => (side === 'left' ? S - r.length : 0));
  rows.forEach((r, b) => {
    r.forEach((id, k) => {
      ids[b * S + offsets[b] + k] = BigInt(id);
      mask[b * S + offsets[b] + k] = 1n;
    });
    // position_ids = cumsum(mask) - 1, clamped at 0
    let c = 0;
    for (let s = 0; s < S; s++) {
      c += Number(mask[b * S + s]);
      pos[b * S + s] = BigInt(Math.max(0, c - 1));
    }
  });
  const out = await session.run({
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
    position_ids: new ort.Tensor('int64', pos, [B, S]),
  });
  const logits = out.logits;
  expect(logits.type).toBe('float32');
  expect(logits.dims).toEqual([B, S, V]);
  const data = logits.data as Float32Array;
  return rows.map((r, b) =>
    r.map((_, k) => data.subarray((b * S + offsets[b] + k) * V, (b * S + offsets[b] + k + 1) * V)),
  );
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  a.forEach((row, k) => row.forEach((x, v) => (m = Math.max(m, Math.abs(x - b[k][v])))));
  return m;
}

function logSoftmax(row: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const x of row) mx = Math.max(mx, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - mx);
  const lse = mx + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

describe('default pair: models/gridworld-policy and models/gridworld-reference', () => {
  beforeAll(async () => {
    for (const [name, dir] of Object.entries(DIRS) as ['policy' | 'reference', string][]) {
      sessions[name] = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), { intraOpNumThreads: 1 });
    }
  });

  it('has config.json, tokenizer files, a model card and stays small', () => {
    for (const dir of Object.values(DIRS)) {
      for (const f of ['model.onnx', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'README.md']) {
        expect(fs.existsSync(path.join(dir, f)), `${dir}/${f}`).toBe(true);
      }
      const bytes = fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
      expect(bytes).toBeLessThan(5 * 1024 * 1024);
      const c = readJson(path.join(dir, 'config.json'));
      for (const k of ['vocab_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings']) {
        expect(Number.isInteger(c[k]) && c[k] > 0, k).toBe(true);
      }
      expect(c.max_position_embeddings).toBeGreaterThanOrEqual(256);
    }
    expect(config.kl_beta).toBeGreaterThan(0);
    expect(readJson(path.join(DIRS.reference, 'config.json')).kl_beta).toBeUndefined();
  });

  it("uses optimum's input and output names", () => {
    for (const s of Object.values(sessions)) {
      expect([...s!.inputNames].sort()).toEqual(['attention_mask', 'input_ids', 'position_ids']);
      expect([...s!.outputNames]).toEqual(['logits']);
    }
  });

  it('ends in MatMul(final_hidden, W) -> logits with a [hidden, vocab] weight', () => {
    for (const dir of Object.values(DIRS)) {
      const model = onnxProto.onnx.ModelProto.decode(fs.readFileSync(path.join(dir, 'model.onnx')));
      const graph = model.graph!;
      const producer = graph.node!.find((n) => (n.output ?? []).includes('logits'))!;
      expect(producer.opType).toBe('MatMul');
      const w = graph.initializer!.find((t) => t.name === producer.input![1]);
      expect(w, 'LM-head weight is an initializer').toBeDefined();
      expect((w!.dims ?? []).map(Number)).toEqual([config.hidden_size, V]);
    }
  });

  // three rows of different lengths: the longest of the first 20 episodes, and prefixes of two others
  const rowsFrom = (): number[][] => {
    const longest = evalRecords.slice(0, 20).reduce((a, r) => (r.messages.length > a.messages.length ? r : a));
    return [render(longest.messages).ids, render(evalRecords[1].messages).ids.slice(0, 41), render(evalRecords[2].messages).ids.slice(0, 77)];
  };

  it('gives the same logits at real positions with left, right and no padding (1e-5)', async () => {
    const rows = rowsFrom();
    expect(new Set(rows.map((r) => r.length)).size).toBe(3);
    for (const s of Object.values(sessions)) {
      const alone = await Promise.all(rows.map(async (r) => (await run(s!, [r], 'none'))[0]));
      const left = await run(s!, rows, 'left');
      const right = await run(s!, rows, 'right');
      rows.forEach((_, b) => {
        expect(maxAbsDiff(left[b], alone[b])).toBeLessThan(1e-5);
        expect(maxAbsDiff(right[b], alone[b])).toBeLessThan(1e-5);
      });
      for (const row of left.flat()) expect(row.every(Number.isFinite)).toBe(true);
    }
  });

  it('policy and reference differ', async () => {
    const r = render(evalRecords[0].messages).ids;
    const [p] = await run(sessions.policy!, [r], 'none');
    const [q] = await run(sessions.reference!, [r], 'none');
    expect(maxAbsDiff(p, q)).toBeGreaterThan(0.1);
  });

  it('separates steps: the first bad action scores below the good actions before it', async () => {
    // progress advantage of a step (up to beta): sum over its span, prefix included, of
    // log pi(y_k) - log pi_ref(y_k), token k read at position k - 1
    const good: number[] = [];
    const bad: number[] = [];
    const recs = evalRecords.filter((r) => r.first_bad_message !== null).slice(0, 60);
    expect(recs.length).toBeGreaterThan(20);
    for (const rec of recs) {
      const { ids, spans } = render(rec.messages);
      const [p] = await run(sessions.policy!, [ids], 'none');
      const [q] = await run(sessions.reference!, [ids], 'none');
      rec.messages.forEach((m, i) => {
        if (m.role !== 'assistant' || i > rec.first_bad_message!) return;
        let a = 0;
        for (let k = spans[i][0]; k < spans[i][1]; k++) a += logSoftmax(p[k - 1])[ids[k]] - logSoftmax(q[k - 1])[ids[k]];
        (i === rec.first_bad_message ? bad : good).push(a);
      });
    }
    const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(good.length).toBeGreaterThan(10);
    expect(mean(bad)).toBeLessThan(mean(good));
    expect(mean(bad)).toBeLessThan(0);
  });
});
