/**
 * API key: when the config has one, every route except the operational ones answers 401 unless
 * the request carries `Authorization: Bearer <key>`.
 *
 * Open without a key: /health, /ready (probes), /metrics (scrapers; `auth_metrics: true` closes
 * it), /openapi.yaml and /docs (the contract is not a secret). Everything else, including
 * routes added later (/v1/*, /score, /ui) and unknown paths, needs the key: an allowlist, so a
 * new route is never open by accident. The decision uses the matched route pattern, never the
 * raw URL, so percent-encoding or query strings cannot steer it.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { ServiceError } from '../errors.js';

const ALWAYS_OPEN = new Set(['/health', '/ready', '/openapi.yaml']);

/** Route patterns answered without a key under this config. */
export function isOpenRoute(routeUrl: string | undefined, config: Pick<Config, 'auth_metrics'>): boolean {
  if (routeUrl === undefined) return false;
  if (ALWAYS_OPEN.has(routeUrl)) return true;
  if (routeUrl === '/metrics') return config.auth_metrics !== true;
  // The viewer's static files hold no data and a browser cannot send a Bearer header for a page
  // load; the page's API calls still need the key (it has a field for it).
  if (routeUrl === '/ui' || routeUrl === '/ui/' || routeUrl.startsWith('/ui/')) return true;
  return routeUrl === '/docs' || routeUrl.startsWith('/docs/');
}

/** Whether openapi.yaml lists the route with bearer security (it does when a key is configured). */
export function requiresApiKey(routeUrl: string): boolean {
  return !isOpenRoute(routeUrl, { auth_metrics: false });
}

/** sha256 of both sides first: equal-length digests for timingSafeEqual, so the key's length does not leak either. */
function digest(value: string): Buffer {
  return crypto.createHash('sha256').update(value, 'utf8').digest();
}

export function keyMatches(presented: string, expectedDigest: Buffer): boolean {
  return crypto.timingSafeEqual(digest(presented), expectedDigest);
}

function unauthorized(message: string, error?: 'invalid_token'): ServiceError {
  const challenge = error ? `Bearer realm="pa-server", error="${error}"` : 'Bearer realm="pa-server"';
  return new ServiceError(401, 'unauthorized', message, { 'www-authenticate': challenge });
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match ? match[1] : '';
}

/** Registers the check on the root instance (not encapsulated: it guards every route). No key configured: nothing is registered. */
export function apiKeyAuth(app: FastifyInstance, config: Config): void {
  if (config.api_key === undefined) return;
  const expected = digest(config.api_key);
  app.addHook('onRequest', async (request) => {
    if (isOpenRoute(request.routeOptions.url, config)) return;
    const key = presentedKey(request);
    if (key === undefined) throw unauthorized('this server requires an API key: send "Authorization: Bearer <key>"');
    if (key === '') throw unauthorized('the Authorization header must be "Bearer <key>"', 'invalid_token');
    if (!keyMatches(key, expected)) throw unauthorized('the API key is not valid', 'invalid_token');
  });
}
