/**
 * Request logs: the process logger (createLogger from src/cli.ts) writing into a captured
 * stream, the app built with it and the embedded default pair loaded. One JSON line per request
 * with its id, route, status, timings and scored rows; never the body, never the Authorization
 * header's value, even when a client sends them; the level gates the lines. Also the TEI-style
 * timing headers and x-request-id that the log line shares its values with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { createLogger } from '../../src/cli.js';
import { defaultConfig, redactConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

const KEY = 'log-test-key-5f1c9a';
const BODY_MARKER = 'zebrasecretmarker';
const config = validateConfig({ ...defaultConfig(), threads: 1, api_key: KEY, scorers: defaultConfig().scorers });

let pool: ScorerPool;
const apps: App[] = [];
beforeAll(async () => {
  pool = new ScorerPool(config);
  await pool.load();
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await pool?.close();
});

async function appLoggingTo(level: string): Promise<{ app: App; lines: () => Record<string, any>[]; raw: () => string }> {
  const chunks: string[] = [];
  const logger = createLogger(level, { write: (chunk: string) => void chunks.push(chunk) });
  const app = buildApp(config, pool, { metrics: new Metrics({ defaultMetrics: false }), logger });
  await app.ready();
  apps.push(app);
  const raw = () => chunks.join('');
  return { app, raw, lines: () => raw().split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

const auth = { authorization: `Bearer ${KEY}` };

describe('request log lines', () => {
  it('one JSON line per request with id, route, status, timings and rows; no body, no key', async () => {
    const { app, lines, raw } = await appLoggingTo('info');
    const responses = [
      await app.inject({
        method: 'POST',
        url: '/v1/score',
        headers: { ...auth, 'x-request-id': 'client-chosen-id-1' },
        payload: { prompt: `map ${BODY_MARKER} goal`, step: `up ${BODY_MARKER}` },
      }),
      await app.inject({
        method: 'POST',
        url: '/v1/score',
        headers: auth,
        payload: { items: [1, 2, 3].map((n) => ({ prompt: `[user]: ${BODY_MARKER} ${n}`, step: 'left' })) },
      }),
      await app.inject({ method: 'GET', url: '/health', headers: auth }),
      await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Bearer ${KEY}-wrong` } }),
      await app.inject({
        method: 'POST',
        url: '/v1/score',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: `{"prompt":"${BODY_MARKER}", bad json`,
      }),
    ];
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 200, 401, 400]);

    const requestLines = lines().filter((l) => l.msg === 'request');
    expect(requestLines).toHaveLength(responses.length);
    expect(lines().filter((l) => l.msg !== 'request')).toEqual([]); // nothing else per request
    requestLines.forEach((line, i) => {
      expect(line.reqId).toBe(responses[i].headers['x-request-id']);
      expect(line.status).toBe(responses[i].statusCode);
      expect(typeof line.total_ms).toBe('number');
      expect(line.level).toBe(30);
      expect(typeof line.time).toBe('number');
    });
    expect(requestLines[0].reqId).toBe('client-chosen-id-1');
    // JSON.parse keeps the last of repeated keys: count them in the raw lines.
    const rawRequestLines = raw().split('\n').filter((l) => l.includes('"msg":"request"'));
    expect(rawRequestLines).toHaveLength(responses.length);
    for (const l of rawRequestLines) expect(l.match(/"reqId":/g)).toHaveLength(1);
    expect(requestLines.map((l) => l.route)).toEqual(['/v1/score', '/v1/score', '/health', '/v1/models', '/v1/score']);
    expect(requestLines.map((l) => l.method)).toEqual(['POST', 'POST', 'GET', 'GET', 'POST']);
    // Rows this request sent to the engine, and its timings, only where scoring ran.
    expect(requestLines.map((l) => l.rows)).toEqual([1, 3, undefined, undefined, undefined]);
    for (const line of requestLines.slice(0, 2)) {
      expect(line.inference_ms).toBeGreaterThan(0);
      expect(line.tokenization_ms).toBeGreaterThan(0);
    }

    const text = raw();
    expect(text).not.toContain(BODY_MARKER);
    expect(text).not.toContain(KEY);
    expect(text.toLowerCase()).not.toContain('authorization');
  });

  it('the level gates them: warn logs no request lines', async () => {
    const { app, lines } = await appLoggingTo('warn');
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect(lines()).toEqual([]);
  });

  it('TEI-style timing headers in ms, and x-request-id echoed when valid, generated otherwise', async () => {
    const { app } = await appLoggingTo('silent');
    const res = await app.inject({
      method: 'POST',
      url: '/v1/score',
      headers: { ...auth, 'x-request-id': 'trace-42.a:b_c' },
      payload: { items: [{ prompt: 'map goal', step: 'up' }, { prompt: 'map', step: 'left right' }] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe('trace-42.a:b_c');
    const ms = (name: string) => {
      const value = String(res.headers[name]);
      expect(value, name).toMatch(/^\d+\.\d{3}$/);
      return Number(value);
    };
    const total = ms('x-total-time');
    // Tokenization, queueing and the forward passes are consecutive parts of the request (3-decimal rounding aside).
    expect(ms('x-tokenization-time') + ms('x-queue-time') + ms('x-inference-time')).toBeLessThanOrEqual(total + 0.002);
    expect(ms('x-inference-time')).toBeGreaterThan(0);

    const generated = await app.inject({ method: 'GET', url: '/health' });
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(String(generated.headers['x-total-time'])).toMatch(/^\d+\.\d{3}$/);
    const invalid = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'has spaces\tand tabs' } });
    expect(invalid.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('the start-up config line shows api_key only when a key is set, and then redacted', () => {
    const chunks: string[] = [];
    const logger = createLogger('info', { write: (c: string) => void chunks.push(c) });
    logger.info({ config: redactConfig(validateConfig(defaultConfig())) }, 'effective configuration');
    logger.info({ config: redactConfig(config) }, 'effective configuration');
    expect(chunks).toHaveLength(2);
    expect(chunks[0]).not.toContain('api_key');
    expect(JSON.parse(chunks[1]).config.api_key).toBe('[redacted]');
    expect(chunks[1]).not.toContain(KEY);
  });

  it('an object holding the Authorization header is redacted by the logger itself', () => {
    const chunks: string[] = [];
    const logger = createLogger('info', { write: (c: string) => void chunks.push(c) });
    logger.info({ req: { headers: { authorization: `Bearer ${KEY}` } }, config: { api_key: KEY } }, 'x');
    expect(chunks.join('')).not.toContain(KEY);
    expect(JSON.parse(chunks[0]).req.headers.authorization).toBe('[redacted]');
  });
});
