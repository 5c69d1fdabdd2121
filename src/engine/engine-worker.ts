/**
 * Main-thread handle of one engine worker: sends batches, matches replies, and restarts the
 * thread when it dies so pending requests fail fast (503 engine_restarting) instead of hanging.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ServiceError } from '../errors.js';
import type { EngineBatch, HeadOutputs } from './batch.js';
import { allowBufferRelease } from './buffer-release.js';
import type { KvPlan } from './kv-plan.js';
import type { SessionInfo, SessionSpec } from './session.js';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.js';

/**
 * The compiled worker (dist/) when present; else (tests, dev under tsx) a bootstrap that loads
 * the TypeScript source through tsx's API, since loader flags are not inherited by workers.
 */
function spawnWorker(workerData: unknown): Worker {
  allowBufferRelease(); // before the thread starts: Node 20 gives it `ArrayBuffer.prototype.transfer` then
  const js = new URL('./worker.js', import.meta.url);
  if (fs.existsSync(fileURLToPath(js))) return new Worker(js, { workerData });
  const ts = new URL('./worker.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then(({ tsImport }) => tsImport(${JSON.stringify(ts)}, ${JSON.stringify(ts)}))`;
  return new Worker(bootstrap, { eval: true, workerData });
}

export interface WorkerResult {
  outputs: HeadOutputs;
  /** The plan's cached blocks were missing, so the whole rows were recomputed. */
  recomputed: boolean;
  /** Bytes of KV blocks the worker holds after the run. */
  cacheBytes: number;
}

interface Pending {
  resolve: (o: WorkerResult) => void;
  reject: (e: Error) => void;
}

export class EngineWorker extends EventEmitter {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closing = false;
  private restarts = 0;
  info: SessionInfo | null = null;
  ready = false;

  constructor(
    readonly role: string,
    private readonly spec: SessionSpec,
  ) {
    super();
  }

  /** Starts the thread; resolves once the session is loaded and warmed, rejects on a load error. */
  start(): Promise<SessionInfo> {
    const worker = spawnWorker(this.spec);
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (msg: WorkerResponse) => {
        if (msg.type === 'ready') {
          started = true;
          this.info = msg.info;
          this.ready = true;
          this.emit('ready', msg.info);
          resolve(msg.info);
        } else if (msg.type === 'fatal') {
          started = true;
          this.closing = true;
          void worker.terminate();
          reject(new Error(msg.message));
        } else if (msg.type === 'result' || msg.type === 'error') {
          const p = this.pending.get(msg.id);
          if (!p) return;
          this.pending.delete(msg.id);
          if (msg.type === 'result') p.resolve(msg);
          else p.reject(new ServiceError(500, 'inference_failed', `${this.role} forward pass failed: ${msg.message}`));
        }
      });
      worker.on('error', (err) => {
        if (!started) {
          started = true;
          reject(err);
        }
      });
      worker.on('exit', (code) => {
        if (this.worker !== worker) return;
        this.ready = false;
        this.worker = null;
        this.failPending(new ServiceError(503, 'engine_restarting', `the ${this.role} engine worker stopped; retry shortly`, { 'retry-after': '1' }));
        if (!started) {
          started = true;
          reject(new Error(`${this.role} worker exited with code ${code} before loading`));
          return;
        }
        if (!this.closing) {
          this.restarts++;
          this.emit('down', code);
          this.start().catch((err) => this.emit('restart_failed', err));
        }
      });
    });
  }

  get restartCount(): number {
    return this.restarts;
  }

  /** One forward of the whole rows (statistics on, in a session that has them). */
  async run(batch: EngineBatch): Promise<HeadOutputs> {
    return (await this.runPlanned(batch, true)).outputs;
  }

  /** One forward, with the statistics switched on or off and, with `kv`, over cached blocks. */
  runPlanned(batch: EngineBatch, stats: boolean, kv?: KvPlan): Promise<WorkerResult> {
    const worker = this.worker;
    if (!worker || !this.ready) {
      return Promise.reject(new ServiceError(503, 'engine_restarting', `the ${this.role} engine worker is restarting; retry shortly`, { 'retry-after': '1' }));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ type: 'run', id, batch, stats, kv } satisfies WorkerRequest);
    });
  }

  /** Drops every cached KV block (after the batches already sent). */
  clearCache(): void {
    this.worker?.postMessage({ type: 'clear-cache' } satisfies WorkerRequest);
  }

  /**
   * For tests of crash recovery: the thread dies of an uncaught exception, as a JS fault would,
   * and is restarted. Not terminate(): terminating a thread while onnxruntime is inside run()
   * aborts the whole process (its binding throws a C++ Napi::Error into the terminating isolate),
   * which is also why close() is only called once the batcher is idle.
   */
  async kill(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage({ type: 'crash', message: `${this.role} worker: crash requested` } satisfies WorkerRequest);
    await exited;
  }

  private failPending(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closing = true;
    const worker = this.worker;
    this.worker = null;
    this.ready = false;
    this.failPending(new ServiceError(503, 'shutting_down', 'the engine is shutting down'));
    if (worker) await worker.terminate();
  }
}
