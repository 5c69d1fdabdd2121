/**
 * Graceful drain (issue 7): a real `pa-server serve` child process (embedded gridworld pair) with
 * 500 requests in flight receives SIGTERM.
 *  - every request the server accepted is answered in full: 200 with the exact value (float64
 *    log-softmax over the unmodified models' raw logits), or 503 `shutting_down` for one it read
 *    after draining began — never a reset connection or a truncated body once a response started;
 *  - requests sent after the signal get 503 or a refused connection;
 *  - the process exits 0.
 * At least some 200s arrive after the signal was sent (the drain really had work in flight).
 */
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rawLogits, logsumexp } from '../helpers/reference-logprobs.js';
import { freePort, ROOT, startServer, waitReady, type ServerProcess } from './server-process.js';

const POLICY = path.join(ROOT, 'models/gridworld-policy/model.onnx');
const REFERENCE = path.join(ROOT, 'models/gridworld-reference/model.onnx');
const BOS = 2;
const IN_FLIGHT = 500;
const DISTINCT = 10;

const started: ServerProcess[] = [];
afterEach(() => {
  for (const s of started.splice(0)) s.kill();
});

async function expectedLogRatio(promptIds: number[], stepIds: number[]): Promise<number> {
  const ids = [...promptIds, ...stepIds];
  const p = (await rawLogits(POLICY, ids)).rows;
  const q = (await rawLogits(REFERENCE, ids)).rows;
  let sum = 0;
  for (let k = promptIds.length; k < ids.length; k++) sum += p[k - 1][ids[k]] - logsumexp(p[k - 1]) - (q[k - 1][ids[k]] - logsumexp(q[k - 1]));
  return sum;
}

function body(i: number) {
  const n = i % DISTINCT;
  return { prompt_ids: [BOS, ...Array.from({ length: 60 + n * 9 }, (_, k) => 4 + ((n * 17 + k * 5) % 40))], step_ids: [4 + n, 9 + n, 20 + n], beta: 1 };
}

type Outcome = { kind: 'response'; status: number; body: any; afterSignal: boolean } | { kind: 'connection_error'; code: string; gotResponse: boolean };

function send(port: number, payload: object, signalled: () => boolean, written?: () => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const text = JSON.stringify(payload);
    let gotResponse = false;
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/score', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } },
      (res) => {
        gotResponse = true;
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(data);
          } catch {
            parsed = { truncated_body: data };
          }
          resolve({ kind: 'response', status: res.statusCode!, body: parsed, afterSignal: signalled() });
        });
        res.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'connection_error', code: err.code ?? err.message, gotResponse }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'connection_error', code: err.code ?? err.message, gotResponse }));
    req.on('finish', () => written?.());
    req.end(text);
  });
}

describe('SIGTERM with 500 requests in flight', () => {
  it('answers every accepted request in full, refuses new ones, exits 0', async () => {
    const port = await freePort();
    const server = startServer(['--max-batch-rows', '8'], port);
    started.push(server);
    await waitReady(server);
    const expected = await Promise.all(Array.from({ length: DISTINCT }, (_, n) => expectedLogRatio(body(n).prompt_ids, body(n).step_ids)));

    let signalled = false;
    let written = 0;
    let firstAnswer!: () => void;
    const answered = new Promise<void>((resolve) => (firstAnswer = resolve));
    const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) =>
      send(port, body(i), () => signalled, () => written++).then((o) => {
        firstAnswer();
        return o;
      }),
    );
    // Every body is on the wire and the server is answering: now stop it.
    while (written < IN_FLIGHT) await new Promise((resolve) => setTimeout(resolve, 5));
    await answered;
    server.child.kill('SIGTERM');
    signalled = true;
    const late = await Promise.all(Array.from({ length: 5 }, () => send(port, body(0), () => true)));

    const outcomes = await Promise.all(inFlight);
    const { code, signal } = await server.exited;
    expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });

    let ok = 0;
    let okAfterSignal = 0;
    outcomes.forEach((o, i) => {
      if (o.kind === 'response' && o.status === 200) {
        ok++;
        if (o.afterSignal) okAfterSignal++;
        expect(Math.abs(o.body.log_ratio - expected[i % DISTINCT])).toBeLessThan(1e-4);
      } else if (o.kind === 'response') {
        expect([o.status, o.body?.error?.code]).toEqual([503, 'shutting_down']);
      } else {
        // Never accepted: refused or reset before any response byte. A response once started is always complete.
        expect(o.gotResponse).toBe(false);
        expect(['ECONNREFUSED', 'ECONNRESET']).toContain(o.code);
      }
    });
    expect(ok).toBeGreaterThan(0);
    expect(okAfterSignal).toBeGreaterThan(0);
    for (const o of late) {
      if (o.kind === 'response') expect([o.status, o.body?.error?.code]).toEqual([503, 'shutting_down']);
      else expect(['ECONNREFUSED', 'ECONNRESET']).toContain(o.code);
    }
  }, 120_000);
});

describe('--drain-timeout-ms', () => {
  it('when the timeout passes, answers what is still queued 503, lets running batches finish, exits 1 and says so', async () => {
    const port = await freePort();
    // Timeout 0: the drain timer fires before any in-flight forward pass can finish.
    const server = startServer(['--max-batch-rows', '1', '--drain-timeout-ms', '0'], port, { PA_LOG_LEVEL: 'info' });
    started.push(server);
    await waitReady(server);
    let written = 0;
    let firstAnswer!: () => void;
    const answered = new Promise<void>((resolve) => (firstAnswer = resolve));
    const inFlight = Array.from({ length: 200 }, (_, i) =>
      send(port, body(i), () => true, () => written++).then((o) => {
        firstAnswer();
        return o;
      }),
    );
    while (written < 200) await new Promise((resolve) => setTimeout(resolve, 5));
    await answered; // the server is busy answering a queue of one-row batches
    server.child.kill('SIGTERM');
    const { code, signal } = await server.exited;
    const outcomes = await Promise.all(inFlight);
    expect({ code, signal }).toEqual({ code: 1, signal: null });
    expect(server.stdout() + server.stderr()).toContain('drain timed out');
    // Every accepted request got a whole answer: its result, or 503 shutting_down for one still
    // queued; the only other outcome is a connection never accepted (no response byte), as above.
    let refused = 0;
    for (const o of outcomes) {
      if (o.kind === 'connection_error') {
        expect(o.gotResponse).toBe(false);
        expect(['ECONNREFUSED', 'ECONNRESET']).toContain(o.code);
      } else if (o.status !== 200) {
        refused++;
        expect([o.status, o.body?.error?.code]).toEqual([503, 'shutting_down']);
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});

