/**
 * The session key: `x-session-id` names an agent run. Routers in front of several replicas
 * (HAProxy `balance hdr(x-session-id)`, ingress-nginx `upstream-hash-by`) hash on it, so the
 * calls of one session reach the replica that holds its prefix cache. The service itself only
 * accepts it, echoes it on the response and puts it on every log line of the request; it never
 * changes what is computed.
 *
 * A value is 1–128 characters of [A-Za-z0-9._:-] (UUIDs, run names, "team/run" after escaping
 * the slash); anything else, including the header sent twice, is 400 `invalid_session_id`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '../errors.js';

export const SESSION_HEADER = 'x-session-id';
export const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's `x-session-id`, when it sent one. */
    sessionId?: string;
  }
}

/** The header's value: undefined when absent; a 400 when malformed. */
export function sessionIdOf(request: Pick<FastifyRequest, 'headers'>): string | undefined {
  const value = request.headers[SESSION_HEADER];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !SESSION_ID.test(value)) {
    throw badRequest('invalid_session_id', `${SESSION_HEADER} must be 1–128 characters of A-Z a-z 0-9 . _ : - (sent once)`);
  }
  return value;
}

/** Registers the hook on the root instance, so every route (and every later one) accepts and echoes the header. */
export function sessionIds(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const id = sessionIdOf(request);
    if (id === undefined) return;
    request.sessionId = id;
    reply.header(SESSION_HEADER, id);
    // Every line this request logs (the request line, errors) carries the session.
    request.log = request.log.child({ session: id });
  });
}

/** The OpenAPI description of the header, added to the scoring routes' parameters by app.ts. */
export const sessionHeaderSchema = {
  type: 'string',
  pattern: SESSION_ID.source,
  description:
    "An agent run's id. Echoed on the response and logged; send it on every call of a run so that a router in front of several replicas keeps the run on the replica holding its prefix cache.",
} as const;
