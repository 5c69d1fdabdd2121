/**
 * Where each token of an encoding starts in the text (the `joint` profile's spans, design §2).
 *
 * @huggingface/tokenizers returns ids and token strings but no offsets, so they are recovered
 * here: every token has a *surface*, the bytes it stands for in the text, read from its string the
 * way the tokenizer's decoder reads it (ByteLevel: the GPT-2 byte alphabet; SentencePiece: "▁" is
 * a space and `<0xNN>` one byte; WordPiece: "##" dropped; BPE: the end-of-word suffix dropped;
 * added tokens: their content). The surfaces are then matched against the text's UTF-8 bytes left
 * to right. Between tokens the text may hold whitespace no token covers (pre-tokenizers that
 * remove it, added tokens with lstrip/rstrip), and a token's surface may start with a space the
 * text lacks (the "▁" SentencePiece prepends, ByteLevel add_prefix_space); both are allowed. The
 * unknown token covers text of unknown length: the next token is searched for after it.
 *
 * A token's first character is the character holding its first matched byte. When a token's
 * surface cannot be found (a normalizer that rewrites text: lowercasing, NFC on decomposed input),
 * alignment fails with the position, and the caller refuses the request rather than guess.
 */

export class AlignmentError extends Error {}

/** GPT-2's bytes_to_unicode, inverted: byte-level token character → byte. */
function byteLevelTable(): Map<number, number> {
  const table = new Map<number, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table.set(printable ? b : 256 + extra++, b);
  }
  return table;
}

type Json = Record<string, any>;

function decoderTypes(decoder: Json | null | undefined): Json[] {
  if (!decoder) return [];
  if (decoder.type === 'Sequence') return (decoder.decoders ?? []).flatMap(decoderTypes);
  return [decoder];
}

export interface SurfaceRules {
  byteLevel: boolean;
  /** "▁" stands for a space (Metaspace, or Replace "▁" → " "). */
  metaspace: boolean;
  byteFallback: boolean;
  /** Prefixes/suffixes a token string carries that are not text (WordPiece "##", BPE "</w>"). */
  dropPrefix: string | null;
  dropSuffix: string | null;
}

export function surfaceRules(tokenizerJson: unknown): SurfaceRules {
  const json = tokenizerJson as Json;
  const decoders = decoderTypes(json.decoder);
  const model = (json.model ?? {}) as Json;
  const wordPiece = decoders.find((d) => d.type === 'WordPiece');
  const bpeDecoder = decoders.find((d) => d.type === 'BPEDecoder');
  return {
    byteLevel: decoders.some((d) => d.type === 'ByteLevel'),
    metaspace: decoders.some(
      (d) => d.type === 'Metaspace' || (d.type === 'Replace' && d.pattern?.String === '\u2581' && d.content === ' '),
    ),
    byteFallback: decoders.some((d) => d.type === 'ByteFallback') || model.byte_fallback === true,
    dropPrefix: wordPiece ? (wordPiece.prefix ?? '##') : typeof model.continuing_subword_prefix === 'string' && model.continuing_subword_prefix !== '' ? model.continuing_subword_prefix : null,
    dropSuffix: bpeDecoder ? (bpeDecoder.suffix ?? '</w>') : typeof model.end_of_word_suffix === 'string' && model.end_of_word_suffix !== '' ? model.end_of_word_suffix : null,
  };
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextEncoder();

/** Computes (and caches) the surface bytes of token strings; `null` marks the unknown token. */
export class Surfaces {
  private readonly cache = new Map<string, Uint8Array>();
  private readonly table: Map<number, number> | null;

  constructor(
    private readonly rules: SurfaceRules,
    /** Added tokens' contents: their surface is the content itself. */
    private readonly added: ReadonlySet<string>,
  ) {
    this.table = rules.byteLevel ? byteLevelTable() : null;
  }

  of(token: string): Uint8Array {
    let s = this.cache.get(token);
    if (s === undefined) {
      s = this.compute(token);
      if (this.cache.size < 1_000_000) this.cache.set(token, s);
    }
    return s;
  }

  private compute(token: string): Uint8Array {
    if (this.added.has(token)) return utf8.encode(token);
    if (this.table) {
      const bytes: number[] = [];
      for (const ch of token) {
        const b = this.table.get(ch.codePointAt(0)!);
        if (b === undefined) return utf8.encode(token); // not a byte-level token string
        bytes.push(b);
      }
      return Uint8Array.from(bytes);
    }
    if (this.rules.byteFallback) {
      const m = BYTE_TOKEN.exec(token);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
    }
    let text = token;
    if (this.rules.dropPrefix && text.startsWith(this.rules.dropPrefix)) text = text.slice(this.rules.dropPrefix.length);
    if (this.rules.dropSuffix && text.endsWith(this.rules.dropSuffix)) text = text.slice(0, -this.rules.dropSuffix.length);
    if (this.rules.metaspace) text = text.replaceAll('\u2581', ' ');
    return utf8.encode(text);
  }
}

const isSpace = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0b || b === 0x0c;

function matchesAt(text: Uint8Array, at: number, s: Uint8Array, from: number): boolean {
  if (at + s.length - from > text.length) return false;
  for (let i = from; i < s.length; i++) if (text[at + i - from] !== s[i]) return false;
  return true;
}

function indexOf(text: Uint8Array, s: Uint8Array, from: number): number {
  if (s.length === 0) return from;
  const buf = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  return buf.indexOf(s, from);
}

/** Where a run of `n` unknown tokens between byte `from` and `to` starts: word starts first, then character starts. */
function unknownStarts(text: Uint8Array, from: number, to: number, n: number): number[] {
  const words: number[] = [];
  const chars: number[] = [];
  for (let p = from; p < to; p++) {
    const b = text[p];
    if (isSpace(b) || (b & 0xc0) === 0x80) continue; // whitespace, or inside a UTF-8 character
    if (p === from || isSpace(text[p - 1])) words.push(p);
    else chars.push(p);
  }
  const picked = words.length >= n ? words.slice(0, n) : [...words, ...chars.slice(0, n - words.length)].sort((a, b) => a - b);
  while (picked.length < n) picked.push(picked.at(-1) ?? from);
  return picked;
}

/**
 * Byte offset in `text` (UTF-8) of each token's first byte; `null` surfaces are the unknown token.
 * Throws AlignmentError when a token's surface is not where it must be.
 */
export function alignTokens(text: Uint8Array, surfaces: readonly (Uint8Array | null)[]): Int32Array {
  const starts = new Int32Array(surfaces.length);
  let c = 0;
  /** Unknown tokens since the last known one: they cover [unknownFrom, where the next known token starts). */
  const unknown: number[] = [];
  let unknownFrom = 0;
  const settleUnknown = (to: number) => {
    unknownStarts(text, unknownFrom, to, unknown.length).forEach((p, i) => (starts[unknown[i]] = p));
    unknown.length = 0;
  };
  for (let k = 0; k < surfaces.length; k++) {
    const s = surfaces[k];
    if (s === null) {
      if (unknown.length === 0) {
        while (c < text.length && isSpace(text[c])) c++;
        unknownFrom = c;
      }
      unknown.push(k);
      continue;
    }
    let at = -1;
    let consumed = 0;
    if (unknown.length > 0) {
      // Unknown tokens cover at least one character each: the next known token comes after them.
      const from = Math.min(unknownFrom + unknown.length, text.length);
      const full = indexOf(text, s, from);
      const lead = s.length > 1 && s[0] === 0x20 ? indexOf(text, s.subarray(1), from) : -1;
      if (full >= 0 && (lead < 0 || full <= lead)) [at, consumed] = [full, s.length];
      else if (lead >= 0) [at, consumed] = [lead, s.length - 1];
      if (at >= 0) settleUnknown(at);
    } else {
      let p = c;
      for (;;) {
        if (matchesAt(text, p, s, 0)) [at, consumed] = [p, s.length];
        else if (s.length > 0 && s[0] === 0x20 && matchesAt(text, p, s, 1)) [at, consumed] = [p, s.length - 1];
        if (at >= 0 || p >= text.length || !isSpace(text[p])) break;
        p++;
      }
    }
    if (at < 0) throw new AlignmentError(`token ${k} (${JSON.stringify(Buffer.from(s).toString('utf8'))}) is not found in the text at byte ${c}`);
    starts[k] = at;
    c = at + consumed;
  }
  if (unknown.length > 0) settleUnknown(text.length);
  else {
    for (let p = c; p < text.length; p++) {
      if (!isSpace(text[p])) throw new AlignmentError(`the text from byte ${p} is covered by no token`);
    }
  }
  return starts;
}
