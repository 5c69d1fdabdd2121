/**
 * GET /ui and /ui/*: the viewer's files through app.inject(), with no model loaded (the static
 * routes never touch the pool). Content types, the redirect to the folder URL, the browser
 * modules (transpiled from src/ui/*.ts when running from source), the bundled examples, and
 * refusals of anything outside the viewer's folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { defaultConfig, PACKAGE_ROOT, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

const UI_DIR = path.join(PACKAGE_ROOT, 'src', 'ui');
let app: App;

beforeAll(async () => {
  const config = validateConfig({ ...defaultConfig(), threads: 1, log_level: 'silent' });
  app = buildApp(config, new ScorerPool(config), { metrics: new Metrics({ defaultMetrics: false }) });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
});

const get = (url: string) => app.inject({ method: 'GET', url });

describe('GET /ui', () => {
  it('redirects /ui to the folder URL (relative, keeping the query) so relative links resolve', async () => {
    const res = await get('/ui?x=1');
    expect(res.statusCode).toBe(308);
    expect(res.headers.location).toBe('ui/?x=1');
  });

  it('serves index.html at /ui/ as HTML with a same-origin-only content security policy', async () => {
    const res = await get('/ui/');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toBe(fs.readFileSync(path.join(UI_DIR, 'index.html'), 'utf8'));
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['content-security-policy']).toContain("connect-src 'self'");
  });

  it('serves the stylesheet as CSS', async () => {
    const res = await get('/ui/viewer.css');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(res.body).toBe(fs.readFileSync(path.join(UI_DIR, 'viewer.css'), 'utf8'));
  });

  it('every script and stylesheet index.html names is served, with the right type', async () => {
    const html = fs.readFileSync(path.join(UI_DIR, 'index.html'), 'utf8');
    const refs = [...html.matchAll(/(?:src|href)="([^"#:]+)"/g)].map((m) => m[1]);
    expect(refs).toEqual(expect.arrayContaining(['viewer.css', 'main.js']));
    for (const ref of refs) {
      const res = await get(`/ui/${ref}`);
      expect(res.statusCode, ref).toBe(200);
    }
  });

  it('serves each browser module as JavaScript, and each module it imports too', async () => {
    const modules = fs.readdirSync(UI_DIR).filter((f) => f.endsWith('.ts'));
    expect(modules).toEqual(expect.arrayContaining(['main.ts', 'api.ts', 'chart.ts', 'scale.ts', 'tokens.ts']));
    for (const source of modules) {
      const res = await get(`/ui/${source.replace(/\.ts$/, '.js')}`);
      expect(res.statusCode, source).toBe(200);
      expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
      // Type annotations are gone: `interface`/`type X =` declarations do not survive transpiling.
      expect(res.body).not.toMatch(/^export interface /m);
      for (const [, imported] of res.body.matchAll(/from '\.\/([a-z-]+\.js)'/g)) {
        expect(fs.existsSync(path.join(UI_DIR, imported.replace(/\.js$/, '.ts'))), `${source} imports ${imported}`).toBe(true);
      }
    }
  });

  it('lists the bundled examples, each file present and parseable, with a failed gridworld episode and a Who&When case', async () => {
    const res = await get('/ui/examples/index.json');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const entries = res.json() as Array<{ id: string; format: string; file: string }>;
    for (const entry of entries) {
      const file = await get(`/ui/examples/${entry.file}`);
      expect(file.statusCode, entry.file).toBe(200);
      expect(() => JSON.parse(file.body)).not.toThrow();
    }
    const gridworld = entries.filter((e) => e.id.startsWith('gridworld-')).map((e) => JSON.parse(fs.readFileSync(path.join(UI_DIR, 'examples', e.file), 'utf8')));
    expect(gridworld.some((episode) => episode.success === false)).toBe(true);
    expect(gridworld.some((episode) => episode.success === true)).toBe(true);
    expect(entries.some((e) => e.format === 'who_and_when')).toBe(true);
  });

  it('the gridworld examples are unchanged lines of bench/data/gridworld-eval.jsonl', async () => {
    const lines = fs.readFileSync(path.join(PACKAGE_ROOT, 'bench', 'data', 'gridworld-eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const byId = new Map(lines.map((l) => [l.id, l]));
    const entries = JSON.parse(fs.readFileSync(path.join(UI_DIR, 'examples', 'index.json'), 'utf8')) as Array<{ id: string; file: string }>;
    for (const entry of entries.filter((e) => e.id.startsWith('gridworld-'))) {
      const episode = JSON.parse(fs.readFileSync(path.join(UI_DIR, 'examples', entry.file), 'utf8'));
      expect(episode).toEqual(byId.get(episode.id));
    }
  });

  it('the exact pair’s examples are unchanged lines of bench/data/gridworld-exact-eval*.jsonl, with their A* and the `exact` scorer', () => {
    const lines = ['gridworld-exact-eval.jsonl', 'gridworld-exact-eval-reference.jsonl'].flatMap((f) =>
      fs.readFileSync(path.join(PACKAGE_ROOT, 'bench', 'data', f), 'utf8').trim().split('\n').map((l) => JSON.parse(l)),
    );
    const entries = JSON.parse(fs.readFileSync(path.join(UI_DIR, 'examples', 'index.json'), 'utf8')) as Array<{ id: string; file: string; model?: string }>;
    const exact = entries.filter((e) => e.model === 'exact');
    expect(exact.length).toBeGreaterThanOrEqual(2);
    for (const entry of exact) {
      const episode = JSON.parse(fs.readFileSync(path.join(UI_DIR, 'examples', entry.file), 'utf8'));
      expect(lines.some((l) => l.sampler === episode.sampler && l.id === episode.id && JSON.stringify(l) === JSON.stringify(episode))).toBe(true);
      expect(episode.a_star).toHaveLength(episode.n_actions);
    }
  });

  it.each([
    '/ui/../package.json',
    '/ui/..%2fpackage.json',
    '/ui/%2e%2e/%2e%2e/package.json',
    '/ui/examples/../../config.ts',
    '/ui/examples/..%2f..%2fconfig.ts',
    '/ui/.hidden.json',
    '/ui/main.ts',
    '/ui/examples',
    '/ui/examples/',
    '/ui/nope.js',
    '/ui/a/b/c.json',
    '/ui/%00.json',
  ])('refuses %s with a 404 not_found error body', async (url) => {
    const res = await get(url);
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('not_found');
  });
});
