/**
 * The CLI as an operator runs it, in child processes (the TypeScript entry through tsx):
 *  - `serve --device auto` with the key and log level from the environment: falls back to CPU
 *    and says so in the log, refuses /v1/* without the key, logs one JSON line per request with
 *    no body and no key, redacts the key in the effective-config line, and exits 0 on SIGTERM;
 *  - `serve --device cuda` without the CUDA execution provider's libraries: exit 1 and a
 *    message saying how to install them;
 *  - `config check FILE`: exit 0 with the effective redacted config, exit 1 naming the bad key.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { DIRS, SKIP_REAL } from '../text/real-files.js';

const ROOT = path.resolve(__dirname, '../..');
const CLI = ['--import', 'tsx', 'src/cli.ts'];
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-cli-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** The CUDA EP ships as separate shared libraries next to the binding (`npm run install:cuda` adds them). */
const ortBin = path.join(ROOT, 'node_modules/onnxruntime-node/bin/napi-v6', process.platform, process.arch);
const cudaProviderInstalled = fs.existsSync(path.join(ortBin, 'libonnxruntime_providers_cuda.so'));

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PA_THREADS: '1', ...extra };
  for (const key of Object.keys(env)) if (key.startsWith('PA_') && !(key in extra) && key !== 'PA_THREADS') delete env[key];
  return env;
}

function runCli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, env: cleanEnv(env), encoding: 'utf8', timeout: 60_000 });
}

describe('pa-server serve', () => {
  it.skipIf(SKIP_REAL)('warns at start-up when the tokenizer can produce ids the model lacks (tiny GPT-2: 50,295 ids on 1,000 rows)', { timeout: 120_000 }, async () => {
    const child = spawn(process.execPath, [...CLI, 'serve', '--port', '0', '--policy', DIRS.tinyGpt2, '--reference', DIRS.tinyGpt2], {
      cwd: ROOT,
      env: cleanEnv({ PA_LOG_LEVEL: 'info' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const lines = () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      while (!lines().some((l) => l.msg === 'ready')) {
        if (child.exitCode !== null) throw new Error(`server exited before ready:\n${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const warnings = lines().filter((l) => l.level === 40 && l.scorer === 'default');
      expect(warnings).toHaveLength(1);
      expect(warnings[0].msg).toMatch(/the tokenizer has 50295 ids but the model's vocabulary has 1000/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('--device auto with PA_API_KEY and PA_LOG_LEVEL: CPU fallback logged, key enforced, JSON request lines, exit 0 on SIGTERM', async () => {
    const KEY = 'cli-test-key-9b2e';
    const MARKER = 'zebrasecretmarker';
    const child = spawn(process.execPath, [...CLI, 'serve', '--device', 'auto', '--port', '0'], {
      cwd: ROOT,
      env: cleanEnv({ PA_API_KEY: KEY, PA_LOG_LEVEL: 'info' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      const lines = () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      let ready: any;
      while (!(ready = lines().find((l) => l.msg === 'ready'))) {
        if (child.exitCode !== null) throw new Error(`server exited before ready:\n${stdout}\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const base = `http://127.0.0.1:${ready.address.port}`;

      const denied = await fetch(`${base}/v1/info`);
      expect(denied.status).toBe(401);
      expect((await denied.json()).error.code).toBe('unauthorized');
      const info = await fetch(`${base}/v1/info`, { headers: { authorization: `Bearer ${KEY}` } });
      expect(info.status).toBe(200);
      const provider: string = (await info.json()).scorers[0].policy.provider;
      const scored = await fetch(`${base}/v1/score`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: `map ${MARKER}`, step: 'up' }),
      });
      expect(scored.status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`^pa_model_info\\{[^}]*role="policy"[^}]*device="${provider}"[^}]*\\} 1$`, 'm'));

      child.kill('SIGTERM');
      expect((await exited).code).toBe(0);

      const all = lines();
      const fallback = all.filter((l) => /falling back to CPU/.test(l.msg));
      if (provider === 'cpu') {
        // one line per session of each embedded scorer (default and exact)
        expect(fallback.map((l) => [l.level, l.scorer, l.role, l.device, l.provider]).sort()).toEqual([
          [40, 'default', 'policy', 'auto', 'cpu'],
          [40, 'default', 'reference', 'auto', 'cpu'],
          [40, 'exact', 'policy', 'auto', 'cpu'],
          [40, 'exact', 'reference', 'auto', 'cpu'],
        ]);
      } else {
        expect(fallback).toEqual([]);
      }
      const effective = all.find((l) => l.msg === 'effective configuration');
      expect(effective.config.api_key).toBe('[redacted]');
      expect(effective.config.log_level).toBe('info');
      expect(effective.config.device).toBe('auto');
      const requests = all.filter((l) => l.msg === 'request');
      expect(requests.map((l) => [l.route, l.status])).toEqual([
        ['/v1/info', 401],
        ['/v1/info', 200],
        ['/v1/score', 200],
        ['/metrics', 200],
      ]);
      expect(requests[2].rows).toBe(1);
      expect(stdout + stderr).not.toContain(KEY);
      expect(stdout + stderr).not.toContain(MARKER);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  it.skipIf(cudaProviderInstalled)('--device cuda without the CUDA provider libraries: exit 1 and how to install them', () => {
    const r = runCli(['serve', '--device', 'cuda', '--port', '0', '--log-level', 'warn']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^pa-server: cannot start: .*CUDA execution provider could not start/m);
    expect(r.stderr).toContain('npm run install:cuda');
    expect(r.stderr).toContain('CUDA image');
    expect(r.stderr).toContain('--device cpu');
  });
});

describe('pa-server config check', () => {
  const write = (name: string, text: string) => {
    const file = path.join(tmpRoot, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('a valid file: exit 0 and the effective config on stdout, defaults filled in, paths resolved, key redacted', () => {
    // config check loads nothing but checks the model directories: ./p and ./r are the embedded pair.
    fs.symlinkSync(path.join(ROOT, 'models/gridworld-policy'), path.join(tmpRoot, 'p'));
    fs.symlinkSync(path.join(ROOT, 'models/gridworld-reference'), path.join(tmpRoot, 'r'));
    const file = write(
      'ok.yaml',
      ['port: 9123', 'api_key: hunter2-secret', 'scorers:', '  - name: a', '    policy: ./p', '    reference: ./r', '    beta: 0.1', ''].join('\n'),
    );
    const r = runCli(['config', 'check', file]);
    expect(r.stderr).toContain('ok (1 scorer(s): a)');
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain('hunter2-secret');
    const effective = JSON.parse(r.stdout);
    expect(effective.port).toBe(9123);
    expect(effective.api_key).toBe('[redacted]');
    expect(effective.max_batch_tokens).toBe(defaultConfig().max_batch_tokens);
    expect(effective.scorers).toEqual([{ name: 'a', policy: path.join(tmpRoot, 'p'), reference: path.join(tmpRoot, 'r'), beta: 0.1 }]);
  });

  it('an invalid file: exit 1 with the path of each bad key', () => {
    const file = write(
      'bad.yaml',
      ['port: eighty', 'max_batch_tokenz: 4', 'scorers:', '  - name: a', '    policy: ./p', '    reference: ./r', '    beta: -1', ''].join('\n'),
    );
    const r = runCli(['config', 'check', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('/port');
    expect(r.stderr).toContain('/max_batch_tokenz');
    expect(r.stderr).toContain('/scorers/0/beta');
  });

  it('a missing file: exit 1 naming it', () => {
    const r = runCli(['config', 'check', path.join(tmpRoot, 'nope.yaml')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(path.join(tmpRoot, 'nope.yaml'));
  });
});
