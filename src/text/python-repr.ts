/**
 * Python's `str()` of tool-call arguments, byte for byte (the paper's renderer writes
 * `tool_call(NAME, str(args))`, design §2).
 *
 * Arguments given as a JSON string are parsed here, not by JSON.parse, so that what Python's
 * json.loads keeps survives: `1.0` stays a float ("1.0"), `12345678901234567890` an exact int,
 * keys keep their order (JavaScript puts integer-like keys first), a repeated key keeps its first
 * place and its last value, and NaN/Infinity are accepted. Arguments given as an object were
 * parsed by JSON.parse; the request body parser and the offline file reader re-read them from the
 * JSON text where JSON.parse may have lost something (`annotateArguments`), so they print exactly
 * too; an object built in code prints an integral number as an int.
 */

export type PyValue =
  | { t: 'int'; v: string }
  | { t: 'float'; v: number }
  | { t: 'str'; v: string }
  | { t: 'bool'; v: boolean }
  | { t: 'none' }
  | { t: 'list'; v: PyValue[] }
  | { t: 'dict'; v: [string, PyValue][] };

export class PyJsonError extends Error {}

/** json.loads, keeping Python's types and order. Throws PyJsonError on invalid JSON. */
export function parsePythonJson(text: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new PyJsonError(`${what} at character ${i}`);
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      // Plain runs are copied in one slice.
      let j = i;
      while (j < text.length) {
        const code = text.charCodeAt(j);
        if (code === 0x22 || code === 0x5c || code < 0x20) break;
        j++;
      }
      if (j > i) {
        out += text.slice(i, j);
        i = j;
      }
      if (i >= text.length) fail('unterminated string');
      const c = text[i++];
      if (c === '"') return out;
      if (c === '\\') {
        const e = text[i++];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in simple) out += simple[e];
        else if (e === 'u') {
          const hex = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
        } else fail('bad escape');
      } else if (c.charCodeAt(0) < 0x20) fail('control character in string');
      else out += c;
    }
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/y;
  const value = (depth: number): PyValue => {
    if (depth > 1000) fail('too deeply nested');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const entries: [string, PyValue][] = [];
      const at = new Map<string, number>();
      ws();
      if (text[i] === '}') {
        i++;
        return { t: 'dict', v: entries };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = str();
        ws();
        if (text[i++] !== ':') fail("expected ':'");
        const v = value(depth + 1);
        const seen = at.get(key);
        if (seen !== undefined) entries[seen][1] = v;
        else {
          at.set(key, entries.length);
          entries.push([key, v]);
        }
        ws();
        const sep = text[i++];
        if (sep === '}') return { t: 'dict', v: entries };
        if (sep !== ',') fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const items: PyValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { t: 'list', v: items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        const sep = text[i++];
        if (sep === ']') return { t: 'list', v: items };
        if (sep !== ',') fail("expected ',' or ']'");
      }
    }
    if (c === '"') return { t: 'str', v: str() };
    for (const [word, v] of [
      ['true', { t: 'bool', v: true }],
      ['false', { t: 'bool', v: false }],
      ['null', { t: 'none' }],
      ['NaN', { t: 'float', v: NaN }],
      ['Infinity', { t: 'float', v: Infinity }],
      ['-Infinity', { t: 'float', v: -Infinity }],
    ] as [string, PyValue][]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('expected a value');
    i += m[0].length;
    if (m[1] === undefined && m[2] === undefined) return { t: 'int', v: BigInt(m[0]).toString() };
    return { t: 'float', v: Number(m[0]) };
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail('extra data');
  return v;
}

/** A value JSON.parse made → Python's type (an integral number is an int). */
export function fromJs(value: unknown): PyValue {
  const exact = value && typeof value === 'object' ? (value as { [PYTHON_VALUE]?: PyValue })[PYTHON_VALUE] : undefined;
  if (exact !== undefined) return exact;
  if (value === null || value === undefined) return { t: 'none' };
  if (typeof value === 'boolean') return { t: 'bool', v: value };
  if (typeof value === 'string') return { t: 'str', v: value };
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return { t: 'int', v: BigInt(value).toString() };
    return { t: 'float', v: value };
  }
  if (Array.isArray(value)) return { t: 'list', v: value.map(fromJs) };
  if (typeof value === 'object') return { t: 'dict', v: Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, fromJs(v)]) };
  return { t: 'str', v: String(value) };
}

/** repr(float): shortest round-trip digits, fixed notation for exponents −4..15, else d.ddde±XX. */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exp] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const e = Number(exp);
  if (e >= -4 && e < 16) {
    if (e >= 0) {
      const int = digits.slice(0, e + 1).padEnd(e + 1, '0');
      const frac = digits.slice(e + 1);
      return `${sign}${int}.${frac === '' ? '0' : frac}`;
    }
    return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

/** Characters str.isprintable() refuses: categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (but the space). */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** repr(str). */
export function pythonStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (cp === 0x20 || (cp > 0x20 && cp < 0x7f)) out += ch;
    else if (cp < 0x7f || (cp !== 0x20 && NON_PRINTABLE.test(ch))) {
      if (cp < 0x100) out += '\\x' + cp.toString(16).padStart(2, '0');
      else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
      else out += '\\U' + cp.toString(16).padStart(8, '0');
    } else out += ch;
  }
  return out + quote;
}

/** repr() of a value; str() of a dict or list is the same. */
export function pythonRepr(v: PyValue): string {
  switch (v.t) {
    case 'int':
      return v.v;
    case 'float':
      return pythonFloat(v.v);
    case 'str':
      return pythonStrRepr(v.v);
    case 'bool':
      return v.v ? 'True' : 'False';
    case 'none':
      return 'None';
    case 'list':
      return `[${v.v.map(pythonRepr).join(', ')}]`;
    case 'dict':
      return `{${v.v.map(([k, x]) => `${pythonStrRepr(k)}: ${pythonRepr(x)}`).join(', ')}}`;
  }
}

/** str(): a string is itself, everything else its repr. */
export function pythonStr(v: PyValue): string {
  return v.t === 'str' ? v.v : pythonRepr(v);
}

/** Characters str.strip() removes (str.isspace()). */
const PY_SPACE = '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

export function pythonStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && PY_SPACE.includes(s[a])) a++;
  while (b > a && PY_SPACE.includes(s[b - 1])) b--;
  return s.slice(a, b);
}

/**
 * Tool-call arguments given as objects lose, in JSON.parse, what json.loads keeps (`1.0` becomes
 * 1, integers past 2^53 round, integer-like keys move first). A JSON text that may hold such
 * arguments is parsed a second time here, and each `arguments` object gets its exact Python value
 * under this (non-enumerable) symbol, which `fromJs` prefers. Symbol.for: the body parser sets it
 * without importing this module.
 */
export const PYTHON_VALUE = Symbol.for('progress-advantage-server.python-value');

/** Cheap test on the raw text: an `arguments` key and a literal JSON.parse would not keep. */
const MAY_LOSE = /\d\.\d*0(?![\d])|\d[eE]|\d{16}|"-?\d+"\s*:/;

export function annotateArguments(text: string, value: unknown): void {
  if (!text.includes('"arguments"') || !MAY_LOSE.test(text)) return;
  let tree: PyValue;
  try {
    tree = parsePythonJson(text);
  } catch {
    return;
  }
  const walk = (py: PyValue, js: unknown): void => {
    if (py.t === 'list' && Array.isArray(js)) py.v.forEach((p, i) => walk(p, js[i]));
    else if (py.t === 'dict' && js && typeof js === 'object' && !Array.isArray(js)) {
      for (const [key, p] of py.v) {
        const child = (js as Record<string, unknown>)[key];
        if (key === 'arguments' && p.t === 'dict' && child && typeof child === 'object' && !Array.isArray(child)) {
          Object.defineProperty(child, PYTHON_VALUE, { value: p, enumerable: false });
        }
        walk(p, child);
      }
    }
  };
  walk(tree, value);
}
