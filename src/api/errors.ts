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

/**
 * Schema failures: an unknown field is 400 `unknown_field` on every route (the schemas are
 * closed with additionalProperties: false, so a misspelt option is never silently ignored); a
 * list over its maxItems (items, candidates, messages) is 413 `too_many_items`; the rest 400
 * `invalid_request`. ajv stops at the first error (allErrors: false), so that one decides.
 */
function validationReply(fe: FastifyError): { status: number; code: string; message: string; headers: Record<string, string> } {
  const first = fe.validation![0];
  const where = first?.instancePath ? first.instancePath : 'the top level';
  if (first?.keyword === 'additionalProperties') {
    // Capped: the name is client text and could be as long as the body.
    const field = String((first.params as { additionalProperty?: unknown }).additionalProperty).slice(0, 100);
    return { status: 400, code: 'unknown_field', message: `unknown field ${JSON.stringify(field)} at ${where}`, headers: {} };
  }
  if (first?.keyword === 'maxItems') {
    return { status: 413, code: 'too_many_items', message: `${where} ${first.message}`, headers: {} };
  }
  return { status: 400, code: 'invalid_request', message: fe.message, headers: {} };
}

export function toErrorReply(err: FastifyError | Error): { status: number; code: string; message: string; headers: Record<string, string>; item?: number } {
  if (err instanceof ServiceError) {
    return { status: err.status, code: err.code, message: err.message, headers: err.headers, ...(err.item !== undefined ? { item: err.item } : {}) };
  }
  const fe = err as FastifyError;
  if (fe.validation) return validationReply(fe);
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
    const error = { code: e.code, message: e.message, ...(e.item !== undefined ? { item: e.item } : {}) };
    void reply.code(e.status).headers(e.headers).send({ error });
  });
  app.setNotFoundHandler((request, reply) => {
    metrics.failures.inc({ code: 'not_found' });
    void reply.code(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url}` } });
  });
}
