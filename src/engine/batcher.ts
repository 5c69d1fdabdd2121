/**
 * TEI-style continuous batching (design §3). Knows rows of token ids and nothing of HTTP.
 *
 * - FIFO; a batch grows while rows × padded_len ≤ maxBatchTokens, rows ≤ maxBatchRows and its
 *   scored positions ≤ maxBatchScored, and stops at the first row that does not fit (no
 *   reordering, so nothing starves). The scored-position cap bounds the scoring head's
 *   [scored, vocab] intermediates, which dominate memory at large vocabularies.
 * - No timer by default: a batch is dispatched as soon as an engine slot is free, and whatever
 *   queued meanwhile forms the next one. `maxInflight` (default 2) lets the next batch wait in
 *   the workers' inbox so they never idle between batches.
 * - Bounded queue: admission is all-or-nothing per request; a full queue is a 429 with
 *   Retry-After, never an unbounded wait.
 * - Rows whose caller gave up (AbortSignal) or whose deadline passed are dropped before they
 *   take a slot in a batch.
 */
import { ServiceError } from '../errors.js';
import { bucketLength, packBatch, type BatchRow, type EngineBatch } from './batch.js';

export interface BatcherOptions {
  maxBatchTokens: number;
  maxBatchRows: number;
  /** Scored positions per batch (rows longer than this are split by the engine before they queue). */
  maxBatchScored?: number;
  maxQueue: number;
  maxWaitMs: number;
  maxInflight: number;
  /**
   * With a prefix cache: a row's tokens to run and its cached past. New tokens count against
   * maxBatchTokens, past tokens (rows × longest past) against maxBatchPastTokens.
   */
  rowCost?: (row: BatchRow) => { newTokens: number; pastTokens: number };
  maxBatchPastTokens?: number;
}

export interface SubmitOptions {
  signal?: AbortSignal;
  /** Epoch milliseconds after which the rows are not worth running. */
  deadline?: number;
  /** Filled in as the rows run: the longest queue wait and forward time among them. */
  timing?: RequestTiming;
  /**
   * Per row: its wave. A row runs only once every row of a lower wave of the same request has
   * run (it reads the prefix they computed from the cache). All 0 when absent.
   */
  waves?: readonly number[];
}

export interface RequestTiming {
  queueSeconds: number;
  inferenceSeconds: number;
}

/**
 * Named float arrays with one value per scored position of the whole batch; the batcher hands
 * each row its slice, in the order of its positions.
 */
export type BatchOutputs = Record<string, Float32Array>;
export type RowOutputs = BatchOutputs;

export interface BatchReport {
  rows: number;
  paddedTokens: number;
  realTokens: number;
  scoredTokens: number;
  /** Seconds each row waited in the queue. */
  queueWaits: number[];
}

export interface BatcherObserver {
  queueSize?(size: number): void;
  batchStarted?(report: BatchReport): void;
  dropped?(reason: 'client_gone' | 'deadline_exceeded', rows: number): void;
}

interface Entry {
  row: BatchRow;
  enqueuedAt: number;
  ticket: Ticket;
  wave: number;
}

/** One submit(): its rows resolve together. */
interface Ticket {
  results: RowOutputs[];
  remaining: number;
  settled: boolean;
  signal?: AbortSignal;
  deadline?: number;
  timing?: RequestTiming;
  resolve: (r: RowOutputs[]) => void;
  reject: (e: Error) => void;
  indexOf: Map<Entry, number>;
  /** Clears the deadline timer and the abort listener once the ticket settles. */
  cleanup?: () => void;
  /** Rows not yet finished, per wave. */
  pendingByWave: number[];
}

/** `rows` are the batch's rows before padding, in the order of `batch`. */
export type RunBatch = (batch: EngineBatch, rows: readonly BatchRow[]) => Promise<BatchOutputs>;

/** The lowest wave of a ticket that still has rows to run: rows of higher waves wait. */
function openWave(t: Ticket): number {
  const w = t.pendingByWave.findIndex((n) => n > 0);
  return w < 0 ? Infinity : w;
}

export class Batcher {
  private readonly queue: Entry[] = [];
  private inflight = 0;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  /** Exponential average of batch seconds, for Retry-After. */
  private avgBatchSeconds = 0.05;

  constructor(
    private readonly options: BatcherOptions,
    private readonly runBatch: RunBatch,
    private readonly observer: BatcherObserver = {},
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.inflight > 0 || this.queue.length > 0;
  }

  submit(rows: readonly BatchRow[], options: SubmitOptions = {}): Promise<RowOutputs[]> {
    if (rows.length === 0) return Promise.resolve([]);
    if (rows.length > this.options.maxQueue) {
      // Even an empty queue could not take these rows: a 429 would invite retries that never succeed.
      return Promise.reject(
        new ServiceError(413, 'batch_too_large', `the request needs ${rows.length} sequences but the queue holds at most ${this.options.maxQueue} (max_queue); split it`),
      );
    }
    if (this.queue.length + rows.length > this.options.maxQueue) {
      const batchesAhead = Math.ceil((this.queue.length + rows.length) / this.options.maxBatchRows);
      const retryAfter = Math.max(1, Math.ceil(batchesAhead * this.avgBatchSeconds));
      return Promise.reject(
        new ServiceError(429, 'overloaded', `queue full (${this.queue.length}/${this.options.maxQueue} rows); retry later`, {
          'retry-after': String(retryAfter),
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const ticket: Ticket = {
        results: new Array(rows.length),
        remaining: rows.length,
        settled: false,
        signal: options.signal,
        deadline: options.deadline,
        timing: options.timing,
        resolve,
        reject,
        indexOf: new Map(),
        pendingByWave: [],
      };
      const now = performance.now();
      rows.forEach((row, i) => {
        const wave = options.waves?.[i] ?? 0;
        ticket.pendingByWave[wave] = (ticket.pendingByWave[wave] ?? 0) + 1;
        const entry = { row, enqueuedAt: now, ticket, wave };
        ticket.indexOf.set(entry, i);
        this.queue.push(entry);
      });
      // Answer at the deadline, or when the client leaves, even while an earlier batch still
      // runs: waiting for the next pump would hold the answer for as long as that batch takes.
      const onAbort = () => this.cancel(ticket, 'client_gone');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const timer =
        options.deadline === undefined
          ? undefined
          : setTimeout(() => this.cancel(ticket, 'deadline_exceeded'), Math.max(0, options.deadline - Date.now()));
      ticket.cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      this.observer.queueSize?.(this.queue.length);
      this.pump();
    });
  }

  /**
   * Answers every request still waiting in the queue with `err` and empties it; batches already
   * running finish (stopping a worker inside onnxruntime's run() would abort the process).
   */
  abandonQueued(err: Error): void {
    const tickets = new Set(this.queue.map((e) => e.ticket));
    this.queue.length = 0;
    for (const t of tickets) this.fail(t, err);
    this.observer.queueSize?.(0);
    this.notifyIdle();
  }

  /** Resolves when nothing is queued or running (graceful drain). */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private fail(ticket: Ticket, err: Error): void {
    if (ticket.settled) return;
    ticket.settled = true;
    ticket.cleanup?.();
    ticket.reject(err);
  }

  /**
   * Fails a request whose client left or whose deadline passed, and takes its rows that have not
   * run yet out of the queue (counted as dropped). Rows already in a running batch finish; their
   * results are ignored.
   */
  private cancel(ticket: Ticket, reason: 'client_gone' | 'deadline_exceeded'): void {
    if (ticket.settled) return;
    let queued = 0;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (this.queue[i].ticket === ticket) {
        this.queue.splice(i, 1);
        queued++;
      }
    }
    if (queued > 0) {
      this.observer.dropped?.(reason, queued);
      this.observer.queueSize?.(this.queue.length);
    }
    this.fail(
      ticket,
      reason === 'client_gone'
        ? new ServiceError(499, 'client_closed_request', 'the client went away before the request ran')
        : new ServiceError(504, 'deadline_exceeded', 'the request deadline passed before its result was ready'),
    );
    this.notifyIdle();
  }

  /** Drops rows that should not run: their request already failed, went away or expired. */
  private dropDead(): void {
    const now = Date.now();
    const doomed = new Set<Ticket>();
    for (const e of this.queue) {
      const t = e.ticket;
      if (!t.settled && (t.signal?.aborted || (t.deadline !== undefined && now > t.deadline))) doomed.add(t);
    }
    for (const t of doomed) this.cancel(t, t.signal?.aborted ? 'client_gone' : 'deadline_exceeded');
    // Rows of requests that failed another way (e.g. a sibling row's batch failed).
    const before = this.queue.length;
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i].ticket.settled) this.queue.splice(i, 1);
    if (this.queue.length !== before) this.observer.queueSize?.(this.queue.length);
  }

  /**
   * FIFO over the rows that may run: a row waiting for its request's earlier wave is passed
   * over (it is at the front again once that wave is done); the batch stops at the first row
   * that may run but does not fit.
   */
  private takeBatch(): Entry[] {
    const taken: Entry[] = [];
    const maxScored = this.options.maxBatchScored ?? Infinity;
    const maxPast = this.options.maxBatchPastTokens ?? Infinity;
    const cost = this.options.rowCost;
    let longest = 0;
    let longestPast = 0;
    let scored = 0;
    let i = 0;
    while (i < this.queue.length && taken.length < this.options.maxBatchRows) {
      const next = this.queue[i];
      if (next.wave > openWave(next.ticket)) {
        i++;
        continue;
      }
      const c = cost ? cost(next.row) : { newTokens: next.row.ids.length, pastTokens: 0 };
      const len = Math.max(longest, c.newTokens);
      const past = Math.max(longestPast, c.pastTokens);
      if (taken.length > 0 && (taken.length + 1) * bucketLength(len) > this.options.maxBatchTokens) break;
      if (taken.length > 0 && (taken.length + 1) * past > maxPast) break;
      if (taken.length > 0 && scored + next.row.positions.length > maxScored) break;
      taken.push(this.queue.splice(i, 1)[0]);
      longest = len;
      longestPast = past;
      scored += next.row.positions.length;
    }
    return taken;
  }

  /** Whether some queued row may run now (rows of a later wave wait for their request's earlier one). */
  private runnable(): boolean {
    return this.queue.some((e) => e.wave <= openWave(e.ticket));
  }

  private pump(): void {
    this.dropDead();
    while (this.inflight < this.options.maxInflight && this.queue.length > 0 && this.runnable()) {
      if (this.options.maxWaitMs > 0 && this.shouldWait()) return;
      const entries = this.takeBatch();
      this.observer.queueSize?.(this.queue.length);
      void this.dispatch(entries);
    }
    this.notifyIdle();
  }

  /** With max_wait_ms, a batch that is not yet full waits for company, but never longer than that. */
  private shouldWait(): boolean {
    const oldest = this.queue[0];
    const waited = performance.now() - oldest.enqueuedAt;
    const full = this.queue.length >= this.options.maxBatchRows;
    if (full || waited >= this.options.maxWaitMs) return false;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, this.options.maxWaitMs - waited);
    }
    return true;
  }

  private async dispatch(entries: Entry[]): Promise<void> {
    this.inflight++;
    const started = performance.now();
    try {
      const rows = entries.map((e) => e.row);
      const batch = packBatch(rows);
      this.observer.batchStarted?.({
        rows: batch.rows,
        paddedTokens: batch.rows * batch.seqLen,
        realTokens: entries.reduce((n, e) => n + e.row.ids.length, 0),
        scoredTokens: batch.scored,
        queueWaits: entries.map((e) => (started - e.enqueuedAt) / 1000),
      });
      for (const e of entries) {
        const timing = e.ticket.timing;
        if (timing) timing.queueSeconds = Math.max(timing.queueSeconds, (started - e.enqueuedAt) / 1000);
      }
      let outputs: BatchOutputs;
      try {
        outputs = await this.runBatch(batch, rows);
      } catch (err) {
        for (const e of entries) this.fail(e.ticket, err as Error);
        return;
      }
      const inferenceSeconds = (performance.now() - started) / 1000;
      for (const e of entries) {
        const timing = e.ticket.timing;
        if (timing) timing.inferenceSeconds = Math.max(timing.inferenceSeconds, inferenceSeconds);
      }
      let offset = 0;
      for (const e of entries) {
        const n = e.row.positions.length;
        const rowOutputs: RowOutputs = {};
        for (const [name, values] of Object.entries(outputs)) rowOutputs[name] = values.subarray(offset, offset + n);
        offset += n;
        const t = e.ticket;
        t.pendingByWave[e.wave]--;
        if (t.settled) continue;
        t.results[t.indexOf.get(e)!] = rowOutputs;
        if (--t.remaining === 0) {
          t.settled = true;
          t.cleanup?.();
          t.resolve(t.results);
        }
      }
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.avgBatchSeconds = 0.8 * this.avgBatchSeconds + 0.2 * seconds;
      this.inflight--;
      this.pump();
    }
  }

  private notifyIdle(): void {
    if (this.busy) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
