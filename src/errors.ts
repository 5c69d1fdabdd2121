/**
 * Errors that carry their HTTP status and a machine-readable code, so every layer can fail
 * with a precise answer without knowing HTTP: the API layer only maps `status` and `code`
 * into `{ error: { code, message } }`.
 */
export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers, e.g. Retry-After on 429. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** Valid JSON whose content cannot be scored (empty step, ids outside the vocabulary, too long). */
export function unprocessable(code: string, message: string): ServiceError {
  return new ServiceError(422, code, message);
}

/** Malformed request: wrong types, conflicting fields. */
export function badRequest(code: string, message: string): ServiceError {
  return new ServiceError(400, code, message);
}
