/**
 * API key (src/api/auth.ts) through app.inject(): which routes need `Authorization: Bearer`,
 * the 401 body and challenge, /metrics closed only by `auth_metrics`, and how the key reaches
 * the config (flag/env value, key file, config file naming a key file). No models are loaded:
 * a request that passes the key check reaches the route and gets its 503 `not_ready`, which is
 * how these tests tell "authorized" from "refused".
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keyMatches } from '../../src/api/auth.js';
import { buildApp, type App } from '../../src/app.js';
import { configFromOptions } from '../../src/cli.js';
import { ConfigError, defaultConfig, validateConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

const KEY = 'k3y-' + crypto.randomBytes(12).toString('hex');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-auth-'));
const apps: App[] = [];
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

async function appWith(overrides: Partial<Config>): Promise<App> {
  const config = validateConfig({ ...defaultConfig(), log_level: 'silent', ...overrides });
  const app = buildApp(config, new ScorerPool(config), { metrics: new Metrics({ defaultMetrics: false }) });
  await app.ready();
  apps.push(app);
  return app;
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('API key on the HTTP surface', () => {
  it('without a configured key nothing asks for one', async () => {
    const app = await appWith({});
    const res = await app.inject({ method: 'GET', url: '/v1/models' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('not_ready');
  });

  it('/v1/*, /score and unknown paths answer 401 with the error body and a Bearer challenge', async () => {
    const app = await appWith({ api_key: KEY });
    const requests = [
      { method: 'GET' as const, url: '/v1/models' },
      { method: 'GET' as const, url: '/v1/info' },
      { method: 'POST' as const, url: '/v1/score', payload: { prompt: 'a', step: 'b' } },
      { method: 'POST' as const, url: '/score', payload: { prompt: 'a', step: 'b' } },
      // Not a route: still refused, so the route table is not probed without a key.
      { method: 'GET' as const, url: '/v1/nope' },
      { method: 'POST' as const, url: '/v1/trajectories/score', payload: { messages: [] } },
    ];
    for (const req of requests) {
      const res = await app.inject(req);
      expect(res.statusCode, `${req.method} ${req.url}`).toBe(401);
      expect(res.json()).toEqual({ error: { code: 'unauthorized', message: expect.stringContaining('API key') } });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="pa-server"$/);
      expect(res.headers['x-request-id']).toBeTruthy();
    }
  });

  it('a wrong key, a key of another length, or a non-Bearer scheme is refused; the right key passes', async () => {
    const app = await appWith({ api_key: KEY });
    const headers = [
      bearer(KEY.slice(0, -1) + (KEY.endsWith('0') ? '1' : '0')), // same length, last char differs
      bearer(KEY + 'x'),
      bearer(KEY.slice(0, 4)),
      { authorization: `Basic ${Buffer.from(`user:${KEY}`).toString('base64')}` },
      { authorization: KEY },
      { authorization: 'Bearer' },
    ];
    for (const h of headers) {
      const res = await app.inject({ method: 'GET', url: '/v1/models', headers: h });
      expect(res.statusCode, h.authorization).toBe(401);
      expect(res.json().error.code).toBe('unauthorized');
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    }
    for (const h of [bearer(KEY), { authorization: `bearer ${KEY}` }, { authorization: `Bearer  ${KEY} ` }]) {
      const res = await app.inject({ method: 'GET', url: '/v1/models', headers: h });
      expect(res.statusCode, h.authorization).toBe(503); // past the key check, into the route
      expect(res.json().error.code).toBe('not_ready');
    }
    // The key check runs before body parsing and validation: no key, no 400 details either.
    const invalidBody = await app.inject({ method: 'POST', url: '/v1/score', payload: '{ not json', headers: { 'content-type': 'application/json' } });
    expect(invalidBody.statusCode).toBe(401);
    const withKey = await app.inject({ method: 'POST', url: '/v1/score', payload: '{ not json', headers: { 'content-type': 'application/json', ...bearer(KEY) } });
    expect(withKey.statusCode).toBe(400);
    expect(withKey.json().error.code).toBe('malformed_json');
  });

  it('the route decides, not the raw URL: a percent-encoded or query-string path is still protected', async () => {
    const app = await appWith({ api_key: KEY });
    for (const url of ['/v1/models?x=/health', '/%761/models', '/health/../v1/models', '/v1//models']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
    }
  });

  it('/health, /ready, /metrics, /openapi.yaml, /docs and the viewer\'s static files stay open; auth_metrics closes /metrics', async () => {
    const open = await appWith({ api_key: KEY });
    expect((await open.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await open.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(503); // not loaded, but not 401
    expect((await open.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect((await open.inject({ method: 'GET', url: '/openapi.yaml' })).statusCode).toBe(200);
    expect((await open.inject({ method: 'GET', url: '/docs/' })).statusCode).toBe(200);
    // A browser cannot send a Bearer header for a page load; the page's API calls still need the key.
    expect((await open.inject({ method: 'GET', url: '/ui/' })).statusCode).toBe(200);

    const closed = await appWith({ api_key: KEY, auth_metrics: true });
    const refused = await closed.inject({ method: 'GET', url: '/metrics' });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error.code).toBe('unauthorized');
    const allowed = await closed.inject({ method: 'GET', url: '/metrics', headers: bearer(KEY) });
    expect(allowed.statusCode).toBe(200);
    expect(allowed.body).toContain('pa_requests_total');
    expect((await closed.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });

  it('refusals are counted under pa_request_failures_total{code="unauthorized"}', async () => {
    const app = await appWith({ api_key: KEY });
    await app.inject({ method: 'GET', url: '/v1/models' });
    await app.inject({ method: 'GET', url: '/v1/models', headers: bearer('wrong') });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^pa_request_failures_total\{code="unauthorized"\} 2$/m);
  });
});

describe('key comparison', () => {
  it('compares sha256 digests, so keys of any length compare without throwing', () => {
    const expected = crypto.createHash('sha256').update(KEY).digest();
    expect(keyMatches(KEY, expected)).toBe(true);
    expect(keyMatches('', expected)).toBe(false);
    expect(keyMatches(KEY + KEY, expected)).toBe(false);
    expect(keyMatches('é'.repeat(100), expected)).toBe(false);
  });
});

describe('where the key comes from', () => {
  const given = (...keys: string[]) => (k: string) => keys.includes(k);
  const write = (name: string, text: string) => {
    const file = path.join(tmpRoot, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('--api-key / PA_API_KEY sets it; redacted in the effective config', async () => {
    const c = configFromOptions({ apiKey: KEY }, given('apiKey'));
    expect(c.api_key).toBe(KEY);
  });

  it('--api-key-file reads one line (its trailing newline dropped)', () => {
    const file = write('key.txt', `${KEY}\n`);
    expect(configFromOptions({ apiKeyFile: file }, given('apiKeyFile')).api_key).toBe(KEY);
  });

  it('a config file may name the key file, relative to itself; a flag key replaces it', () => {
    write('secret', `${KEY}\n`);
    const configFile = write('pa.yaml', 'api_key_file: ./secret\nauth_metrics: true\n');
    const c = configFromOptions({ config: configFile }, given('config'));
    expect(c.api_key).toBe(KEY);
    expect(c.api_key_file).toBe(path.join(tmpRoot, 'secret'));
    expect(c.auth_metrics).toBe(true);
    const overridden = configFromOptions({ config: configFile, apiKey: 'other' }, given('config', 'apiKey'));
    expect(overridden.api_key).toBe('other');
    expect(overridden.api_key_file).toBeUndefined();
  });

  it('an unreadable or empty key file, or both a key and a key file, is a config error naming the key', () => {
    expect(() => configFromOptions({ apiKeyFile: path.join(tmpRoot, 'missing') }, given('apiKeyFile'))).toThrow(/\/api_key_file: cannot read/);
    const empty = write('empty', '\n');
    expect(() => configFromOptions({ apiKeyFile: empty }, given('apiKeyFile'))).toThrow(/\/api_key_file: .* one non-empty line/);
    const twoLines = write('two', 'a\nb\n');
    expect(() => configFromOptions({ apiKeyFile: twoLines }, given('apiKeyFile'))).toThrow(ConfigError);
    const file = write('k', KEY);
    expect(() => configFromOptions({ apiKey: KEY, apiKeyFile: file }, given('apiKey', 'apiKeyFile'))).toThrow(/both set/);
  });
});
