/**
 * The OpenAPI contract: the committed openapi.yaml equals what tools/gen-openapi.ts generates
 * from the route schemas now, it is a valid OpenAPI 3.1 document (checked by
 * @apidevtools/swagger-parser, offline), /openapi.yaml serves it, routes behind the API key say
 * so, and /docs works offline: every asset comes from this server. Where a Chromium is
 * installed, a real browser loads /docs with every non-loopback request blocked and must render
 * the operations.
 */
import fs from 'node:fs';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { requiresApiKey } from '../../src/api/auth.js';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';
import { generateOpenapi } from '../../tools/gen-openapi.js';

const ROOT = path.resolve(__dirname, '../..');
const COMMITTED = path.join(ROOT, 'openapi.yaml');

let generated = '';
let app: App;
beforeAll(async () => {
  generated = await generateOpenapi();
  const config = validateConfig({ ...defaultConfig(), log_level: 'silent' });
  app = buildApp(config, new ScorerPool(config), { metrics: new Metrics({ defaultMetrics: false }) });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
});

describe('openapi.yaml', () => {
  it('the committed file equals the one generated from the route schemas', () => {
    expect(fs.existsSync(COMMITTED), 'openapi.yaml is missing: run npm run openapi').toBe(true);
    const committed = fs.readFileSync(COMMITTED, 'utf8');
    // A whole-file comparison; the message says how to fix a drift.
    expect(committed === generated, 'openapi.yaml differs from the route schemas: run npm run openapi and commit it').toBe(true);
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const doc = YAML.parse(generated);
    expect(doc.openapi).toMatch(/^3\.1\./);
    // validate() dereferences and checks against the 3.1 schema; it throws with the path of a problem.
    const api = (await SwaggerParser.validate(structuredClone(doc))) as any;
    expect(api.info.title).toBe('progress-advantage-server');
    expect(api.info.version).toBe(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('documents every public route, with bearer security exactly where the API key applies', () => {
    const doc = YAML.parse(generated);
    const documented = Object.keys(doc.paths);
    for (const route of ['/v1/score', '/score', '/v1/models', '/v1/info', '/health', '/ready']) expect(documented).toContain(route);
    expect(doc.components.securitySchemes.apiKey).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    for (const [route, methods] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const secured = requiresApiKey(route);
        expect(op.security ?? [], `${method} ${route}`).toEqual(secured ? [{ apiKey: [] }] : []);
        if (secured) expect(op.responses['401'], `${method} ${route} documents 401`).toBeDefined();
      }
    }
  });

  it('GET /openapi.yaml serves the committed file', async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.yaml' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/yaml/);
    expect(res.body).toBe(fs.readFileSync(COMMITTED, 'utf8'));
  });
});

/** src/href attributes of the page and url(...) references of CSS. */
function references(html: string): string[] {
  return [...html.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]);
}

describe('/docs offline', () => {
  it('the page and each asset it references come from this server; the CSP allows nothing else', async () => {
    const page = await app.inject({ method: 'GET', url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).not.toMatch(/https?:\/\//);
    const refs = references(page.body);
    expect(refs.length).toBeGreaterThan(2);
    for (const ref of refs) {
      const url = new URL(ref, 'http://127.0.0.1/docs/').pathname;
      const asset = await app.inject({ method: 'GET', url });
      expect(asset.statusCode, url).toBe(200);
      expect(asset.body.length, url).toBeGreaterThan(0);
    }
    // The initializer loads the spec from this server, not from a remote URL.
    const initializer = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(initializer.body).toContain("url: resolveUrl('./json')");
    const spec = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(spec.statusCode).toBe(200);
    expect(Object.keys(spec.json().paths)).toContain('/v1/score');

    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toMatch(/https:|http:|upgrade-insecure-requests|\*/);
  });

  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => fs.existsSync(p));
  it.skipIf(!chromium)('a real browser renders the operations with every non-loopback request blocked', async () => {
    const { chromium: launcher } = await import('playwright-core');
    const config = validateConfig({ ...defaultConfig(), port: 0, log_level: 'silent' });
    const server = buildApp(config, new ScorerPool(config), { metrics: new Metrics({ defaultMetrics: false }) });
    const origin = await server.listen({ host: '127.0.0.1', port: 0 });
    const browser = await launcher.launch({ executablePath: chromium, args: ['--no-sandbox'] });
    const outside: string[] = [];
    const failed: string[] = [];
    try {
      const context = await browser.newContext({ offline: false });
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
        outside.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      page.on('requestfailed', (r) => failed.push(r.url()));
      await page.goto(`${origin}/docs/`);
      await page.waitForSelector('.opblock-summary-path[data-path="/v1/score"]', { timeout: 30_000 });
      expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(5);
      expect(outside).toEqual([]);
      expect(failed).toEqual([]);
    } finally {
      await browser.close();
      await server.close();
    }
  });
});
