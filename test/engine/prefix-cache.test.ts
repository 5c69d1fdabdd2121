/**
 * The prefix cache is exact: log-probs with it equal a scorer with the cache off (1e-4), on the
 * real with-past exports in ../shared/real/models (GPT-2's stacked past, onnxruntime-genai's
 * MultiHeadAttention Llama in fp16), whatever the cache holds and in any order.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeIf, needShared } from '../helpers/shared.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveModelDir } from '../../src/engine/model-dir.js';
import { BLOCK_TOKENS, BLOCKS_SHARE, ScorerEngine } from '../../src/engine/scorer.js';
import type { Sequence, TokenScores } from '../../src/sequence.js';
import { gqaLogprobs, gqaWeights, writeGqaModel } from '../helpers/gqa-fixture.js';
import { perturbModel, seededRandom } from '../helpers/onnx-fixtures.js';

const REAL = path.resolve(__dirname, '../../../shared/real/models');
const LLAMA = path.join(REAL, 'tiny-random-LlamaForCausalLM-fp16');
const GPT2 = path.join(REAL, 'tiny-random-gpt2-fp32');
const HAVE_SHARED = needShared(import.meta.url, [LLAMA, GPT2]);

const batching = { maxBatchTokens: 2048, maxBatchRows: 16, maxQueue: 1000, maxWaitMs: 0, maxInflight: 2 };

function randomIds(n: number, rand: () => number, lo: number, hi: number): number[] {
  return Array.from({ length: n }, () => lo + Math.floor(rand() * (hi - lo)));
}

/**
 * 50 sequences that share prefixes in many ways: agent-loop chains (each the previous plus a
 * step), candidates of one prompt, nested prompts, exact duplicates, prefixes shorter than a
 * block, and unrelated ones; 1–3 scored spans each.
 */
export function sharingSequences(seed: number, lo: number, hi: number): Sequence[] {
  const rand = seededRandom(seed);
  const out: Sequence[] = [];
  const step = (ctx: number[], n: number): Sequence => {
    const ids = [...ctx, ...randomIds(n, rand, lo, hi)];
    return { ids, spans: [{ index: 0, start: ctx.length, end: ids.length }] };
  };
  // agent loop: 10 calls, each context = previous sequence + an observation
  let ctx = randomIds(40, rand, lo, hi);
  for (let i = 0; i < 10; i++) {
    const s = step(ctx, 5 + Math.floor(rand() * 20));
    out.push(s);
    ctx = [...s.ids, ...randomIds(3 + Math.floor(rand() * 30), rand, lo, hi)];
  }
  // 12 candidates of one 70-token prompt
  const prompt = randomIds(70, rand, lo, hi);
  for (let i = 0; i < 12; i++) out.push(step(prompt, 3 + Math.floor(rand() * 25)));
  // nested prompts: prefixes of one long text, scored at different points
  const text = randomIds(120, rand, lo, hi);
  for (let i = 0; i < 10; i++) out.push(step(text.slice(0, 10 + i * 11), 4 + i));
  // two spans each, sharing the first 33 tokens
  const head = randomIds(33, rand, lo, hi);
  for (let i = 0; i < 6; i++) {
    const ids = [...head, ...randomIds(30 + i * 3, rand, lo, hi)];
    out.push({ ids, spans: [{ index: 0, start: 20, end: 25 }, { index: 1, start: ids.length - 6, end: ids.length }] });
  }
  // exact duplicates and short or unrelated ones
  out.push(out[3], out[12], out[25]);
  for (let i = 0; i < 9; i++) out.push(step(randomIds(2 + Math.floor(rand() * 50), rand, lo, hi), 1 + Math.floor(rand() * 10)));
  return out;
}

function shuffled<T>(xs: readonly T[], seed: number): number[] {
  const rand = seededRandom(seed);
  const order = xs.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function maxDiff(a: TokenScores, b: TokenScores): number {
  expect(a.policy.length).toBe(b.policy.length);
  let d = 0;
  a.policy.forEach((v, k) => (d = Math.max(d, Math.abs(v - b.policy[k]), Math.abs(a.reference[k] - b.reference[k]))));
  return d;
}

/**
 * fp32 exports must agree to 1e-4. The fp16 Llama's logits are rounded to fp16 (a step of 2^-7
 * near 8): a run over cached keys can round a few of its 32,000 logits the other way, which moves
 * a log-softmax by about 1e-4; 5e-4 still catches a wrong mask (letting the past padding through moves it by 0.025).
 */
for (const [label, dir, lo, hi, tolerance] of [
  ['tiny-random-gpt2-fp32 (stacked past_i → present_i)', GPT2, 3, 1000, 1e-4],
  ['tiny-random-LlamaForCausalLM-fp16 (MultiHeadAttention, fp16 KV)', LLAMA, 3, 32000, 5e-4],
] as const) {
  describeIf(HAVE_SHARED)(label, () => {
    const onnxFile = resolveModelDir(dir).onnxFile;
    const seqs = sharingSequences(11, lo, hi);
    let off: ScorerEngine;
    let expected: TokenScores[];
    beforeAll(async () => {
      off = await ScorerEngine.start({ name: 'off', policyOnnx: onnxFile, referenceOnnx: onnxFile, device: 'cpu', threads: 1, batching, prefixCacheMb: 0 });
      expected = await off.score(seqs);
    });
    afterAll(async () => off?.close());

    it('reads the KV layout from the export', () => {
      expect(off.policyInfo.kv).not.toBeNull();
      expect(off.policyInfo.kv!.bytesPerToken).toBeGreaterThan(0);
    });

    // 24 blocks: the cache evicts within a batch, and a batch reads and keeps at most 96 tokens (the transit share)
    for (const blocks of [1e5, 24]) {
      it(`cache of ${blocks} blocks per role: 50 sequences in 3 random orders, one call each and all at once, equal the cache off`, async () => {
        const mb = (2 * blocks * BLOCK_TOKENS * off.policyInfo.kv!.bytesPerToken) / BLOCKS_SHARE / 2 ** 20;
        const on = await ScorerEngine.start({ name: 'on', policyOnnx: onnxFile, referenceOnnx: onnxFile, device: 'cpu', threads: 1, batching, prefixCacheMb: mb });
        try {
          let reused = 0;
          let worst = 0;
          for (const seed of [1, 2, 3]) {
            const order = shuffled(seqs, seed);
            // one at a time (the agent loop), then the whole set in one call (waves within a request)
            for (const i of order) {
              const [got] = await on.score([seqs[i]]);
              worst = Math.max(worst, maxDiff(got, expected[i]));
              reused += got.cachedTokens ?? 0;
            }
            const together = await on.score(order.map((i) => seqs[i]));
            together.forEach((got, k) => (worst = Math.max(worst, maxDiff(got, expected[order[k]]))));
          }
          expect(worst).toBeLessThan(tolerance);
          expect(reused).toBeGreaterThan(0);
          const cache = on.caches.policy!;
          expect(cache.bytes).toBeLessThanOrEqual(mb * 2 ** 20);
          expect(cache.blocks).toBeLessThanOrEqual(blocks);
          if (blocks < 100) expect(cache.counters.evictions).toBeGreaterThan(0);
        } finally {
          await on.close();
        }
      });
    }
  });
}

describeIf(HAVE_SHARED)('the cache never crosses model files or outlives its worker', () => {
  const onnxFile = resolveModelDir(GPT2).onnxFile;
  const seqs = sharingSequences(5, 3, 1000).slice(0, 22);
  let tmp: string;
  let other: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-prefix-'));
    other = path.join(tmp, 'gpt2-perturbed');
    perturbModel(GPT2, other, { seed: 3, scale: 0.2 });
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('two scorers over one tokenizer: the second reads nothing the first cached, and scores as without a cache', async () => {
    const otherFile = resolveModelDir(other).onnxFile;
    const spec = { device: 'cpu', threads: 1, batching, prefixCacheMb: 64 };
    const a = await ScorerEngine.start({ ...spec, name: 'a', policyOnnx: onnxFile, referenceOnnx: onnxFile });
    const b = await ScorerEngine.start({ ...spec, name: 'b', policyOnnx: otherFile, referenceOnnx: otherFile });
    const bOff = await ScorerEngine.start({ ...spec, name: 'b-off', policyOnnx: otherFile, referenceOnnx: otherFile, prefixCacheMb: 0 });
    try {
      for (const s of seqs) await a.score([s]);
      expect(a.caches.policy!.blocks).toBeGreaterThan(0);
      // Same ids, another model file: other keys, so nothing of a's can match.
      const ids = seqs[0].ids;
      expect(b.caches.policy!.chain(ids, 2)).not.toEqual(a.caches.policy!.chain(ids, 2));
      const want = await bOff.score(seqs);
      const first = await b.score([seqs[0]]);
      expect(first[0].cachedTokens).toBe(0);
      expect(maxDiff(first[0], want[0])).toBeLessThan(1e-4);
      // a's model differs from b's: had a block crossed, b's numbers would be a's.
      const aScores = await a.score([seqs[0]]);
      expect(maxDiff(aScores[0], want[0])).toBeGreaterThan(1e-3);
    } finally {
      await Promise.all([a.close(), b.close(), bOff.close()]);
    }
  });

  it('a worker that dies loses its cache; afterwards requests are exact and fill it again', async () => {
    const spec = { name: 'w', policyOnnx: onnxFile, referenceOnnx: onnxFile, device: 'cpu', threads: 1, batching };
    const on = await ScorerEngine.start({ ...spec, prefixCacheMb: 64 });
    const off = await ScorerEngine.start({ ...spec, prefixCacheMb: 0 });
    try {
      const want = await off.score(seqs);
      for (const s of seqs) await on.score([s]);
      expect(on.caches.policy!.blocks).toBeGreaterThan(0);
      const back = new Promise((resolve) => on.policy.once('ready', resolve));
      await on.policy.kill();
      await back;
      expect(on.caches.policy!.blocks).toBe(0);
      const again = await on.score(seqs);
      again.forEach((got, i) => expect(maxDiff(got, want[i])).toBeLessThan(1e-4));
      expect(on.caches.policy!.blocks).toBeGreaterThan(0);
    } finally {
      await Promise.all([on.close(), off.close()]);
    }
  });
});

describe('GroupQueryAttention (the onnxruntime-genai CUDA builds), a fixture on CPU', () => {
  let tmp: string;
  let engines: ScorerEngine[] = [];
  const w = gqaWeights(4);
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-gqa-'));
    writeGqaModel(tmp, w);
  });
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.close()));
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('with and without the cache, alone and in batches, log-probs equal the closed form (1e-4)', async () => {
    const file = path.join(tmp, 'model.onnx');
    const spec = { name: 'gqa', policyOnnx: file, referenceOnnx: file, device: 'cpu', threads: 1, batching };
    const on = await ScorerEngine.start({ ...spec, prefixCacheMb: 8 });
    const off = await ScorerEngine.start({ ...spec, prefixCacheMb: 0 });
    engines = [on, off];
    expect(on.policyInfo.kv?.rowsAlone).toBe(true);
    const seqs = sharingSequences(9, 4, w.V).slice(0, 20);
    const check = (got: TokenScores[], order: number[]) =>
      got.forEach((g, k) => {
        const seq = seqs[order[k]];
        const want = gqaLogprobs(w, seq.ids);
        let j = 0;
        for (const span of seq.spans) for (let t = span.start; t < span.end; t++, j++) expect(Math.abs(g.policy[j] - want[t - 1])).toBeLessThan(1e-4);
      });
    const all = seqs.map((_, i) => i);
    check(await off.score(seqs), all);
    let reused = 0;
    for (const seed of [4, 5]) {
      const order = shuffled(seqs, seed);
      for (const i of order) {
        const [got] = await on.score([seqs[i]]);
        check([got], [i]);
        reused += got.cachedTokens ?? 0;
      }
      check(await on.score(order.map((i) => seqs[i])), order);
    }
    expect(reused).toBeGreaterThan(0);
  });
});
