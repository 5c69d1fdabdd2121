/**
 * The batching queue without ONNX: a fake engine whose "log-prob" of position t in row b is a
 * value computed from the batch tensors (the target id + t/1000), so every row can check that
 * it got exactly its own slice back.
 */
import { describe, expect, it } from 'vitest';
import { bucketLength, packBatch, type EngineBatch } from '../../src/engine/batch.js';
import { Batcher, type BatchOutputs, type BatchReport } from '../../src/engine/batcher.js';
import { ServiceError } from '../../src/errors.js';

const options = { maxBatchTokens: 256, maxBatchRows: 4, maxQueue: 10, maxWaitMs: 0, maxInflight: 1 };

function fakeEngine(delayMs = 0) {
  const batches: EngineBatch[] = [];
  const run = async (batch: EngineBatch): Promise<BatchOutputs> => {
    batches.push(batch);
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    const out = new Float32Array(batch.gatherIndex.length);
    batch.gatherIndex.forEach((flat, k) => {
      const t = flat % batch.seqLen;
      out[k] = batch.targets[k] + t / 1000;
    });
    return { value: out };
  };
  return { batches, run };
}

const row = (ids: number[], positions: number[]) => ({ ids, positions });

describe('bucketLength', () => {
  it('never pads by more than 25% above 16 and is monotone', () => {
    let prev = 0;
    for (let n = 1; n <= 5000; n++) {
      const b = bucketLength(n);
      expect(b).toBeGreaterThanOrEqual(n);
      expect(b).toBeGreaterThanOrEqual(prev);
      if (n > 16) expect(b / n).toBeLessThanOrEqual(1.25 + 1e-9);
      prev = b;
    }
  });
});

describe('packBatch', () => {
  it('right-pads rows and indexes gathered positions as b·S + t with target ids[t+1]', () => {
    const b = packBatch([row([5, 6, 7], [0, 1]), row([8, 9], [0])], 0);
    expect(b.seqLen).toBe(16);
    expect(Array.from(b.lengths)).toEqual([3, 2]);
    expect(b.scored).toBe(3);
    // The 3 real positions, then padding to the smallest bucket (8) that gathers position 0 for token 0.
    expect(Array.from(b.gatherIndex)).toEqual([0, 1, 16, 0, 0, 0, 0, 0]);
    expect(Array.from(b.targets)).toEqual([6, 7, 9, 0, 0, 0, 0, 0]);
    expect(Array.from(b.ids.slice(16, 19))).toEqual([8, 9, 0]);
  });

  it('pads the scored positions to a few bucket sizes, and none when nothing is scored', () => {
    const sizes = new Set<number>();
    for (let n = 1; n <= 200; n++) {
      const b = packBatch([row(Array.from({ length: n + 1 }, (_, i) => i), Array.from({ length: n }, (_, i) => i))]);
      expect(b.scored).toBe(n);
      expect(b.gatherIndex.length).toBeGreaterThanOrEqual(n);
      expect(b.gatherIndex.length).toBeLessThanOrEqual(Math.max(8, Math.ceil(n * 1.25)));
      sizes.add(b.gatherIndex.length);
    }
    expect(sizes.size).toBeLessThan(30); // 200 counts share a few dozen shapes
    expect(packBatch([row([1, 2], [])]).gatherIndex.length).toBe(0);
  });
});

describe('Batcher', () => {
  it('returns each row its own slice, in input order', async () => {
    const engine = fakeEngine();
    const batcher = new Batcher(options, engine.run);
    const [a, b] = await Promise.all([
      batcher.submit([row([1, 2, 3], [0, 1]), row([4, 5], [0])]),
      batcher.submit([row([7, 8, 9, 10], [2])]),
    ]);
    expect(Array.from(a[0].value)).toEqual([2, 3 + 0.001].map(Math.fround));
    expect(Array.from(a[1].value)).toEqual([5].map(Math.fround));
    expect(Array.from(b[0].value)).toEqual([10 + 0.002].map(Math.fround));
  });

  it('forms multi-row batches from what queued while a batch ran, within the row cap and token budget', async () => {
    const engine = fakeEngine(20);
    const reports: BatchReport[] = [];
    const batcher = new Batcher(options, engine.run, { batchStarted: (r) => reports.push(r) });
    const jobs = Array.from({ length: 9 }, (_, i) => batcher.submit([row(Array(10 + i).fill(1), [0])]));
    await Promise.all(jobs);
    expect(reports[0].rows).toBe(1); // dispatched at once: no timer by default
    expect(Math.max(...reports.map((r) => r.rows))).toBe(4);
    for (const b of engine.batches) {
      expect(b.rows).toBeLessThanOrEqual(options.maxBatchRows);
      if (b.rows > 1) expect(b.rows * b.seqLen).toBeLessThanOrEqual(options.maxBatchTokens);
    }
    // FIFO: rows leave in submission order.
    const order = engine.batches.flatMap((b) => Array.from(b.lengths));
    expect(order).toEqual(Array.from({ length: 9 }, (_, i) => 10 + i));
  });

  it('stops a batch at the first row that would break the token budget', async () => {
    const engine = fakeEngine(10);
    const batcher = new Batcher({ ...options, maxBatchTokens: 64 }, engine.run);
    const blocker = batcher.submit([row([1, 2], [0])]);
    const rest = [30, 5, 5].map((n) => batcher.submit([row(Array(n).fill(1), [0])]));
    await Promise.all([blocker, ...rest]);
    // [30] pads to 32: 2 × 32 = 64 fits, so [30, 5] go together; then [5] alone or with nothing.
    expect(engine.batches.map((b) => b.rows)).toEqual([1, 2, 1]);
  });

  it('answers 429 with Retry-After when the queue is full, and still completes accepted work', async () => {
    const engine = fakeEngine(30);
    const batcher = new Batcher({ ...options, maxQueue: 3 }, engine.run);
    const first = batcher.submit([row([1, 2], [0])]); // dispatched immediately
    const queued = [batcher.submit([row([1, 2], [0])]), batcher.submit([row([1, 2], [0]), row([3, 4], [0])])];
    const rejected = batcher.submit([row([1, 2], [0])]);
    await expect(rejected).rejects.toMatchObject({ status: 429, code: 'overloaded' });
    const err = (await rejected.catch((e) => e)) as ServiceError;
    expect(Number(err.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    await expect(Promise.all([first, ...queued])).resolves.toHaveLength(3);
  });

  it('drops rows whose client went away before they run, and counts them', async () => {
    const engine = fakeEngine(20);
    const dropped: string[] = [];
    const batcher = new Batcher(options, engine.run, { dropped: (reason) => dropped.push(reason) });
    const running = batcher.submit([row([1, 2], [0])]);
    const controller = new AbortController();
    const gone = batcher.submit([row([9, 9, 9], [0])], { signal: controller.signal });
    const goneChecked = expect(gone).rejects.toMatchObject({ code: 'client_closed_request' });
    controller.abort();
    await running;
    await goneChecked;
    expect(dropped).toEqual(['client_gone']);
    expect(engine.batches.every((b) => !Array.from(b.lengths).includes(3))).toBe(true);
  });

  it('abandonQueued answers every queued request with the error; the running batch still finishes', async () => {
    const engine = fakeEngine(20);
    const batcher = new Batcher(options, engine.run);
    const running = batcher.submit([row([1, 2], [0])]);
    const queued = [batcher.submit([row([3, 4, 5], [0, 1])]), batcher.submit([row([6, 7], [0])])];
    const checks = queued.map((q) => expect(q).rejects.toMatchObject({ status: 503, code: 'shutting_down' }));
    batcher.abandonQueued(new ServiceError(503, 'shutting_down', 'drain timeout'));
    expect(batcher.queued).toBe(0);
    const [done] = await running;
    expect(done.value[0]).toBeCloseTo(2, 6); // target ids[1] = 2 at position 0
    await Promise.all(checks);
    await batcher.whenIdle();
    expect(engine.batches).toHaveLength(1);
  });

  it('gives 504 to rows whose deadline passed in the queue without spending a batch slot on them', async () => {
    const engine = fakeEngine(40);
    const batcher = new Batcher(options, engine.run);
    const running = batcher.submit([row([1, 2], [0])]);
    const late = batcher.submit([row([7, 7, 7], [0])], { deadline: Date.now() + 5 });
    const lateChecked = expect(late).rejects.toMatchObject({ status: 504, code: 'deadline_exceeded' });
    await running;
    await lateChecked;
    expect(engine.batches).toHaveLength(1);
  });

  it('fails every row of a batch whose forward pass fails, and keeps serving', async () => {
    let fail = true;
    const batcher = new Batcher(options, async (b) => {
      if (fail) {
        fail = false;
        throw new ServiceError(500, 'model_output_invalid', 'NaN');
      }
      return { value: new Float32Array(b.gatherIndex.length) };
    });
    await expect(batcher.submit([row([1, 2], [0])])).rejects.toMatchObject({ code: 'model_output_invalid' });
    await expect(batcher.submit([row([1, 2], [0])])).resolves.toHaveLength(1);
  });

  it('whenIdle resolves only after queued and running work finished', async () => {
    const engine = fakeEngine(10);
    const batcher = new Batcher(options, engine.run);
    let done = 0;
    for (let i = 0; i < 5; i++) void batcher.submit([row([1, 2], [0])]).then(() => done++);
    await batcher.whenIdle();
    expect(done).toBe(5);
  });
});

describe('Batcher waves (rows that read a prefix an earlier row of the same request computes)', () => {
  it('a later wave runs only after the earlier one finished; other requests are not held up', async () => {
    const engine = fakeEngine(5);
    const batcher = new Batcher({ ...options, maxInflight: 2 }, engine.run);
    const shared = [row([1, 2, 3], [1]), row([1, 2, 4], [1]), row([1, 2, 5], [1])];
    const first = batcher.submit(shared, { waves: [0, 1, 1] });
    const other = batcher.submit([row([9, 8], [0])]);
    const [a, b] = await Promise.all([first, other]);
    a.forEach((r, i) => expect(r.value[0]).toBeCloseTo(3 + i + 0.001, 5));
    expect(b[0].value[0]).toBeCloseTo(8, 5);
    // the leader alone; then the unrelated request, which passes the waiting followers; then the followers
    expect(engine.batches.map((x) => x.rows)).toEqual([1, 1, 2]);
    expect(Array.from(engine.batches[1].ids.slice(0, 2))).toEqual([9, 8]);
    expect(Array.from(engine.batches[2].ids.slice(0, 3))).toEqual([1, 2, 4]);
  });
});
