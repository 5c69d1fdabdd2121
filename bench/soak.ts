/**
 * Soak (issue 7): N requests (default 100,000) at a steady concurrency against a started server
 * (a `pa-server serve` child process on the embedded gridworld pair, or --url of a running one).
 * Reports, at the start, middle and end of the run: the server's RSS (from /metrics
 * pa_process_resident_memory_bytes) and the p50/p99 latency of the surrounding 5% of requests;
 * then RSS growth % from start (after warm-up) to end, and every non-200 by status. Writes
 * bench/out/soak.json.
 *
 *   npx tsx bench/soak.ts [--requests 100000] [--concurrency 32] [--url http://127.0.0.1:8080]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const REQUESTS = Number(arg('requests') ?? 100_000);
const CONCURRENCY = Number(arg('concurrency') ?? 32);
let url = arg('url');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

let child: ReturnType<typeof spawn> | undefined;
if (!url) {
  const port = await freePort();
  child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--port', String(port)], {
    cwd: ROOT,
    env: { ...process.env, PA_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  url = `http://127.0.0.1:${port}`;
  for (;;) {
    try {
      if ((await fetch(`${url}/ready`)).status === 200) break;
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

// A mix of realistic gridworld requests: single steps of varied context length and small item batches.
const BODIES = Array.from({ length: 16 }, (_, i) => {
  const prompt = `[user]: at ${i % 5} ${(i * 3) % 5} , up # down . left # right .` + ' \n[assistant]: up \n[env]: at 1 1'.repeat(i % 6);
  return JSON.stringify(i % 4 === 3 ? { items: [{ prompt, step: '\n[assistant]: down' }, { prompt, step: '\n[assistant]: left' }] } : { prompt, step: '\n[assistant]: right' });
});

function post(body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: '/v1/score', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function rssBytes(): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^pa_process_resident_memory_bytes (\S+)$/m.exec(text)?.[1] ?? NaN);
}

const latencies = new Float64Array(REQUESTS);
const statuses = new Map<number, number>();
const rss: Record<string, number> = {};
let next = 0;
let done = 0;
const marks = { start: Math.floor(REQUESTS * 0.05), middle: Math.floor(REQUESTS * 0.5), end: REQUESTS - 1 };
const started = performance.now();

async function lane(): Promise<void> {
  while (next < REQUESTS) {
    const i = next++;
    const t0 = performance.now();
    const status = await post(BODIES[i % BODIES.length]);
    latencies[i] = performance.now() - t0;
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    done++;
    for (const [name, at] of Object.entries(marks)) if (done === at + 1 && rss[name] === undefined) rss[name] = await rssBytes();
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, lane));
const seconds = (performance.now() - started) / 1000;

function percentiles(from: number, to: number) {
  const window = Array.from(latencies.subarray(Math.max(0, from), Math.min(REQUESTS, to))).sort((a, b) => a - b);
  const at = (q: number) => window[Math.min(window.length - 1, Math.floor(q * window.length))];
  return { p50_ms: Number(at(0.5).toFixed(2)), p99_ms: Number(at(0.99).toFixed(2)) };
}
const w = Math.max(1, Math.floor(REQUESTS * 0.05));
const phases = {
  start: { rss_mb: Number((rss.start / 2 ** 20).toFixed(1)), ...percentiles(marks.start - w / 2, marks.start + w / 2) },
  middle: { rss_mb: Number((rss.middle / 2 ** 20).toFixed(1)), ...percentiles(marks.middle - w / 2, marks.middle + w / 2) },
  end: { rss_mb: Number((rss.end / 2 ** 20).toFixed(1)), ...percentiles(REQUESTS - w, REQUESTS) },
};
const growth = ((rss.end - rss.start) / rss.start) * 100;
const result = {
  date: new Date().toISOString(),
  host: `${os.cpus()[0]?.model ?? 'cpu'} × ${os.availableParallelism()}`,
  requests: REQUESTS,
  concurrency: CONCURRENCY,
  seconds: Number(seconds.toFixed(1)),
  requests_per_second: Number((REQUESTS / seconds).toFixed(1)),
  statuses: Object.fromEntries(statuses),
  phases,
  rss_growth_percent: Number(growth.toFixed(2)),
  rss_growth_under_10_percent: growth < 10,
};
fs.mkdirSync(path.join(ROOT, 'bench', 'out'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'bench', 'out', 'soak.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
agent.destroy();
child?.kill('SIGTERM');
