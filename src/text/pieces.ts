/**
 * Inputs → token pieces, each encoded on its own (design §2: a step never merges with its
 * context), then joined into one draft sequence with a span per step piece.
 */
import { badRequest, unprocessable } from '../errors.js';
import type { Span } from '../sequence.js';
import { isStep, speakerOf, type Message } from './messages.js';
import { renderChatTemplate, renderPlain } from './render.js';
import type { TextTokenizer } from './tokenizer.js';
import type { Draft } from './truncate.js';

export type RenderMode = 'plain' | 'chat_template';

/** One part of a sequence; `step` set when its tokens are scored. */
export interface Piece {
  ids: number[];
  step?: { index: number; role?: string; name?: string };
}

/** Pieces plus whether the tokenizer's BOS should go in front of them. */
export interface PieceList {
  pieces: Piece[];
  wantsBos: boolean;
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
  actionRoles: readonly string[];
  tools?: unknown[];
  /** Only these message indices are scored (default: every message `isStep` selects). */
  scoreOnly?: ReadonlySet<number>;
  /** Speakers (name, else role) whose messages are never steps: observations, such as a code executor. */
  excludeAgents?: readonly string[];
}

function renderTexts(messages: readonly Message[], tok: TextTokenizer, options: MessagePieceOptions): { texts: string[]; wantsBos: boolean } {
  if (options.render === 'plain') return { texts: renderPlain(messages), wantsBos: true };
  if (options.render !== 'chat_template') {
    throw badRequest('invalid_render', `render must be "plain" or "chat_template" (got ${JSON.stringify(options.render)})`);
  }
  if (tok.chatTemplate === null) throw unprocessable('no_chat_template', 'this scorer\'s tokenizer has no chat_template; use render "plain"');
  const texts = renderChatTemplate(messages, tok.chatTemplate, tok.specialTokens, { tools: options.tools });
  // A template that writes bos_token itself (Llama-2) must not get a second one.
  const bos = tok.specialTokens.bos_token;
  const emitsBos = bos !== undefined && texts.join('').startsWith(bos);
  return { texts, wantsBos: !emitsBos };
}

export function messagePieces(messages: readonly Message[], tok: TextTokenizer, options: MessagePieceOptions): PieceList {
  const { texts, wantsBos } = renderTexts(messages, tok, options);
  const pieces = texts.map((text, index): Piece => {
    const m = messages[index];
    const excluded = options.excludeAgents?.includes(speakerOf(m) ?? m.role) === true;
    const scored = options.scoreOnly ? options.scoreOnly.has(index) : isStep(m, options.actionRoles) && !excluded;
    return { ids: tok.encode(text), ...(scored ? { step: { index, role: m.role, name: speakerOf(m) } } : {}) };
  });
  return { pieces, wantsBos };
}

/**
 * Segments are taken as they are: text is encoded, ids are kept. BOS goes in front only when the
 * first segment is text; a caller who starts with ids controls the sequence's first token.
 */
export function segmentPieces(segments: readonly Segment[], tok: TextTokenizer): PieceList {
  const pieces = segments.map((seg, index): Piece => {
    if (!seg || typeof seg !== 'object') throw badRequest('invalid_segment', `segments[${index}] must be an object`);
    const hasText = seg.text !== undefined;
    const hasIds = seg.ids !== undefined;
    if (hasText === hasIds) throw badRequest('invalid_segment', `segments[${index}] needs exactly one of text or ids`);
    if (hasText && typeof seg.text !== 'string') throw badRequest('invalid_segment', `segments[${index}].text must be a string`);
    if (hasIds && !Array.isArray(seg.ids)) throw badRequest('invalid_segment', `segments[${index}].ids must be a list of token ids`);
    const ids = hasText ? tok.encode(seg.text!) : [...seg.ids!];
    return { ids, ...(seg.score === true ? { step: { index, role: seg.role, name: seg.name } } : {}) };
  });
  return { pieces, wantsBos: segments.length > 0 && segments[0].text !== undefined };
}

/**
 * Joins pieces, after BOS when `addBos`; every step piece becomes a span over its own tokens.
 * A leading BOS, added here or written by a template or the caller's ids, is pinned: truncation
 * keeps it first.
 */
export function assemble(pieces: readonly Piece[], bosId: number | null, addBos: boolean): Draft {
  const ids: number[] = addBos && bosId !== null ? [bosId] : [];
  const spans: Span[] = [];
  for (const piece of pieces) {
    const start = ids.length;
    for (const id of piece.ids) ids.push(id);
    if (piece.step) {
      if (piece.ids.length === 0) {
        throw unprocessable('empty_step', `step ${piece.step.index} has no tokens (it renders to no text)`);
      }
      const span: Span = { index: piece.step.index, start, end: ids.length };
      if (piece.step.role !== undefined) span.role = piece.step.role;
      if (piece.step.name !== undefined) span.name = piece.step.name;
      spans.push(span);
    }
  }
  return { ids, spans, pinned: bosId !== null && ids[0] === bosId ? 1 : 0 };
}
