/**
 * `x-session-id` (src/api/session.ts): every scoring route accepts it, echoes it and puts it on
 * its request log line; a malformed value is a 400 naming the header; a request without it is
 * answered as before, with no session field logged; the numbers do not depend on it (only the
 * prefix cache's `cached_tokens` may differ, the second call reading the first one's context). The routes
 * are read from the generated openapi.yaml (every POST tagged `score`), so a route added later is
 * covered too, and its documented parameters must name the header.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { buildApp, type App } from '../../src/app.js';
import { createLogger } from '../../src/cli.js';
import { defaultConfig, PACKAGE_ROOT, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

const config = validateConfig({ ...defaultConfig(), threads: 1, scorers: defaultConfig().scorers });
const openapi = YAML.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'openapi.yaml'), 'utf8'));
const SCORING_ROUTES: string[] = Object.entries(openapi.paths as Record<string, any>)
  .filter(([, ops]) => ops.post?.tags?.includes('score'))
  .map(([p]) => p);

const PROMPT = '[user]: map :\nP . . . G\n. . . P .\n. # . . P\n# . . . #\n. S P . #\ngoal 0 4\nat 4 1 , up . down # left . right P';
const MESSAGES = [
  { role: 'user', content: 'map :\nP . . . G\n. . . P .\n. # . . P\n# . . . #\n. S P . #\ngoal 0 4\nat 4 1 , up . down # left . right P' },
  { role: 'assistant', content: 'up' },
  { role: 'user', content: 'at 3 1 , up # down . left # right .' },
  { role: 'assistant', content: 'down' },
];
/** Valid bodies for the routes this test knows; any other scoring route gets `{}` (its 4xx must echo too). */
const BODIES: Record<string, object> = {
  '/v1/score': { prompt: PROMPT, step: '\n[assistant]: right' },
  '/score': { prompt: PROMPT, step: '\n[assistant]: up' },
  '/v1/trajectories/score': { messages: MESSAGES },
  '/v1/attribute': { messages: MESSAGES },
  '/v1/rank': { prompt: PROMPT, candidates: ['\n[assistant]: up', '\n[assistant]: right'] },
};

/** The body with every `cached_tokens` count left out. */
const withoutCached = (v: any): any =>
  Array.isArray(v) ? v.map(withoutCached) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'cached_tokens').map(([k, x]) => [k, withoutCached(x)])) : v;

let pool: ScorerPool;
let app: App;
const chunks: string[] = [];
const logLines = () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l));

beforeAll(async () => {
  pool = new ScorerPool(config);
  await pool.load();
  const logger = createLogger('info', { write: (chunk: string) => void chunks.push(chunk) });
  app = buildApp(config, pool, { metrics: new Metrics({ defaultMetrics: false }), logger });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await pool?.close();
});

describe('x-session-id', () => {
  it('the generated contract has the scoring routes, each documenting the header', () => {
    expect(SCORING_ROUTES).toEqual(expect.arrayContaining(Object.keys(BODIES)));
    for (const route of SCORING_ROUTES) {
      const params = openapi.paths[route].post.parameters ?? [];
      expect(params.find((p: any) => p.in === 'header' && p.name === 'x-session-id'), route).toBeDefined();
    }
  });

  it('every scoring route echoes it and logs it; the answer is the one without the header', async () => {
    for (const route of SCORING_ROUTES) {
      const body = BODIES[route] ?? {};
      const session = `run-${route.replace(/\W+/g, '-')}:7f3a.b_2`;
      const requestId = `req${route.replace(/\W+/g, '')}`;
      const withHeader = await app.inject({ method: 'POST', url: route, headers: { 'x-session-id': session, 'x-request-id': requestId }, payload: body });
      const without = await app.inject({ method: 'POST', url: route, payload: body });
      if (BODIES[route]) expect(withHeader.statusCode, route).toBe(200);
      expect(withHeader.headers['x-session-id'], route).toBe(session);
      expect(without.headers['x-session-id'], route).toBeUndefined();
      expect(withHeader.statusCode, route).toBe(without.statusCode);
      // The second of two equal calls reads its context from the prefix cache: only cached_tokens differs.
      expect(withoutCached(without.json()), route).toEqual(withoutCached(withHeader.json()));
      const line = logLines().find((l) => l.msg === 'request' && l.reqId === requestId);
      expect(line, route).toMatchObject({ session, route, status: withHeader.statusCode });
    }
    // Lines of requests without the header carry no session field.
    const plain = logLines().filter((l) => l.msg === 'request' && !String(l.reqId).startsWith('req'));
    expect(plain.length).toBe(SCORING_ROUTES.length);
    for (const l of plain) expect(l).not.toHaveProperty('session');
  });

  it('a malformed value is 400 invalid_session_id, on any route, and is not echoed', async () => {
    const bad = ['', 'has space', 'x'.repeat(129), 'semi;colon', 'ünïcode'];
    for (const value of bad) {
      const res = await app.inject({ method: 'POST', url: '/v1/score', headers: { 'x-session-id': value }, payload: BODIES['/v1/score'] });
      expect(res.statusCode, JSON.stringify(value)).toBe(400);
      expect(res.json().error.code).toBe('invalid_session_id');
      expect(res.json().error.message).toContain('x-session-id');
      expect(res.headers['x-session-id']).toBeUndefined();
    }
    // Sent twice: node joins the values with ", ", which is not one session.
    const twice = await app.inject({ method: 'POST', url: '/v1/score', headers: { 'x-session-id': ['a', 'b'] }, payload: BODIES['/v1/score'] });
    expect(twice.statusCode).toBe(400);
    // The longest valid value and every allowed character pass.
    const longest = 'A-z_0.9:'.repeat(16);
    const ok = await app.inject({ method: 'POST', url: '/v1/score', headers: { 'x-session-id': longest }, payload: BODIES['/v1/score'] });
    expect([ok.statusCode, ok.headers['x-session-id']]).toEqual([200, longest]);
  });
});
