/**
 * A Hugging Face tokenizer directory, loaded into the one interface the rest of the service
 * uses (design §2). Encoding never adds special tokens: the compiler decides where BOS goes.
 *
 * Files read from the directory:
 *   tokenizer.json (or tokenizer.json.gz)   required
 *   tokenizer_config.json                   required: BOS/EOS, add_bos_token, chat template
 *   special_tokens_map.json                 optional: fills special tokens the config lacks
 *   config.json                             optional: eos_token_id when no eos_token is named
 *   chat_template.jinja                     optional: the newer place for the chat template
 *
 * BOS rule of the `paper` profile (design §2): the token named by bos_token, whatever
 * tokenizer_config's add_bos_token says; the paper's released code prepends it whenever the
 * tokenizer names one. `add_bos_token` is kept (`addBosToken`) for the `joint` profile, which
 * follows the tokenizer as Hugging Face's `tokenizer(text)` does. config.json's bos_token_id is
 * deliberately NOT used: Qwen's config.json lists bos_token_id 151643 while its tokenizer names no
 * BOS and never adds one, so trusting it would put a token in front that the model never saw there.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { Tokenizer } from '@huggingface/tokenizers';
import { alignTokens, surfaceRules, Surfaces } from './offsets.js';
import { PieceCache } from './piece-cache.js';

/** An encoding with where each token starts: `starts[k]` is the UTF-8 byte offset in `bytes` of token k's first byte. */
export interface OffsetEncoding {
  ids: number[];
  starts: Int32Array;
  /** The text as UTF-8. */
  bytes: Uint8Array;
}

export interface TextTokenizer {
  /** Token ids of `text`, never with special tokens added (special-token text inside is still matched). */
  encode(text: string): number[];
  /** `encode(text)` through this tokenizer's bounded cache of piece encodings (piece-cache.ts); never change the result. */
  encodePiece(text: string): readonly number[];
  readonly pieceCache: PieceCache;
  /** `encode(text)` plus each token's offset in the text (offsets.ts); throws AlignmentError when they cannot be found. */
  encodeWithOffsets(text: string): OffsetEncoding;
  /**
   * The special tokens Hugging Face's `tokenizer(text)` puts around a text (the post-processor,
   * with `add_bos_token` / `add_eos_token` applied where tokenizer_config sets them): the `joint` profile's.
   */
  readonly jointPrefix: readonly number[];
  readonly jointSuffix: readonly number[];
  /** Exact text of the ids: special tokens kept, no clean-up of spaces. */
  decode(ids: readonly number[]): string;
  /** Decoded text of one token, with its leading space where it has one (for return_tokens). */
  tokenText(id: number): string;
  /** The token bos_token names (prepended to text input by the `paper` profile); null when the tokenizer names none. */
  readonly bosId: number | null;
  /** tokenizer_config.json add_bos_token as written (null when absent): the `joint` profile follows it. */
  readonly addBosToken: boolean | null;
  readonly eosId: number | null;
  /** The id text falls back to when the vocabulary lacks a word (unk_token); null when it has none. */
  readonly unkId: number | null;
  /** The tokenizer's size including added tokens: max id + 1. */
  readonly vocabSize: number;
  /** tokenizer_config.json chat_template (a string, or the 'default' entry of a list). */
  readonly chatTemplate: string | null;
  /** tokenizer_config model_max_length when it is a real limit (HF writes ~1e30 for "none"). */
  readonly modelMaxLength: number | null;
  /** bos_token, eos_token, ... as strings, for chat templates. */
  readonly specialTokens: Record<string, string>;
}

/** The parsed contents of a tokenizer directory; `createTextTokenizer` needs nothing else. */
export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig: Record<string, unknown>;
  specialTokensMap?: Record<string, unknown>;
  modelConfig?: Record<string, unknown>;
  chatTemplateFile?: string;
}

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'];

/** HF writes int(1e30) as model_max_length when a tokenizer has no limit. */
const INSANE_MAX_LENGTH = 1e9;

/** A special token is a string or an AddedToken object `{content: ...}`. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

function collectSpecialTokens(files: TokenizerFiles): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    // tokenizer_config wins, as in transformers: special_tokens_map only fills what it lacks.
    const fromConfig = key in files.tokenizerConfig ? tokenContent(files.tokenizerConfig[key]) : undefined;
    const value = fromConfig !== undefined ? fromConfig : tokenContent(files.specialTokensMap?.[key]);
    if (value !== null && value !== undefined) tokens[key] = value;
  }
  return tokens;
}

function pickChatTemplate(files: TokenizerFiles): string | null {
  const t = files.tokenizerConfig.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const entry = t.find((e) => e && typeof e === 'object' && e.name === 'default');
    return typeof entry?.template === 'string' ? entry.template : null;
  }
  return files.chatTemplateFile ?? null;
}

function pickMaxLength(config: Record<string, unknown>): number | null {
  const n = config.model_max_length;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n < INSANE_MAX_LENGTH ? n : null;
}

function firstId(value: unknown): number | null {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (Array.isArray(value) && typeof value[0] === 'number') return value[0];
  return null;
}

/**
 * Decoders that strip the first token's leading space (SentencePiece-style `Strip`, `Metaspace`)
 * would turn "▁world" into "world" when a token is decoded alone; those tokens are decoded after
 * an anchor token instead, and the anchor's text removed.
 */
function stripsLeadingSpace(tokenizerJson: unknown): boolean {
  const decoder = JSON.stringify((tokenizerJson as { decoder?: unknown }).decoder ?? null);
  return /"type":"(Strip|Metaspace)"/.test(decoder);
}

/**
 * What the post-processor adds around a text (found by encoding a probe with and without special
 * tokens), then add_bos_token / add_eos_token where tokenizer_config sets them, as transformers'
 * fast tokenizers rebuild their post-processor from those flags (LlamaTokenizerFast).
 */
function postProcessorTokens(tok: Tokenizer, config: Record<string, unknown>, bosId: number | null, eosId: number | null) {
  const probe = 'a';
  const bare = tok.encode(probe, { add_special_tokens: false }).ids;
  const full = tok.encode(probe, { add_special_tokens: true }).ids;
  let at = -1;
  for (let i = 0; i + bare.length <= full.length && at < 0; i++) if (bare.every((id: number, k: number) => full[i + k] === id)) at = i;
  let prefix = at >= 0 ? full.slice(0, at) : [];
  let suffix = at >= 0 ? full.slice(at + bare.length) : [];
  if (config.add_bos_token === false && bosId !== null && prefix[0] === bosId) prefix = prefix.slice(1);
  if (config.add_bos_token === true && bosId !== null && prefix[0] !== bosId) prefix = [bosId, ...prefix];
  if (config.add_eos_token === false && eosId !== null && suffix.at(-1) === eosId) suffix = suffix.slice(0, -1);
  if (config.add_eos_token === true && eosId !== null && suffix.at(-1) !== eosId) suffix = [...suffix, eosId];
  return { jointPrefix: prefix, jointSuffix: suffix };
}

/** Builds the service's tokenizer from already-parsed files; `source` names them in errors. */
export function createTextTokenizer(files: TokenizerFiles, source: string): TextTokenizer {
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(files.tokenizerJson as object, files.tokenizerConfig);
  } catch (err) {
    throw new Error(`${source}: not a usable tokenizer.json (${(err as Error).message})`);
  }
  const specialTokens = collectSpecialTokens(files);

  let bosId: number | null = null;
  if (specialTokens.bos_token !== undefined) {
    const id = tok.token_to_id(specialTokens.bos_token);
    if (id === undefined) throw new Error(`${source}: bos_token ${JSON.stringify(specialTokens.bos_token)} is not in the vocabulary`);
    bosId = id;
  }
  const eosText = specialTokens.eos_token;
  const eosId = (eosText !== undefined ? tok.token_to_id(eosText) : undefined) ?? firstId(files.modelConfig?.eos_token_id);

  let maxId = -1;
  for (const id of tok.get_vocab(true).values()) if (id > maxId) maxId = id;
  for (const id of tok.get_added_tokens_decoder().keys()) if (id > maxId) maxId = id;

  const { jointPrefix, jointSuffix } = postProcessorTokens(tok, files.tokenizerConfig, bosId, eosId ?? null);
  const addedContents = new Set([...tok.get_added_tokens_decoder().values()].map((t) => t.content));
  const surfaces = new Surfaces(surfaceRules(files.tokenizerJson), addedContents);
  const unkName = (files.tokenizerJson as { model?: { unk_token?: unknown } }).model?.unk_token;
  const unkId = typeof unkName === 'string' ? (tok.token_to_id(unkName) ?? null) : null;
  const utf8 = new TextEncoder();
  const encode = (text: string) => tok.encode(text, { add_special_tokens: false }).ids;
  const pieceCache = new PieceCache();

  const decodeExact = (ids: readonly number[]) =>
    tok.decode(ids as number[], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  const anchor = stripsLeadingSpace(files.tokenizerJson) ? (tok.encode('a', { add_special_tokens: false }).ids.at(-1) ?? null) : null;
  const anchorText = anchor === null ? '' : decodeExact([anchor]);

  return {
    encode,
    encodePiece: (text) => pieceCache.get(text, encode),
    pieceCache,
    encodeWithOffsets(text) {
      const { ids, tokens } = tok.encode(text, { add_special_tokens: false });
      const bytes = utf8.encode(text);
      const starts = alignTokens(
        bytes,
        tokens.map((t: string, k: number) => (ids[k] === unkId ? null : surfaces.of(t))),
      );
      return { ids, starts, bytes };
    },
    jointPrefix,
    jointSuffix,
    decode: decodeExact,
    tokenText(id) {
      if (anchor === null) return decodeExact([id]);
      const both = decodeExact([anchor, id]);
      return both.startsWith(anchorText) ? both.slice(anchorText.length) : decodeExact([id]);
    },
    bosId,
    addBosToken: typeof files.tokenizerConfig.add_bos_token === 'boolean' ? files.tokenizerConfig.add_bos_token : null,
    eosId: eosId ?? null,
    unkId,
    vocabSize: maxId + 1,
    chatTemplate: pickChatTemplate(files),
    modelMaxLength: pickMaxLength(files.tokenizerConfig),
    specialTokens,
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

async function readJson(file: string): Promise<any> {
  let raw: Buffer;
  try {
    raw = await fs.readFile(file);
    if (file.endsWith('.gz')) raw = zlib.gunzipSync(raw);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

async function readOptionalJson(file: string): Promise<any> {
  return (await exists(file)) ? readJson(file) : undefined;
}

/** Loads a tokenizer directory. Any missing or corrupt required file rejects with its path in the message. */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const plain = path.join(dir, 'tokenizer.json');
  const gz = `${plain}.gz`;
  const tokenizerFile = (await exists(plain)) ? plain : (await exists(gz)) ? gz : null;
  if (!tokenizerFile) throw new Error(`no tokenizer found: neither ${plain} nor ${gz} exists`);
  const configFile = path.join(dir, 'tokenizer_config.json');
  if (!(await exists(configFile))) throw new Error(`no tokenizer config found: ${configFile} does not exist`);

  const templateFile = path.join(dir, 'chat_template.jinja');
  const files: TokenizerFiles = {
    tokenizerJson: await readJson(tokenizerFile),
    tokenizerConfig: await readJson(configFile),
    specialTokensMap: await readOptionalJson(path.join(dir, 'special_tokens_map.json')),
    modelConfig: await readOptionalJson(path.join(dir, 'config.json')),
    chatTemplateFile: (await exists(templateFile)) ? await fs.readFile(templateFile, 'utf8') : undefined,
  };
  if (!files.tokenizerConfig || typeof files.tokenizerConfig !== 'object' || Array.isArray(files.tokenizerConfig)) {
    throw new Error(`${configFile} must hold a JSON object`);
  }
  return createTextTokenizer(files, tokenizerFile);
}
