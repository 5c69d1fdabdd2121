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

  /** Index of the request's `items` entry at fault, when the error is about one item. */
  item?: number;
}

/** Runs `fn` on each item; a ServiceError from one names it (`error.item` = its index). */
export function eachItem<T, R>(items: readonly T[], fn: (item: T, index: number) => R, named = true): R[] {
  return items.map((item, index) => {
    try {
      return fn(item, index);
    } catch (err) {
      if (named && err instanceof ServiceError && err.item === undefined) err.item = index;
      throw err;
    }
  });
}

/** Valid JSON whose content cannot be scored (empty step, ids outside the vocabulary, too long). */
export function unprocessable(code: string, message: string): ServiceError {
  return new ServiceError(422, code, message);
}

/** Malformed request: wrong types, conflicting fields. */
export function badRequest(code: string, message: string): ServiceError {
  return new ServiceError(400, code, message);
}
