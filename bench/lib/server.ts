/**
 * The real server as a child process (`node dist/src/cli.js serve`), a small HTTP load client,
 * and the process facts the benches read: peak RSS from /proc and pa_batch_rows from /metrics.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BENCH_MAX_BATCH_TOKENS, log, ROOT, sleep, type Pair } from './common.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than src/ (the server runs compiled, as in production). */
export function ensureBuilt(): void {
  const fresh = fs.existsSync(CLI) && fs.statSync(CLI).mtimeMs >= newestMtime(path.join(ROOT, 'src'));
  if (fresh) return;
  log('building (npm run build)');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  // tsc still emits when a type error elsewhere fails the build; the server only needs its files.
  if (!fs.existsSync(CLI)) throw new Error(`npm run build did not produce ${CLI} (exit ${r.status})`);
  if (r.status !== 0) log(`warning: npm run build exited ${r.status}; running the emitted dist/ anyway`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Sum of one metric's samples (every label set) in a Prometheus text exposition. */
export function metricSum(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

export interface ServerOptions {
  device: string;
  /** Extra `serve` flags (e.g. ['--threads', '2']). */
  flags?: string[];
}

export class BenchServer {
  private stderr = '';

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
  }

  static async start(pair: Pair, options: ServerOptions): Promise<BenchServer> {
    ensureBuilt();
    const port = await freePort();
    const args = [CLI, 'serve', '--policy', pair.policy, '--reference', pair.reference, '--host', '127.0.0.1', '--port', String(port), '--device', options.device, '--max-batch-tokens', String(BENCH_MAX_BATCH_TOKENS), ...(options.flags ?? [])];
    // Request logs go to stdout at the default level, as in production; they are discarded here.
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const server = new BenchServer(child, `http://127.0.0.1:${port}`);
    await server.waitReady();
    return server;
  }

  private async waitReady(timeoutMs = 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`server exited with ${this.child.exitCode}: ${this.stderr}`);
      try {
        const r = await fetch(`${this.url}/ready`);
        if (r.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    throw new Error(`server not ready after ${timeoutMs / 1000} s: ${this.stderr}`);
  }

  /** Peak resident set of the server process (main thread + both engine workers), MiB. */
  peakRssMiB(): number {
    const status = fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    return kb / 1024;
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.url}/metrics`)).text();
  }

  /** Sum and count of the pa_batch_rows histogram (cumulative since start). */
  async batchRows(): Promise<{ sum: number; count: number }> {
    const text = await this.metrics();
    return { sum: metricSum(text, 'pa_batch_rows_sum'), count: metricSum(text, 'pa_batch_rows_count') };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

export interface LoadResult {
  requests: number;
  concurrency: number;
  seconds: number;
  latenciesMs: number[];
}

/**
 * Sends every body once, `concurrency` at a time (each lane sends its next request when the last
 * one answered: a closed loop, like agents waiting on their scores). A non-2xx answer aborts the
 * bench: a benchmark that counts failures as fast answers would lie.
 */
export async function runLoad(url: string, bodies: readonly string[], concurrency: number): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const started = performance.now();
      const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await r.text();
      if (!r.ok) throw new Error(`${url} answered ${r.status}: ${text.slice(0, 300)}`);
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, bodies.length) }, lane));
  return { requests: bodies.length, concurrency, seconds: (performance.now() - t0) / 1000, latenciesMs: latencies };
}
