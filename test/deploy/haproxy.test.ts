/**
 * The shipped docker/haproxy/haproxy.cfg with the real HAProxy (Debian package `haproxy`, which
 * .ci/run installs; without it these tests skip, except under CI=true where they fail):
 *  - `haproxy -c` accepts it (its only warnings are the compose host names it cannot resolve here);
 *  - three replicas of `pa-server serve` on the default pair behind HAProxy with that file, only
 *    the listen and server addresses substituted (127.0.0.1 and free ports). Three agent sessions,
 *    each on its own replica, make 10 calls each with a growing context and `x-session-id`;
 *    every call after a session's first reads its context from the prefix cache
 *    (`usage.cached_tokens > 0`). After 5 calls of the first session its replica is SIGKILLed
 *    while that session's next call is on its way: no request fails, the session moves to one
 *    other replica for good, its first call there is a miss and the following ones hit; the other
 *    sessions stay where they were. Every answer equals the same call to a single server
 *    (in-process, same default config) up to float noise.
 * The cache checks need the prefix cache of issue 12 (see CACHE_SHIPPED); the rest holds without it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { gridworldEpisodes } from '../helpers/default-pair-app.js';
import { freePort, ROOT, startServer, waitReady, type ServerProcess } from '../reliability/server-process.js';

const CFG = path.join(ROOT, 'docker', 'haproxy', 'haproxy.cfg');
const haveHaproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).status === 0;
if (!haveHaproxy && !process.env.CI) console.warn('haproxy.test.ts: skipped: the haproxy binary is missing (Debian package haproxy; .ci/run installs it)');
const describeHaproxy = describe.skipIf(!haveHaproxy && !process.env.CI);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-haproxy-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describeHaproxy('docker/haproxy/haproxy.cfg', () => {
  it('haproxy -c accepts it; the only warnings are the unresolvable compose host names', () => {
    const run = spawnSync('haproxy', ['-c', '-f', CFG], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout + run.stderr).toContain('Configuration file is valid');
    const warnings = (run.stdout + run.stderr).split('\n').filter((l) => l.includes('[WARNING]'));
    for (const w of warnings) expect(w).toMatch(/could not resolve address 'pa-server(-\d)?', disabling server/);
  });

  it('says what the issue asks: session hashing, /ready checks, retries with redispatch, long timeouts', () => {
    const text = fs.readFileSync(CFG, 'utf8').replace(/#.*$/gm, '');
    expect(text).toMatch(/^\s*balance hdr\(x-session-id\)$/m);
    expect(text).toMatch(/^\s*hash-type consistent$/m);
    expect(text).toMatch(/^\s*http-check send meth GET uri \/ready$/m);
    expect(text).toMatch(/^\s*option redispatch\b/m);
    const retryOn = /^\s*retry-on (.*)$/m.exec(text)![1].split(/\s+/);
    expect(retryOn).toEqual(expect.arrayContaining(['conn-failure', '503']));
    expect(Number(/^\s*timeout server (\d+)s$/m.exec(text)![1])).toBeGreaterThanOrEqual(300);
  });
});

/** The shipped file with only the addresses changed: the frontend's bind and each server's host:port. */
function localConfig(front: number, ports: number[]): string {
  let text = fs.readFileSync(CFG, 'utf8');
  const binds = text.match(/^(\s*bind\s+):8080$/gm) ?? [];
  expect(binds).toHaveLength(1);
  text = text.replace(/^(\s*bind\s+):8080$/m, `$1127.0.0.1:${front}`);
  const servers = [...text.matchAll(/^(\s*server\s+\S+\s+)(\S+:8080)$/gm)];
  expect(servers).toHaveLength(ports.length);
  servers.forEach((m, i) => (text = text.replace(m[0], `${m[1]}127.0.0.1:${ports[i]}`)));
  return text;
}

const serverNames = (): string[] => [...fs.readFileSync(CFG, 'utf8').matchAll(/^\s*server\s+(\S+)\s+\S+:8080$/gm)].map((m) => m[1]);

/** Plain rendering of a message list, as the default pair was trained on (design §2). */
const render = (messages: { role: string; content: string }[]) => messages.map((m, i) => `${i > 0 ? '\n' : ''}[${m.role}]: ${m.content}`).join('');

/** The first 10 steps of an episode as growing-context /v1/score calls: context before step k, step k. */
function agentCalls(episodeId: string): { prompt: string; step: string }[] {
  const episode = gridworldEpisodes(800).find((e) => e.id === episodeId)!;
  const messages: { role: string; content: string }[] = episode.messages;
  const calls: { prompt: string; step: string }[] = [];
  messages.forEach((m, i) => {
    if (m.role === 'assistant' && calls.length < 10) calls.push({ prompt: render(messages.slice(0, i)), step: `\n[assistant]: ${m.content}` });
  });
  expect(calls).toHaveLength(10);
  return calls;
}

/** Same structure; numbers equal up to float noise (rows batched with other sessions' rows are padded differently). */
function expectSameAnswer(actual: any, expected: any, at: string): void {
  if (typeof expected === 'number') {
    expect(typeof actual, at).toBe('number');
    expect(Math.abs(actual - expected), `${at}: ${actual} vs ${expected}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(expected)));
    return;
  }
  if (expected && typeof expected === 'object') {
    expect(Object.keys(actual ?? {}).sort(), at).toEqual(Object.keys(expected).sort());
    for (const k of Object.keys(expected)) expectSameAnswer(actual[k], expected[k], `${at}.${k}`);
    return;
  }
  expect(actual, at).toEqual(expected);
}

/**
 * The prefix cache (issue 12, `prefix_cache_mb`) reports `usage.cached_tokens`. Until it is part of
 * the service the hit/miss checks below cannot hold and are skipped, with a warning; once the
 * config has the key they are enforced on every call.
 */
const CACHE_SHIPPED = 'prefix_cache_mb' in defaultConfig();
if (!CACHE_SHIPPED) console.warn('haproxy.test.ts: the prefix cache (prefix_cache_mb, issue 12) is not in this build: cache hit/miss checks skipped');
const expectHit = (a: { body: any }, label: string) => {
  if (CACHE_SHIPPED) expect(a.body.usage.cached_tokens, `${label} hits the prefix cache`).toBeGreaterThan(0);
};
const expectMiss = (a: { body: any }, label: string) => {
  if (CACHE_SHIPPED) expect(a.body.usage.cached_tokens, `${label} misses the prefix cache`).toBe(0);
};

interface Answer {
  session: string;
  call: number;
  status: number;
  servedBy: string | null;
  echoed: string | null;
  body: any;
}

describeHaproxy('three replicas behind HAProxy with the shipped configuration', () => {
  const replicas: ServerProcess[] = [];
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  let front = 0;
  let single: { app: App; pool: ScorerPool } | undefined;

  beforeAll(async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    front = await freePort();
    for (const port of ports) replicas.push(startServer([], port));
    await Promise.all(replicas.map(waitReady));
    const cfg = path.join(tmp, 'haproxy.cfg');
    fs.writeFileSync(cfg, localConfig(front, ports));
    haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout!.on('data', (d) => (haproxyLog += d));
    haproxy.stderr!.on('data', (d) => (haproxyLog += d));
    for (;;) {
      if (haproxy.exitCode !== null) throw new Error(`haproxy exited (${haproxy.exitCode}):\n${haproxyLog}`);
      try {
        if ((await fetch(`http://127.0.0.1:${front}/health`)).status === 200) break;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The single server the answers are compared with: the same default config as the replicas.
    const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent' });
    const pool = new ScorerPool(config);
    single = { app: buildApp(config, pool, { metrics: new Metrics({ defaultMetrics: false }) }), pool };
    await pool.load();
  }, 400_000);

  afterAll(async () => {
    haproxy?.kill('SIGKILL');
    for (const r of replicas) r.kill();
    await single?.app.close();
    await single?.pool.close();
  });

  it('keeps each session on one replica; a SIGKILLed replica costs its session one miss and no failed request', async () => {
    const names = serverNames();
    const call = async (session: string, url: string, body?: object) => {
      const res = await fetch(`http://127.0.0.1:${front}${url}`, {
        method: body ? 'POST' : 'GET',
        headers: { 'x-session-id': session, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(60_000),
      });
      return { status: res.status, servedBy: res.headers.get('x-served-by'), echoed: res.headers.get('x-session-id'), body: await res.json() };
    };

    // One session per replica: GET /v1/models is routed like a scoring call but computes nothing.
    const home = new Map<string, string>(); // replica → session
    for (let k = 0; home.size < names.length && k < 500; k++) {
      const session = `agent-run-${k}`;
      const probe = await call(session, '/v1/models');
      expect(probe.status).toBe(200);
      if (!home.has(probe.servedBy!)) home.set(probe.servedBy!, session);
    }
    expect([...home.keys()].sort()).toEqual([...names].sort());
    const sessions = names.map((n) => home.get(n)!);
    const episodes = ['map001-ep1', 'map002-ep7', 'map012-ep3'];
    const calls = new Map(sessions.map((s, i) => [s, agentCalls(episodes[i])]));
    const victim = names[0];
    const moved = sessions[0];

    const answers: Answer[] = [];
    const runSession = async (session: string) => {
      for (const [k, body] of calls.get(session)!.entries()) {
        const pending = call(session, '/v1/score', body);
        if (session === moved && k === 5) {
          // Mid-run: the session's replica dies while its 6th call is on its way.
          const replica = replicas[names.indexOf(victim)];
          replica.child.kill('SIGKILL');
          await replica.exited;
        }
        answers.push({ session, call: k, ...(await pending) });
      }
    };
    await Promise.all(sessions.map(runSession));

    // No request failed; every answer echoes its session.
    expect(answers).toHaveLength(30);
    for (const a of answers) {
      expect(a.status, `${a.session} call ${a.call}: ${JSON.stringify(a.body)}`).toBe(200);
      expect(a.echoed).toBe(a.session);
    }
    const of = (session: string) => answers.filter((a) => a.session === session).sort((x, y) => x.call - y.call);

    // The other sessions never moved, and hit from their second call on.
    for (const session of sessions.slice(1)) {
      const own = of(session);
      expect(new Set(own.map((a) => a.servedBy)), session).toEqual(new Set([names[sessions.indexOf(session)]]));
      expectMiss(own[0], `${session} call 0`);
      for (const a of own.slice(1)) expectHit(a, `${session} call ${a.call}`);
    }

    // The moved session: on the victim until it died, then on one other replica for good.
    const own = of(moved);
    const first = own.findIndex((a) => a.servedBy !== victim);
    expect(first, 'the session moved').toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(6);
    const after = own.slice(first);
    expect(new Set(after.map((a) => a.servedBy)).size).toBe(1);
    expect(after[0].servedBy).not.toBe(victim);
    expectMiss(own[0], `${moved} call 0`);
    for (const a of own.slice(1, first)) expectHit(a, `before the move, call ${a.call}`);
    expectMiss(after[0], `first call after the move (call ${after[0].call})`);
    for (const a of after.slice(1)) expectHit(a, `after the move, call ${a.call}`);

    // Every value equals the same call to a single server (the cache changes only cached_tokens).
    for (const a of answers) {
      const res = await single!.app.inject({ method: 'POST', url: '/v1/score', payload: calls.get(a.session)![a.call] });
      expect(res.statusCode).toBe(200);
      const expected = res.json();
      const strip = (b: any) => ({ ...b, usage: { ...b.usage, cached_tokens: undefined } });
      expectSameAnswer(strip(a.body), strip(expected), `${a.session} call ${a.call}`);
    }

    // HAProxy logged every scoring call with its session and saw the victim go down.
    const scoreLines = haproxyLog.split('\n').filter((l) => l.includes('"POST /v1/score'));
    for (const s of sessions) expect(scoreLines.filter((l) => l.includes(`session=${s} `)).length, s).toBe(10);
    expect(haproxyLog).toMatch(new RegExp(`Server pa_servers/${victim} is DOWN`));
  }, 400_000);
});
