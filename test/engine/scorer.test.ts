/**
 * Exactness of the engine on the real ONNX exports in ../shared/real/models: per-token log-probs
 * and the policy's stats equal a plain-JS float64 log-softmax over the unmodified model's raw
 * logits, alone and inside padded batches.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveModelDir } from '../../src/engine/model-dir.js';
import { ScorerEngine } from '../../src/engine/scorer.js';
import type { Sequence, TokenScores } from '../../src/sequence.js';
import { referenceStats } from '../helpers/reference-logprobs.js';
import { describeIf, needShared, sharedPath } from '../helpers/shared.js';

const LLAMA = sharedPath('models', 'tiny-random-LlamaForCausalLM-fp16');
const GPT2 = sharedPath('models', 'tiny-random-gpt2-fp32');
const HAVE_SHARED = needShared(import.meta.url, [LLAMA, GPT2]);

const batching = { maxBatchTokens: 4096, maxBatchRows: 32, maxQueue: 1000, maxWaitMs: 0, maxInflight: 2 };

/** Deterministic pseudo-random ids in [lo, hi). */
function ids(n: number, seed: number, lo: number, hi: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (s % (hi - lo));
  });
}

function stepSequence(tokens: number[], stepLength: number): Sequence {
  return { ids: tokens, spans: [{ index: 0, start: tokens.length - stepLength, end: tokens.length }] };
}

for (const [label, dir, vocab] of [
  ['tiny-random-LlamaForCausalLM-fp16 (fp16 logits, external data, KV inputs)', LLAMA, 32000],
  ['tiny-random-gpt2-fp32 (int32 inputs, stacked past)', GPT2, 1000],
] as const) {
  describeIf(HAVE_SHARED)(label, () => {
    const onnxFile = HAVE_SHARED ? resolveModelDir(dir).onnxFile : '';
    let engine: ScorerEngine;
    beforeAll(async () => {
      engine = await ScorerEngine.start({ name: 't', policyOnnx: onnxFile, referenceOnnx: onnxFile, device: 'cpu', threads: 1, batching });
    });
    afterAll(async () => engine?.close());

    it('gathers before the LM head and reports the vocabulary', () => {
      expect(engine.policyInfo.gatherBeforeLmHead).toBe(true);
      expect(engine.vocabSize).toBe(vocab);
    });

    it('per-token log-probs and policy stats equal a float64 log-softmax of the raw logits', async () => {
      const tokens = [vocab > 1000 ? 1 : 98, ...ids(30, 7, 3, vocab)];
      const seq = stepSequence(tokens, 12);
      const [scores] = await engine.score([seq], { stats: true });
      const positions = Array.from({ length: 12 }, (_, k) => tokens.length - 12 + k - 1);
      const expected = await referenceStats(onnxFile, tokens, positions);
      expected.forEach((e, k) => {
        expect(Math.abs(scores.policy[k] - e.logprob)).toBeLessThan(1e-4);
        expect(Math.abs(scores.reference[k] - e.logprob)).toBeLessThan(1e-4);
        expect(Math.abs(scores.entropy[k] - e.entropy)).toBeLessThan(1e-4);
        expect(Math.abs(scores.meanLogprob[k] - e.meanLogprob)).toBeLessThan(1e-4);
        expect(Math.abs(scores.topkMeanLogprob[k] - e.top20Mean)).toBeLessThan(1e-4);
      });
    });

    it('an item scored alone equals the same item inside a batch of 16 of different lengths (1e-5)', async () => {
      const seqs = Array.from({ length: 16 }, (_, i) => stepSequence(ids(5 + i * 7, 100 + i, 3, vocab), 1 + (i % 5)));
      const alone: TokenScores[] = [];
      for (const s of seqs) alone.push((await engine.score([s], { stats: true }))[0]);
      const together = await engine.score(seqs, { stats: true });
      together.forEach((t, i) => {
        expect(t.policy.length).toBe(alone[i].policy.length);
        t.policy.forEach((v, k) => expect(Math.abs(v - alone[i].policy[k])).toBeLessThan(1e-5));
        t.entropy.forEach((v, k) => expect(Math.abs(v - alone[i].entropy[k])).toBeLessThan(1e-5));
      });
    });
  });
}

describeIf(HAVE_SHARED)('max_batch_logits: the head never holds more than its budget of scored tokens × vocabulary', () => {
  const onnxFile = HAVE_SHARED ? resolveModelDir(LLAMA).onnxFile : '';
  let small: ScorerEngine;
  let roomy: ScorerEngine;
  const batches: number[] = [];
  beforeAll(async () => {
    // 5 scored tokens per batch at vocabulary 32,000.
    small = await ScorerEngine.start(
      { name: 's', policyOnnx: onnxFile, referenceOnnx: onnxFile, device: 'cpu', threads: 1, batching: { ...batching, maxBatchLogits: 5 * 32000 } },
      { batchStarted: (report) => batches.push(report.scoredTokens) },
    );
    roomy = await ScorerEngine.start({ name: 'r', policyOnnx: onnxFile, referenceOnnx: onnxFile, device: 'cpu', threads: 1, batching });
  });
  afterAll(async () => Promise.all([small?.close(), roomy?.close()]));

  it('splits a long step across batches and returns the same values as one batch (1e-5)', async () => {
    expect(small.maxBatchScored).toBe(5);
    const seqs = [stepSequence([1, ...ids(40, 3, 3, 32000)], 23), stepSequence([1, ...ids(12, 4, 3, 32000)], 2)];
    const [a, b] = [await small.score(seqs), await roomy.score(seqs)];
    expect(Math.max(...batches)).toBeLessThanOrEqual(5);
    expect(batches.reduce((x, y) => x + y, 0)).toBe(25);
    for (let i = 0; i < seqs.length; i++) {
      expect(a[i].policy.length).toBe(b[i].policy.length);
      a[i].policy.forEach((v, k) => expect(Math.abs(v - b[i].policy[k])).toBeLessThan(1e-5));
      a[i].topkMeanLogprob.forEach((v, k) => expect(Math.abs(v - b[i].topkMeanLogprob[k])).toBeLessThan(1e-5));
    }
  });
});
