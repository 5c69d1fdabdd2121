/**
 * Inputs → pieces (a text or given ids each, and whether it is a step), then pieces → one draft
 * sequence under a tokenization profile (design §2):
 *
 *   paper  [BOS the tokenizer names] + encode(piece_1) + encode(piece_2) + ...: every text piece
 *          encoded on its own without special tokens (a step never merges with its context), so
 *          a piece's encoding can be cached (piece-cache.ts).
 *   joint  each run of consecutive text pieces encoded once, as one text, with the special
 *          tokens Hugging Face's `tokenizer(text)` adds around it; a piece's tokens are those whose
 *          first character lies inside it (offsets.ts). Chat-template renderings get no added
 *          special tokens (as `apply_chat_template(tokenize=True)`): the template writes its own.
 *
 * Given ids (prompt_ids, segments' ids) are never re-tokenized.
 */
import { badRequest, unprocessable } from '../errors.js';
import type { Span } from '../sequence.js';
import { isStep, speakerOf, type Message } from './messages.js';
import { AlignmentError } from './offsets.js';
import { renderChatTemplate, renderPlain, type PlainLabel } from './render.js';
import type { TextTokenizer } from './tokenizer.js';
import type { Draft } from './truncate.js';

export type RenderMode = 'plain' | 'chat_template';
export type TokenizationProfile = 'paper' | 'joint';
export const TOKENIZATION_PROFILES: readonly TokenizationProfile[] = ['paper', 'joint'];

/** One part of a sequence: a text to encode or ids given as they are; `step` set when its tokens are scored. */
export interface Piece {
  text?: string;
  ids?: number[];
  step?: { index: number; role?: string; name?: string };
}

/** messages[message].content is the parts' texts joined by `separator`; each part is scored as step `index`. */
export interface SplitSteps {
  message: number;
  separator: string;
  parts: { index: number; text: string }[];
}

/** Pieces plus whether the tokenizer's BOS should go in front of them. */
export interface PieceList {
  pieces: Piece[];
  wantsBos: boolean;
  /** Rendered by a chat template, which writes its own special tokens. */
  template?: boolean;
}

export interface Segment {
  text?: string;
  ids?: number[];
  role?: string;
  name?: string;
  score?: boolean;
}

export interface MessagePieceOptions {
  render: RenderMode;
  label?: PlainLabel;
  /** Plain: every message as `[role]: content`, no assistant-turn rule (Who&When logs). */
  verbatim?: boolean;
  actionRoles: readonly string[];
  tools?: unknown[];
  /** Only these message indices are scored (default: every message `isStep` selects). */
  scoreOnly?: ReadonlySet<number>;
  /** Speakers (name, else role) whose messages are never steps: observations, such as a code executor. */
  excludeAgents?: readonly string[];
  /** One message rendered as several step pieces (its text around and between the parts is context). */
  split?: SplitSteps;
}

export function checkProfile(profile: unknown): TokenizationProfile {
  if (profile === undefined || profile === null) return 'paper';
  if (profile !== 'paper' && profile !== 'joint') {
    throw badRequest('invalid_tokenization', `tokenization must be "paper" or "joint" (got ${JSON.stringify(profile)})`);
  }
  return profile;
}

function checkLabel(label: unknown): PlainLabel {
  if (label === undefined || label === null) return 'role';
  if (label !== 'role' && label !== 'name') throw badRequest('invalid_label', `label must be "role" or "name" (got ${JSON.stringify(label)})`);
  return label;
}

function renderTexts(messages: readonly Message[], tok: TextTokenizer, options: MessagePieceOptions): { texts: string[]; wantsBos: boolean; template: boolean } {
  if (options.render === 'plain') return { texts: renderPlain(messages, checkLabel(options.label), options.verbatim), wantsBos: true, template: false };
  if (options.render !== 'chat_template') {
    throw badRequest('invalid_render', `render must be "plain" or "chat_template" (got ${JSON.stringify(options.render)})`);
  }
  if (tok.chatTemplate === null) throw unprocessable('no_chat_template', 'this scorer\'s tokenizer has no chat_template; use render "plain"');
  const texts = renderChatTemplate(messages, tok.chatTemplate, tok.specialTokens, { tools: options.tools });
  // A template that writes bos_token itself (Llama-2) must not get a second one.
  const bos = tok.specialTokens.bos_token;
  const emitsBos = bos !== undefined && texts.join('').startsWith(bos);
  return { texts, wantsBos: !emitsBos, template: true };
}

export function messagePieces(messages: readonly Message[], tok: TextTokenizer, options: MessagePieceOptions): PieceList {
  const { texts, wantsBos, template } = renderTexts(messages, tok, options);
  const pieces = texts.flatMap((text, index): Piece[] => {
    const m = messages[index];
    if (options.split?.message === index) return splitPieces(text, m, options.split);
    const excluded = options.excludeAgents?.includes(speakerOf(m) ?? m.role) === true;
    const scored = (options.scoreOnly ? options.scoreOnly.has(index) : isStep(m, options.actionRoles)) && !excluded;
    return [{ text, ...(scored ? { step: { index, role: m.role, name: speakerOf(m) } } : {}) }];
  });
  return { pieces, wantsBos, template };
}

/** The rendered text of a joined message → context before, each part as a step, separators, context after. */
function splitPieces(text: string, m: Message, split: SplitSteps): Piece[] {
  const content = split.parts.map((p) => p.text).join(split.separator);
  const at = text.indexOf(content);
  if (at < 0) throw new Error(`message ${split.message}: its rendering does not contain its content verbatim; cannot split it into steps`);
  const out: Piece[] = [];
  if (at > 0) out.push({ text: text.slice(0, at) });
  split.parts.forEach((part, k) => {
    if (k > 0) out.push({ text: split.separator });
    out.push({ text: part.text, step: { index: part.index, role: m.role, name: speakerOf(m) } });
  });
  const rest = text.slice(at + content.length);
  if (rest !== '') out.push({ text: rest });
  return out;
}

/**
 * Segments are taken as they are: text is encoded, ids are kept. BOS goes in front only when the
 * first segment is text; a caller who starts with ids controls the sequence's first token.
 */
export function segmentPieces(segments: readonly Segment[]): PieceList {
  const pieces = segments.map((seg, index): Piece => {
    if (!seg || typeof seg !== 'object') throw badRequest('invalid_segment', `segments[${index}] must be an object`);
    const hasText = seg.text !== undefined;
    const hasIds = seg.ids !== undefined;
    if (hasText === hasIds) throw badRequest('invalid_segment', `segments[${index}] needs exactly one of text or ids`);
    if (hasText && typeof seg.text !== 'string') throw badRequest('invalid_segment', `segments[${index}].text must be a string`);
    if (hasIds && !Array.isArray(seg.ids)) throw badRequest('invalid_segment', `segments[${index}].ids must be a list of token ids`);
    const body = hasText ? { text: seg.text! } : { ids: [...seg.ids!] };
    return { ...body, ...(seg.score === true ? { step: { index, role: seg.role, name: seg.name } } : {}) };
  });
  return { pieces, wantsBos: segments.length > 0 && segments[0].text !== undefined };
}

/** Encodes one text piece (the paper profile's, through the piece cache). */
export type PieceEncoder = (text: string) => readonly number[];

/** [start, end) of each piece in the draft's ids. */
export interface PieceRange {
  start: number;
  end: number;
}

export interface Assembled extends Draft {
  /** One range per piece, in order. */
  ranges: PieceRange[];
  /** Positions of the special tokens the service added (BOS, or the joint profile's post-processor tokens). */
  added: number[];
}

function stepSpans(pieces: readonly Piece[], ranges: readonly PieceRange[], profile: TokenizationProfile): Span[] {
  const spans: Span[] = [];
  pieces.forEach((piece, i) => {
    if (!piece.step) return;
    const { start, end } = ranges[i];
    if (start === end) {
      const why = profile === 'joint' && piece.text ? ' (under tokenization "joint" its text joins the token before it)' : ' (it renders to no text)';
      throw unprocessable('empty_step', `step ${piece.step.index} has no tokens${why}`);
    }
    const span: Span = { index: piece.step.index, start, end };
    if (piece.step.role !== undefined) span.role = piece.step.role;
    if (piece.step.name !== undefined) span.name = piece.step.name;
    spans.push(span);
  });
  return spans;
}

function assemblePaper(list: PieceList, tok: TextTokenizer, encode: PieceEncoder): Assembled {
  const ids: number[] = list.wantsBos && tok.bosId !== null ? [tok.bosId] : [];
  const added = ids.length > 0 ? [0] : [];
  const ranges = list.pieces.map((piece) => {
    const start = ids.length;
    for (const id of piece.text !== undefined ? encode(piece.text) : piece.ids!) ids.push(id);
    return { start, end: ids.length };
  });
  return { ids, spans: stepSpans(list.pieces, ranges, 'paper'), ranges, added, pinned: tok.bosId !== null && ids[0] === tok.bosId ? 1 : 0 };
}

function jointRun(pieces: readonly Piece[], tok: TextTokenizer, ids: number[], ranges: PieceRange[]): void {
  const text = pieces.map((p) => p.text!).join('');
  let encoding;
  try {
    encoding = tok.encodeWithOffsets(text);
  } catch (err) {
    if (!(err instanceof AlignmentError)) throw err;
    throw unprocessable(
      'tokenization_unaligned',
      `tokenization "joint" needs to know where each token starts, and this tokenizer's tokens do not spell the text back (${err.message}); use tokenization "paper"`,
    );
  }
  const base = ids.length;
  for (const id of encoding.ids) ids.push(id);
  // Byte offset where each piece ends; token k belongs to the piece holding its first byte.
  let k = 0;
  let end = 0;
  for (const piece of pieces) {
    end += Buffer.byteLength(piece.text!, 'utf8');
    const start = k;
    while (k < encoding.ids.length && encoding.starts[k] < end) k++;
    ranges.push({ start: base + start, end: base + k });
  }
  const last = ranges[ranges.length - 1];
  last.end = base + encoding.ids.length;
}

function assembleJoint(list: PieceList, tok: TextTokenizer): Assembled {
  const { pieces } = list;
  const specials = !list.template && pieces.length > 0;
  const ids: number[] = specials && list.wantsBos && pieces[0].text !== undefined ? [...tok.jointPrefix] : [];
  const added = ids.map((_, k) => k);
  const ranges: PieceRange[] = [];
  for (let i = 0; i < pieces.length; ) {
    if (pieces[i].text === undefined) {
      const start = ids.length;
      for (const id of pieces[i].ids!) ids.push(id);
      ranges.push({ start, end: ids.length });
      i++;
      continue;
    }
    let j = i;
    while (j < pieces.length && pieces[j].text !== undefined) j++;
    jointRun(pieces.slice(i, j), tok, ids, ranges);
    i = j;
  }
  if (specials && pieces[pieces.length - 1].text !== undefined) {
    for (const id of tok.jointSuffix) {
      added.push(ids.length);
      ids.push(id);
    }
  }
  const pinned = added.length > 0 && added[0] === 0 ? added.filter((p, k) => p === k).length : tok.bosId !== null && ids[0] === tok.bosId ? 1 : 0;
  return { ids, spans: stepSpans(pieces, ranges, 'joint'), ranges, added, pinned };
}

/** Pieces → one draft sequence with a span per step piece, under the tokenization profile. */
export function assemble(list: PieceList, tok: TextTokenizer, profile: TokenizationProfile, encode: PieceEncoder = tok.encodePiece): Assembled {
  return profile === 'joint' ? assembleJoint(list, tok) : assemblePaper(list, tok, encode);
}
