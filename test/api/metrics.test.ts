/**
 * /metrics on a live app (embedded default pair loaded, requests scored): every instrument the
 * issue names exists with its labels, the values follow from the requests sent here, and
 * `promtool check metrics` (Debian package `prometheus`; .ci/run installs it) accepts the output.
 * Without promtool the promtool test is skipped outside CI and fails under CI=true.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

const ROOT = path.resolve(__dirname, '../..');
const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent' });

let app: App;
let pool: ScorerPool;
let exposition = '';
beforeAll(async () => {
  const metrics = new Metrics();
  pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
  app = buildApp(config, pool, { metrics });
  await pool.load();
  metrics.recordModels(pool.list());
  await app.ready();
  // Three scored steps of 2, 3 and 1 tokens in two requests; one 400; one 404.
  const one = await app.inject({ method: 'POST', url: '/v1/score', payload: { prompt_ids: [2, 5, 6], step_ids: [7, 8] } });
  expect(one.statusCode).toBe(200);
  const many = await app.inject({
    method: 'POST',
    url: '/v1/score',
    payload: { items: [{ prompt_ids: [2, 9], step_ids: [10, 11, 12] }, { prompt_ids: [2, 13, 14, 15], step_ids: [16] }] },
  });
  expect(many.statusCode).toBe(200);
  expect((await app.inject({ method: 'POST', url: '/v1/score', payload: { prompt_ids: 'x' } })).statusCode).toBe(400);
  expect((await app.inject({ method: 'GET', url: '/nowhere' })).statusCode).toBe(404);
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  exposition = res.body;
});
afterAll(async () => {
  await app?.close();
  await pool?.close();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small independent parser of the text exposition format (no escapes appear in these labels). */
function samples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`unparsable sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) labels[pair[1]] = pair[2];
      return { name: m[1], labels, value: Number(m[3]) };
    });
}

function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
}

const find = (name: string, labels: Record<string, string> = {}) =>
  samples(exposition).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

describe('/metrics', () => {
  it('has every instrument of the issue with its type and labels', () => {
    const declared = types(exposition);
    const expected: [string, string, string[]][] = [
      ['pa_requests_total', 'counter', ['route', 'status']],
      ['pa_request_duration_seconds', 'histogram', ['route']],
      ['pa_request_failures_total', 'counter', ['code']],
      ['pa_queue_size', 'gauge', []],
      ['pa_queue_wait_seconds', 'histogram', []],
      ['pa_batch_rows', 'histogram', []],
      ['pa_batch_tokens', 'histogram', []],
      ['pa_inference_duration_seconds', 'histogram', ['scorer', 'role']],
      ['pa_tokenization_duration_seconds', 'histogram', []],
      ['pa_scored_tokens_total', 'counter', ['scorer']],
      ['pa_model_info', 'gauge', ['scorer', 'role', 'file', 'sha256', 'device']],
    ];
    for (const [name, type, labels] of expected) {
      expect(declared.get(name), name).toBe(type);
      const series = samples(exposition).filter((s) => s.name === name || s.name.startsWith(`${name}_`));
      expect(series.length, `${name} has samples`).toBeGreaterThan(0);
      for (const s of series) {
        const own = Object.keys(s.labels).filter((l) => l !== 'le');
        expect(own.sort(), `${s.name} labels`).toEqual([...labels].sort());
      }
    }
    // Default process metrics are there too.
    expect(declared.get('pa_process_cpu_seconds_total')).toBe('counter');
    expect(declared.get('pa_nodejs_eventloop_lag_seconds')).toBe('gauge');
  });

  it('values follow from the requests sent', () => {
    expect(find('pa_requests_total', { route: '/v1/score', status: '200' })[0]?.value).toBe(2);
    expect(find('pa_requests_total', { route: '/v1/score', status: '400' })[0]?.value).toBe(1);
    expect(find('pa_requests_total', { route: 'unmatched', status: '404' })[0]?.value).toBe(1);
    expect(find('pa_request_failures_total', { code: 'invalid_request' })[0]?.value).toBe(1);
    expect(find('pa_request_failures_total', { code: 'not_found' })[0]?.value).toBe(1);
    expect(find('pa_request_duration_seconds_count', { route: '/v1/score' })[0]?.value).toBe(3);
    expect(find('pa_scored_tokens_total', { scorer: 'default' })[0]?.value).toBe(2 + 3 + 1);
    expect(find('pa_tokenization_duration_seconds_count')[0]?.value).toBe(2);
    // Three rows in all; however they were batched, the batch-row histogram sums to 3.
    expect(find('pa_batch_rows_sum')[0]?.value).toBe(3);
    expect(find('pa_queue_wait_seconds_count')[0]?.value).toBe(3);
    const batches = find('pa_batch_rows_count')[0]?.value;
    expect(batches).toBeGreaterThanOrEqual(2);
    for (const role of ['policy', 'reference']) {
      expect(find('pa_inference_duration_seconds_count', { scorer: 'default', role })[0]?.value, role).toBe(batches);
    }
    expect(find('pa_queue_size')[0]?.value).toBe(0);
  });

  it('pa_model_info names each loaded file with its sha256 and device', () => {
    for (const [role, dir] of [['policy', 'gridworld-policy'], ['reference', 'gridworld-reference']]) {
      const file = path.join(ROOT, 'models', dir, 'decoder_with_past_model.onnx'); // the served with-past export
      const sha256 = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
      expect(find('pa_model_info', { scorer: 'default', role })).toEqual([
        { name: 'pa_model_info', labels: { scorer: 'default', role, file, sha256, device: 'cpu' }, value: 1 },
      ]);
    }
  });

  const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  const havePromtool = promtool.status === 0;
  const underCi = !!process.env.CI && process.env.CI !== 'false';
  if (!havePromtool && !underCi) {
    console.warn('promtool not found: skipping `promtool check metrics` (install the Debian package prometheus; CI=true makes this a failure)');
  }
  it.skipIf(!havePromtool && !underCi)('promtool check metrics accepts the live output', () => {
    expect(havePromtool, 'promtool is required under CI: apt-get install prometheus (see .ci/run)').toBe(true);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(`${check.stdout}${check.stderr}`.trim()).toBe('');
    expect(check.status).toBe(0);
  });
});
