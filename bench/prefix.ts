/**
 * prefix: the prefix KV cache (issue 12), each workload on the with-past export of the main pair
 * (make_pair.py's kv/ variant; --quick: the embedded gridworld pair), with the cache on
 * (--prefix-cache-mb 512) and off (0, today's behaviour), servers started one after the other:
 *
 * - agent loop: 20 sequential POST /v1/score calls at concurrency 1, the context growing from
 *   about 200 to about 2,000 tokens (steps of 20–60 tokens after observations of 20–60); a fresh
 *   random loop per repeat, so only the loop's own earlier calls can be in the cache.
 * - the same loop as text `messages`: 20 sequential POST /v1/rank calls, each the conversation so
 *   far (a user prompt, then assistant steps and user observations, words of the pair's
 *   word-level vocabulary) and one candidate, the next step (what the Weave adapter sends): the
 *   context is tokenized by the service, so its piece cache is measured too.
 * - best-of-8: POST /v1/rank, 8 candidates of 20–60 tokens on a 1,500-token prompt (text in the
 *   pair's word-level vocabulary), a fresh prompt per repeat: the reuse is within the request.
 * - independent items: POST /v1/score with 16 items that share nothing: the cache cannot help.
 * - whole trajectory, most tokens scored: POST /v1/trajectories/score (8 trajectories of 10 turns,
 *   ~90% of the tokens in scored actions) against a raw full-logits forward of the same sequences
 *   with onnxruntime-node (both plain exports, [1, S, V] logits copied to JS, one after the other).
 *
 * Every workload checks that cache on and off give the same numbers (max |Δ|).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { packBatch } from '../src/engine/batch.js';
import { newKvArray, pastDims } from '../src/engine/kv.js';
import { resolveModelDir } from '../src/engine/model-dir.js';
import { ScoringSession } from '../src/engine/session.js';
import { median, randInt, randomIds, rng, table, timedBench, type BenchContext, type BenchOutput, type BenchResult, type Pair, ROOT } from './lib/common.js';
import { mainPair, withPastPair } from './lib/pairs.js';
import { BenchServer } from './lib/server.js';

export interface PrefixBenchResult extends BenchResult {
  agentLoop: { calls: number; firstContext: number; lastContext: number; onMs: number; offMs: number; ratio: number; lastOverFirst: number; perCallOnMs: number[]; perCallOffMs: number[]; maxDiff: number };
  /** The loop sent as messages to /v1/rank (context sizes in words: one token each, plus the rendering's labels). */
  messageLoop: { calls: number; firstWords: number; lastWords: number; onMs: number; offMs: number; ratio: number; lastOverFirst: number; perCallOnMs: number[]; perCallOffMs: number[]; maxDiff: number };
  bestOf8: { promptTokens: number; onMs: number; offMs: number; ratio: number; maxDiff: number };
  independent: { items: number; onMs: number; offMs: number; ratio: number; maxDiff: number };
  trajectory: { sequences: number; tokens: number; scoredFraction: number; serviceMs: number; rawMs: number; ratio: number };
  /** 8 rows with different cached lengths: one batch with a right-aligned padded past, or one run per past length. */
  pastLayout: { rows: number; pastLengths: number[]; paddedMs: number; groupedMs: number };
}

interface Shape {
  loopStart: number;
  loopEnd: number;
  step: [number, number];
  observation: [number, number];
  rankPrompt: number;
  candidate: [number, number];
  itemPrompt: [number, number];
  turns: number;
  action: number;
  repeats: number;
  /** Repeats of the independent-items workload: its effect is a few percent, so it needs more pairs. */
  itemRepeats: number;
}

const FULL: Shape = { loopStart: 200, loopEnd: 2000, step: [20, 60], observation: [20, 60], rankPrompt: 1500, candidate: [20, 60], itemPrompt: [200, 1500], turns: 10, action: 100, repeats: 5, itemRepeats: 12 };
const QUICK: Shape = { loopStart: 20, loopEnd: 200, step: [2, 6], observation: [2, 6], rankPrompt: 150, candidate: [2, 6], itemPrompt: [20, 150], turns: 4, action: 10, repeats: 1, itemRepeats: 1 };

/** Token ids whose word encodes back to exactly that id when words are joined by spaces. */
function textVocabulary(dir: string): { ids: number[]; word: (id: number) => string } {
  const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const byId = new Map<number, string>();
  for (const [w, id] of Object.entries(tok.model.vocab as Record<string, number>)) byId.set(id, w);
  const special = new Set((tok.added_tokens ?? []).map((t: { id: number }) => t.id));
  const ids = [...byId.keys()].filter((id) => !special.has(id) && /^[A-Za-z]+$|^t\d+$/.test(byId.get(id)!)).sort((a, b) => a - b);
  return { ids, word: (id) => byId.get(id)! };
}

async function post(url: string, body: unknown): Promise<any> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await r.json();
  if (!r.ok) throw new Error(`${url} answered ${r.status}: ${JSON.stringify(json).slice(0, 300)}`);
  return json;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await f();
  return [out, performance.now() - t0];
}

interface Message {
  role: 'user' | 'assistant';
  content: string;
}

interface Workloads {
  loops: { prompt_ids: number[]; step_ids: number[] }[][];
  messageLoops: { messages: Message[]; candidates: [string] }[][];
  ranks: { prompt: string; candidates: string[] }[];
  /** Per repeat, a fresh set: a set sent twice would find itself in the cache. */
  items: { prompt_ids: number[]; step_ids: number[] }[][];
  trajectories: { segments: { ids: number[]; score?: boolean }[] }[][];
}

function workloads(shape: Shape, pair: Pair): Workloads {
  const next = rng(12);
  const vocab = textVocabulary(pair.policy);
  const pick = (n: number) => Array.from({ length: n }, () => vocab.ids[Math.floor(next() * vocab.ids.length)]);
  const loops = Array.from({ length: shape.repeats }, () => {
    const calls: { prompt_ids: number[]; step_ids: number[] }[] = [];
    let context = randomIds(next, shape.loopStart, pair.vocab);
    const growth = (shape.loopEnd - shape.loopStart) / 19;
    for (let i = 0; i < 20; i++) {
      const step = randomIds(next, randInt(next, shape.step), pair.vocab);
      calls.push({ prompt_ids: context, step_ids: step });
      const observation = randomIds(next, Math.max(1, Math.round(growth) - step.length), pair.vocab);
      context = [...context, ...step, ...observation];
    }
    return calls;
  });
  const words = (n: number) => pick(n).map(vocab.word).join(' ');
  const messageLoops = Array.from({ length: shape.repeats }, () => {
    const calls: { messages: Message[]; candidates: [string] }[] = [];
    const messages: Message[] = [{ role: 'user', content: words(shape.loopStart) }];
    const growth = (shape.loopEnd - shape.loopStart) / 19;
    for (let i = 0; i < 20; i++) {
      const n = randInt(next, shape.step);
      const step = words(n);
      calls.push({ messages: [...messages], candidates: [step] });
      messages.push({ role: 'assistant', content: step }, { role: 'user', content: words(Math.max(1, Math.round(growth) - n)) });
    }
    return calls;
  });
  const ranks = Array.from({ length: shape.repeats }, () => ({
    prompt: pick(shape.rankPrompt).map(vocab.word).join(' '),
    candidates: Array.from({ length: 8 }, () => pick(randInt(next, shape.candidate)).map(vocab.word).join(' ')),
  }));
  const items = Array.from({ length: shape.itemRepeats }, () =>
    Array.from({ length: 16 }, () => ({ prompt_ids: randomIds(next, randInt(next, shape.itemPrompt), pair.vocab), step_ids: randomIds(next, randInt(next, shape.step), pair.vocab) })),
  );
  const trajectories = Array.from({ length: shape.repeats }, () =>
    Array.from({ length: 8 }, () => ({
      segments: [
        { ids: randomIds(next, Math.round(shape.action / 2), pair.vocab) },
        ...Array.from({ length: shape.turns }, () => [{ ids: randomIds(next, Math.round(shape.action / 10), pair.vocab) }, { ids: randomIds(next, shape.action, pair.vocab), score: true }]).flat(),
      ],
    })),
  );
  return { loops, messageLoops, ranks, items, trajectories };
}

interface Measured {
  loopCallMs: number[][];
  loopRatios: number[][];
  messageCallMs: number[][];
  messageScores: number[][];
  rankMs: number[];
  rankScores: number[][];
  itemsMs: number[];
  itemRatios: number[][];
  trajectoryMs: number[];
}

const emptyMeasured = (): Measured => ({ loopCallMs: [], loopRatios: [], messageCallMs: [], messageScores: [], rankMs: [], rankScores: [], itemsMs: [], itemRatios: [], trajectoryMs: [] });

/**
 * Each repeat of each workload runs on both servers back to back: the load of the shared machine
 * drifts over minutes, and back-to-back pairs see the same load. The server that goes first
 * alternates from repeat to repeat, so that whatever running second costs or gains falls on both.
 */
async function measure(servers: Record<'off' | 'on', BenchServer>, w: Workloads): Promise<Record<'off' | 'on', Measured>> {
  const out = { off: emptyMeasured(), on: emptyMeasured() };
  const order = (r: number) => (r % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const));
  // One loop's calls in order on one server: each call's time and the number it answered.
  const runLoop = async (url: string, calls: readonly unknown[], value: (body: any) => number): Promise<[number[], number[]]> => {
    const ms: number[] = [];
    const values: number[] = [];
    for (const call of calls) {
      const [body, t] = await timed(() => post(url, call));
      ms.push(t);
      values.push(value(body));
    }
    return [ms, values];
  };
  for (const [r, loop] of w.loops.entries()) {
    for (const mode of order(r)) {
      const [ms, ratios] = await runLoop(`${servers[mode].url}/v1/score`, loop, (body) => body.log_ratio);
      out[mode].loopCallMs.push(ms);
      out[mode].loopRatios.push(ratios);
    }
  }
  for (const [r, loop] of w.messageLoops.entries()) {
    for (const mode of order(r)) {
      const [ms, scores] = await runLoop(`${servers[mode].url}/v1/rank`, loop, (body) => body.scores[0]);
      out[mode].messageCallMs.push(ms);
      out[mode].messageScores.push(scores);
    }
  }
  for (const [r, rank] of w.ranks.entries()) {
    for (const mode of order(r)) {
      const [body, t] = await timed(() => post(`${servers[mode].url}/v1/rank`, rank));
      out[mode].rankMs.push(t);
      out[mode].rankScores.push(body.scores);
    }
  }
  for (const [r, items] of w.items.entries()) {
    for (const mode of order(r)) {
      const [body, t] = await timed(() => post(`${servers[mode].url}/v1/score`, { items }));
      out[mode].itemsMs.push(t);
      out[mode].itemRatios.push(body.results.map((x: any) => x.log_ratio));
    }
  }
  for (const trajectories of w.trajectories) {
    const [, t] = await timed(() => post(`${servers.on.url}/v1/trajectories/score`, { items: trajectories }));
    out.on.trajectoryMs.push(t);
  }
  return out;
}

/** Raw full-logits forward of each trajectory's whole sequence, policy then reference, in this process. */
async function rawForward(pair: Pair, quick: boolean, w: Workloads, repeats: number, threads: number): Promise<number[]> {
  const file = (dir: string) => path.join(dir, 'model.onnx');
  const dirs = quick ? [pair.policy, pair.reference] : [path.dirname(pair.policy), path.dirname(pair.reference)];
  const sessions = await Promise.all(dirs.map((d) => ort.InferenceSession.create(file(d), { intraOpNumThreads: threads, interOpNumThreads: 1 })));
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const sequences = w.trajectories[r].map((t) => t.segments.flatMap((s) => s.ids));
    const t0 = performance.now();
    for (const ids of sequences) {
      const n = ids.length;
      const int = (values: number[]) => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, n]);
      for (const s of sessions) {
        const out = await s.run({ input_ids: int(ids), attention_mask: int(ids.map(() => 1)), position_ids: int(ids.map((_, i) => i)) });
        void (out.logits.data as Float32Array)[0];
      }
    }
    times.push(performance.now() - t0);
  }
  await Promise.all(sessions.map((s) => s.release()));
  return times;
}

/**
 * The two ways to batch rows whose cached prefixes differ, timed on the policy session alone
 * (in this process): one run over a past padded to the longest (what the engine does), or one run
 * per distinct past length (here every row differs: 8 one-row runs).
 */
async function pastLayouts(pair: Pair, threads: number, repeats: number, quick: boolean): Promise<PrefixBenchResult['pastLayout']> {
  const session = await ScoringSession.load({ onnxFile: resolveModelDir(pair.policy).onnxFile, stats: false, device: 'cpu', intraOpThreads: threads });
  const kv = session.info.kv!;
  const next = rng(31);
  const pastLengths = Array.from({ length: 8 }, (_, i) => (quick ? 16 : 96) * (i + 1));
  const rows = pastLengths.map(() => ({ ids: randomIds(next, 40, pair.vocab), positions: Array.from({ length: 39 }, (_, t) => t) }));
  const feed = (lengths: number[]) => {
    const padded = Math.max(...lengths);
    const tensors: Record<string, { data: ArrayBufferView; dims: number[] }> = {};
    for (const t of kv.tensors) {
      const dims = pastDims(t, lengths.length, padded);
      const data = newKvArray(t.type, dims.reduce((a, b) => a * b, 1));
      if (data instanceof Float32Array) for (let i = 0; i < data.length; i++) data[i] = next() - 0.5;
      tensors[t.past] = { data, dims };
    }
    return { lengths: Int32Array.from(lengths), padded, tensors };
  };
  const padded = { batch: packBatch(rows), past: feed(pastLengths) };
  const single = rows.map((r, i) => ({ batch: packBatch([r]), past: feed([pastLengths[i]]) }));
  const paddedMs: number[] = [];
  const groupedMs: number[] = [];
  for (let r = 0; r < repeats + 1; r++) {
    let t0 = performance.now();
    await session.run(padded.batch, { past: padded.past });
    if (r > 0) paddedMs.push(performance.now() - t0); // the first of each is a warm-up
    t0 = performance.now();
    for (const s of single) await session.run(s.batch, { past: s.past });
    if (r > 0) groupedMs.push(performance.now() - t0);
  }
  await session.release();
  return { rows: 8, pastLengths, paddedMs: median(paddedMs), groupedMs: median(groupedMs) };
}

const maxAbsDiff = (a: readonly number[], b: readonly number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

export async function runPrefix(ctx: BenchContext): Promise<BenchOutput<PrefixBenchResult>> {
  const { options } = ctx;
  const shape = options.quick ? QUICK : FULL;
  const base = mainPair(options);
  const pair = withPastPair(base, options.quick);
  const w = workloads(shape, pair);
  const threads = Math.max(1, Math.floor(os.availableParallelism() / 2));
  const result = await timedBench(ctx, 'prefix', { main: pair.name }, async () => {
    const offServer = await BenchServer.start(pair, { device: options.device, flags: ['--prefix-cache-mb', '0'] });
    let runs: Record<'on' | 'off', Measured>;
    try {
      const onServer = await BenchServer.start(pair, { device: options.device, flags: ['--prefix-cache-mb', '512'] });
      try {
        runs = await measure({ off: offServer, on: onServer }, w);
      } finally {
        await onServer.stop();
      }
    } finally {
      await offServer.stop();
    }
    const raw = await rawForward(pair, options.quick, w, shape.repeats, 2 * threads);
    const pastLayout = await pastLayouts(pair, threads, 3 * shape.repeats, options.quick);
    const { on, off } = runs;
    // Ratios are the geometric mean of each repeat's off ÷ on: the two runs of a pair ran back to
    // back, so each pair's ratio sees one machine state (this VM's speed drifts by ±10% in minutes).
    const paired = (off: number[], on: number[]) => Math.exp(off.reduce((n, t, i) => n + Math.log(t / on[i]), 0) / off.length);
    const perCall = (calls: number[][]) => Array.from({ length: 20 }, (_, i) => median(calls.map((l) => l[i])));
    const totals = (calls: number[][]) => calls.map((l) => l.reduce((a, b) => a + b, 0));
    /** A loop's times and numbers, cache on against off. */
    const loop = (onMs: number[][], offMs: number[][], onValues: number[][], offValues: number[][]) => {
      const onCalls = perCall(onMs);
      return {
        calls: 20,
        onMs: median(totals(onMs)),
        offMs: median(totals(offMs)),
        ratio: paired(totals(offMs), totals(onMs)),
        // the first two calls against the last two: one call is noisy on a loaded machine
        lastOverFirst: (onCalls[18] + onCalls[19]) / (onCalls[0] + onCalls[1]),
        perCallOnMs: onCalls,
        perCallOffMs: perCall(offMs),
        maxDiff: Math.max(...onValues.map((r, i) => maxAbsDiff(r, offValues[i]))),
      };
    };
    const wordsOf = (call: { messages: Message[] }) => call.messages.reduce((n, m) => n + m.content.split(' ').length, 0);
    const sequences = w.trajectories[0].map((t) => t.segments);
    const tokens = sequences.reduce((n, s) => n + s.reduce((m, seg) => m + seg.ids.length, 0), 0);
    const scored = sequences.reduce((n, s) => n + s.reduce((m, seg) => m + (seg.score ? seg.ids.length : 0), 0), 0);
    return {
      agentLoop: {
        firstContext: w.loops[0][0].prompt_ids.length,
        lastContext: w.loops[0][19].prompt_ids.length,
        ...loop(on.loopCallMs, off.loopCallMs, on.loopRatios, off.loopRatios),
      },
      messageLoop: {
        firstWords: wordsOf(w.messageLoops[0][0]),
        lastWords: wordsOf(w.messageLoops[0][19]),
        ...loop(on.messageCallMs, off.messageCallMs, on.messageScores, off.messageScores),
      },
      bestOf8: {
        promptTokens: shape.rankPrompt,
        onMs: median(on.rankMs),
        offMs: median(off.rankMs),
        ratio: paired(off.rankMs, on.rankMs),
        maxDiff: Math.max(...on.rankScores.map((s, i) => maxAbsDiff(s, off.rankScores[i]))),
      },
      independent: {
        items: w.items[0].length,
        onMs: median(on.itemsMs),
        offMs: median(off.itemsMs),
        ratio: paired(off.itemsMs, on.itemsMs),
        maxDiff: Math.max(...on.itemRatios.map((r, i) => maxAbsDiff(r, off.itemRatios[i]))),
      },
      trajectory: { sequences: sequences.length, tokens, scoredFraction: scored / tokens, serviceMs: median(on.trajectoryMs), rawMs: median(raw), ratio: median(raw) / median(on.trajectoryMs) },
      pastLayout,
    };
  });
  const r = result;
  const tables = [
    table(
      `prefix cache: --prefix-cache-mb 512 vs 0 (${pair.name}; ms: medians over repeats; off ÷ on: geometric mean of the repeats' paired ratios)`,
      ['workload', 'cache off ms', 'cache on ms', 'off ÷ on', 'max |Δ| on vs off'],
      [
        [`agent loop: 20 calls, context ${r.agentLoop.firstContext}→${r.agentLoop.lastContext}`, r.agentLoop.offMs, r.agentLoop.onMs, r.agentLoop.ratio, r.agentLoop.maxDiff.toExponential(2)],
        [`agent loop as messages: 20 /v1/rank calls, context ${r.messageLoop.firstWords}→${r.messageLoop.lastWords} words`, r.messageLoop.offMs, r.messageLoop.onMs, r.messageLoop.ratio, r.messageLoop.maxDiff.toExponential(2)],
        [`best-of-8 /v1/rank, ${r.bestOf8.promptTokens}-token prompt`, r.bestOf8.offMs, r.bestOf8.onMs, r.bestOf8.ratio, r.bestOf8.maxDiff.toExponential(2)],
        [`${r.independent.items} independent items, one request`, r.independent.offMs, r.independent.onMs, r.independent.ratio, r.independent.maxDiff.toExponential(2)],
      ],
    ),
    table(
      'agent loop with the cache on: ms per call (median over repeats)',
      ['call', 'context tokens', 'cache on ms', 'cache off ms'],
      r.agentLoop.perCallOnMs.map((ms, i) => [i + 1, w.loops[0][i].prompt_ids.length, ms, r.agentLoop.perCallOffMs[i]]),
    ),
    table(
      'whole trajectories, most tokens scored: service vs a raw full-logits forward',
      ['trajectories', 'tokens', 'scored', 'raw forward ms', 'service ms', 'raw ÷ service'],
      [[r.trajectory.sequences, r.trajectory.tokens, `${(100 * r.trajectory.scoredFraction).toFixed(0)}%`, r.trajectory.rawMs, r.trajectory.serviceMs, r.trajectory.ratio]],
    ),
    table(
      `batching rows with different cached lengths (policy session, ${r.pastLayout.rows} rows of 40 new tokens, past ${r.pastLayout.pastLengths[0]}–${r.pastLayout.pastLengths[r.pastLayout.rows - 1]})`,
      ['layout', 'ms per batch'],
      [
        ['one run, past right-aligned and padded to the longest (kept)', r.pastLayout.paddedMs],
        ['one run per past length (grouped)', r.pastLayout.groupedMs],
      ],
    ),
  ];
  return { result, tables };
}
