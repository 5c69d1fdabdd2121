/**
 * One error shape for every failure: `{ error: { code, message } }`. Maps fastify's own errors
 * (validation, JSON parsing, body size, media type) to stable codes; anything unexpected is a
 * 500 `internal_error` and is logged, because it is a bug.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { ServiceError } from '../errors.js';
import type { Metrics } from '../metrics.js';

const FASTIFY_CODES: Record<string, [number, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'body_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'malformed_json'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid_content_length'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_json'],
};

export function toErrorReply(err: FastifyError | Error): { status: number; code: string; message: string; headers: Record<string, string> } {
  if (err instanceof ServiceError) return { status: err.status, code: err.code, message: err.message, headers: err.headers };
  const fe = err as FastifyError;
  if (fe.validation) return { status: 400, code: 'invalid_request', message: fe.message, headers: {} };
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return { status: mapped[0], code: mapped[1], message: fe.message, headers: {} };
  if (err instanceof SyntaxError || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
    return { status: 400, code: 'malformed_json', message: `malformed JSON body: ${fe.message}`, headers: {} };
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, code: 'bad_request', message: fe.message, headers: {} };
  }
  return { status: 500, code: 'internal_error', message: 'internal error; see the server log', headers: {} };
}

export function errorHandling(app: FastifyInstance, metrics: Metrics): void {
  app.setErrorHandler((err, request, reply) => {
    const e = toErrorReply(err as Error);
    if (e.status >= 500 && e.code === 'internal_error') request.log.error({ err }, 'unhandled error');
    metrics.failures.inc({ code: e.code });
    void reply.code(e.status).headers(e.headers).send({ error: { code: e.code, message: e.message } });
  });
  app.setNotFoundHandler((request, reply) => {
    metrics.failures.inc({ code: 'not_found' });
    void reply.code(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url}` } });
  });
}
