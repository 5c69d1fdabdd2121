/**
 * The application/json body parser: fastify's own (secure-json-parse, __proto__/constructor
 * poisoning refused, body limit enforced while reading) behind two checks on the raw bytes:
 *
 * - invalid UTF-8 is a 400 `invalid_utf8`: decoding would silently turn the bad bytes into U+FFFD
 *   and the service would score text the client never sent;
 * - tool-call `arguments` objects get their exact Python value attached where JSON.parse may have
 *   lost it (text/python-repr.ts), so the plain renderer writes str() of what was sent;
 * - nesting deeper than MAX_JSON_DEPTH is a 400 `too_deeply_nested`, before JSON.parse: free-form
 *   fields (tool-call arguments, dataset records, tool definitions) are later serialized or walked
 *   recursively, and a body of "[[[[…" would exhaust the stack there (a 500) after tokenization work.
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../errors.js';
import { annotateArguments } from '../text/python-repr.js';

/** Far deeper than any agent record or tool argument; far shallower than a stack overflow. */
export const MAX_JSON_DEPTH = 128;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;

/** Deepest array/object nesting of a JSON text (brackets inside strings do not count), stopping once over `limit`. */
export function jsonDepthExceeds(bytes: Uint8Array, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) depth--;
  }
  return false;
}

/**
 * Where a body that is not JSON broke, for the malformed_json message: the parser's position when
 * it tells one (line and column counted here), the end for a body cut short, else the character
 * it stopped at. Never a piece of the body beyond that one character.
 */
export function describeJsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = / at position (\d+)/.exec(message);
    if (at) {
      const position = Number(at[1]);
      const before = text.slice(0, position);
      const line = before.split('\n').length;
      const column = position - before.lastIndexOf('\n');
      const what = message.slice(0, at.index).replace(/ in JSON$/, '');
      return `malformed JSON body at position ${position} (line ${line}, column ${column}): ${what}`;
    }
    if (/Unexpected end of JSON input/.test(message)) return `malformed JSON body: it ends at position ${text.length} before the JSON does`;
    const token = /^Unexpected token '(.)'/.exec(message);
    if (token) return `malformed JSON body: unexpected character ${JSON.stringify(token[1])}${/[NI]/.test(token[1]) ? ' (NaN and Infinity are not JSON)' : ''}`;
    return 'malformed JSON body';
  }
  // JSON.parse accepts it, so the secure parser refused a prototype key.
  return 'the JSON body holds a "__proto__" or "constructor.prototype" key, which is refused';
}

export function jsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      done(badRequest('invalid_utf8', 'the request body is not valid UTF-8'), undefined);
      return;
    }
    if (jsonDepthExceeds(bytes, MAX_JSON_DEPTH)) {
      done(badRequest('too_deeply_nested', `the JSON body nests arrays/objects deeper than ${MAX_JSON_DEPTH} levels`), undefined);
      return;
    }
    const text = bytes.toString('utf8');
    // Tool-call arguments objects keep what Python's json.loads would (1.0, big ints, key order) for the plain renderer.
    parse(request, text, (err: Error | null, value?: unknown) => {
      if ((err as { code?: string } | null)?.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        done(badRequest('malformed_json', describeJsonError(text)), undefined);
        return;
      }
      if (!err) annotateArguments(text, value);
      done(err, value);
    });
  });
}
