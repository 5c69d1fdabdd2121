/**
 * The server as a user starts it: a real child process (`pa-server serve --policy A --reference B
 * --port P`), waited on until /ready answers 200, asked for a score over real HTTP, then stopped
 * with SIGTERM, which must drain and exit 0. Model pairs: the embedded default gridworld pair,
 * the real Llama fp16 export (external weights) against a perturbed copy, and the GPT-2
 * past.onnx export against a perturbed copy. Expected numbers: a float64 log-softmax over each
 * unmodified model's raw logits (test/helpers/reference-logprobs.ts); text is tokenized here
 * with @huggingface/tokenizers directly, not through src/text.
 *
 * The first three run the TypeScript entry through tsx (the dev path); the last runs
 * `npm start -- --port P`, which builds dist/ through prestart and runs the compiled CLI.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { perturbModel } from '../helpers/onnx-fixtures.js';
import { logsumexp, rawLogits } from '../helpers/reference-logprobs.js';
import { freePort } from '../reliability/server-process.js';
import { needShared, sharedPath } from '../helpers/shared.js';

const ROOT = path.resolve(__dirname, '../..');
const LLAMA = sharedPath('models', 'tiny-random-LlamaForCausalLM-fp16');
const GPT2 = sharedPath('models', 'tiny-random-gpt2-fp32');
const HAVE_SHARED = needShared(import.meta.url, [LLAMA, GPT2]);
const GRIDWORLD = { policy: path.join(ROOT, 'models/gridworld-policy'), reference: path.join(ROOT, 'models/gridworld-reference') };

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-e2e-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

interface Running {
  child: ChildProcess;
  detached: boolean;
  port: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: Running[] = [];
afterEach(() => {
  // A failed test must not leave a server behind (npm start: its whole process group).
  for (const r of running.splice(0)) {
    if (r.child.exitCode !== null || r.child.signalCode !== null || r.child.pid === undefined) continue;
    if (r.detached) process.kill(-r.child.pid, 'SIGKILL');
    else r.child.kill('SIGKILL');
  }
});

function start(command: string, args: string[], port: number, options: { detached?: boolean } = {}): Running {
  const child = spawn(command, args, {
    cwd: ROOT,
    // Only these PA_* settings: any others in the runner's environment would change the server.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PA_'))), PA_LOG_LEVEL: 'warn', PA_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const r = { child, port, detached: options.detached ?? false, output: () => log, exited };
  running.push(r);
  return r;
}

/** `pa-server serve` from the TypeScript sources, as in development. */
function startServe(flags: string[], port: number): Running {
  return start(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', ...flags, '--port', String(port)], port);
}

async function waitReady(r: Running): Promise<void> {
  let status = 0;
  // Bounded by the hook/test timeout; stops early when the process dies.
  while (status !== 200) {
    if (r.child.exitCode !== null || r.child.signalCode !== null) {
      throw new Error(`server exited (${r.child.exitCode ?? r.child.signalCode}) before ready:\n${r.output()}`);
    }
    try {
      status = (await fetch(`http://127.0.0.1:${r.port}/ready`)).status;
    } catch {
      status = 0; // not listening yet
    }
    if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The `node dist/src/cli.js serve` process in a detached npm process group. */
function serverPidInGroup(groupId: number): number {
  const lines = execFileSync('ps', ['-o', 'pid=,args=', '-g', String(groupId)], { encoding: 'utf8' }).split('\n');
  const server = lines.map((l) => /^\s*(\d+)\s+(.*)$/.exec(l)).find((m) => m && /^node .*dist\/src\/cli\.js serve/.test(m[2]));
  if (!server) throw new Error(`no server process in group ${groupId}:\n${lines.join('\n')}`);
  return Number(server[1]);
}

async function score(r: Running, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${r.port}/v1/score`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function stop(r: Running): Promise<void> {
  // npm start: npm does not forward SIGTERM (it dies of it); the signal goes to the server
  // itself, as a process manager would send it, and npm then exits with the script's code.
  if (r.detached) process.kill(serverPidInGroup(r.child.pid!), 'SIGTERM');
  else r.child.kill('SIGTERM');
  const { code, signal } = await r.exited;
  expect({ code, signal, output: code === 0 ? '' : r.output() }).toEqual({ code: 0, signal: null, output: '' });
}

/** Per-token float64 log π − log π_ref of ids[start..] from the raw logits of both models. */
async function expectedRatios(policyOnnx: string, referenceOnnx: string, ids: number[], start: number): Promise<number[]> {
  const p = (await rawLogits(policyOnnx, ids)).rows;
  const q = (await rawLogits(referenceOnnx, ids)).rows;
  const out: number[] = [];
  for (let k = start; k < ids.length; k++) {
    out.push(p[k - 1][ids[k]] - logsumexp(p[k - 1]) - (q[k - 1][ids[k]] - logsumexp(q[k - 1])));
  }
  return out;
}

function checkTokens(body: any, stepIds: number[], ratios: number[]): void {
  expect(body.num_tokens).toBe(stepIds.length);
  expect(body.tokens.map((t: any) => t.id)).toEqual(stepIds);
  body.tokens.forEach((t: any, k: number) => expect(Math.abs(t.log_ratio - ratios[k])).toBeLessThan(1e-4));
  const total = ratios.reduce((a, b) => a + b, 0);
  expect(Math.abs(body.log_ratio - total)).toBeLessThan(1e-4 * stepIds.length);
  expect(Math.abs(body.advantage - body.beta * body.log_ratio)).toBeLessThan(1e-9);
}

describe('pa-server serve as a child process', () => {
  it('the embedded default gridworld pair (no model flags): text request, β from kl_beta', async () => {
    const r = startServe([], await freePort());
    await waitReady(r);
    const readJson = (f: string) => JSON.parse(fs.readFileSync(path.join(GRIDWORLD.policy, f), 'utf8'));
    const tok = new Tokenizer(readJson('tokenizer.json'), readJson('tokenizer_config.json'));
    const bos = tok.token_to_id('<bos>')!;
    const prompt = '[user]: at 4 1 , up . down # left . right P';
    const step = '\n[assistant]: up';
    const promptIds = tok.encode(prompt, { add_special_tokens: false }).ids;
    const stepIds = tok.encode(step, { add_special_tokens: false }).ids;
    const ids = [bos, ...promptIds, ...stepIds];

    const res = await score(r, { prompt, step, return_tokens: true });
    expect(res.status).toBe(200);
    expect(res.body.beta).toBe(readJson('config.json').kl_beta);
    const ratios = await expectedRatios(
      path.join(GRIDWORLD.policy, 'model.onnx'),
      path.join(GRIDWORLD.reference, 'model.onnx'),
      ids,
      ids.length - stepIds.length,
    );
    checkTokens(res.body, stepIds, ratios);
    await stop(r);
  });

  for (const [label, original, onnxName, vocab, bos] of [
    ['the real Llama fp16 export (external weights) against a perturbed copy', LLAMA, 'model.onnx', 32000, 1],
    ['the GPT-2 past.onnx export against a perturbed copy', GPT2, 'past.onnx', 1000, 98],
  ] as const) {
    it.skipIf(!HAVE_SHARED)(`${label}: --policy A --reference B --port P`, async () => {
      const perturbed = path.join(tmpRoot, path.basename(original));
      perturbModel(original, perturbed, { scale: 0.3, seed: 17 });
      const r = startServe(['--policy', perturbed, '--reference', original, '--beta', '0.5'], await freePort());
      await waitReady(r);
      const promptIds = [bos, 52, 195, 731, 17, 404, 9];
      const stepIds = [12, 204, 114, 731, 3];
      const res = await score(r, { prompt_ids: promptIds, step_ids: stepIds, return_tokens: true });
      expect(res.status).toBe(200);
      expect(res.body.beta).toBe(0.5);
      const ids = [...promptIds, ...stepIds];
      const ratios = await expectedRatios(path.join(perturbed, onnxName), path.join(original, onnxName), ids, promptIds.length);
      expect(Math.max(...ratios.map(Math.abs))).toBeGreaterThan(1e-3);
      checkTokens(res.body, stepIds, ratios);
      const outOfVocabulary = await score(r, { prompt_ids: [bos], step_ids: [vocab] });
      expect(outOfVocabulary.status).toBe(422);
      expect(outOfVocabulary.body.error.code).toBe('ids_out_of_vocabulary');
      await stop(r);
    });
  }

  it.skipIf(!HAVE_SHARED)('a client that goes away is dropped from the queue; SIGTERM during a request answers it in full, then exit 0', async () => {
    const perturbed = path.join(tmpRoot, 'llama-drain');
    perturbModel(LLAMA, perturbed, { scale: 0.3, seed: 23 });
    // One row per batch: each request below runs as many sequential batches, so it is still in
    // flight when the client leaves or the signal arrives.
    const r = startServe(['--policy', perturbed, '--reference', LLAMA, '--max-batch-rows', '1'], await freePort());
    await waitReady(r);
    const items = Array.from({ length: 24 }, (_, i) => ({ prompt_ids: [1, ...Array.from({ length: 300 }, (_, t) => 3 + ((t * 31 + i * 7) % 31000))], step_ids: [5 + i, 6, 7] }));
    const metric = async (re: RegExp) => {
      const text = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text();
      return Number(re.exec(text)?.[1] ?? 0);
    };
    const batchesStarted = () => metric(/^pa_batch_rows_count(?:\{\})? (\d+)$/m);
    const droppedClientGone = () => metric(/^pa_dropped_requests_total\{reason="client_gone"\} (\d+)$/m);
    const sleep = () => new Promise((resolve) => setTimeout(resolve, 20));

    const abort = new AbortController();
    const abandoned = fetch(`http://127.0.0.1:${r.port}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ items }),
      signal: abort.signal,
    }).catch((err: Error) => err);
    while ((await batchesStarted()) < 1) await sleep();
    abort.abort();
    expect(await abandoned).toBeInstanceOf(Error);
    while ((await droppedClientGone()) < 1) await sleep();

    const before = await batchesStarted();
    const pending = score(r, { items });
    while ((await batchesStarted()) <= before) await sleep();
    await stop(r);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body.results).toHaveLength(items.length);
    for (const result of res.body.results) expect(Number.isFinite(result.advantage)).toBe(true);
  });

  it('a port already in use, or a missing model directory: one clear line on stderr and exit 1', async () => {
    const holder = net.createServer();
    const port = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as net.AddressInfo).port)));
    try {
      const busy = startServe([], port);
      const { code } = await busy.exited;
      expect(code).toBe(1);
      expect(busy.output()).toMatch(new RegExp(`pa-server: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    } finally {
      holder.close();
    }
    const missing = path.join(tmpRoot, 'no-such-model');
    const bad = startServe(['--policy', missing, '--reference', GRIDWORLD.reference], await freePort());
    const { code } = await bad.exited;
    expect(code).toBe(1);
    expect(bad.output()).toContain(`pa-server: cannot start: scorer "default": ${missing}: model directory not found`);
    // Checked before the port is taken: nothing says it listened.
    expect(bad.output()).not.toMatch(/listening/i);
  });

  it('npm start -- --port P: builds dist/ and serves the default pair from the compiled CLI', async () => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const port = await freePort();
    const r = start(npm, ['start', '--silent', '--', '--port', String(port)], port, { detached: true });
    await waitReady(r);
    const res = await score(r, { prompt: '[user]: at 0 0 , up # down . left # right .', step: '\n[assistant]: down' });
    expect(res.status).toBe(200);
    expect(Number.isFinite(res.body.advantage)).toBe(true);
    expect(res.body.num_tokens).toBeGreaterThan(0);
    await stop(r);
  }, 240_000);
});
