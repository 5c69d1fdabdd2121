/**
 * `render: "chat_template"`: the tokenizer's Jinja chat template, cut into one piece per message.
 *
 * The pieces always concatenate to the rendering of the whole conversation F (what one forward
 * pass sees). Message i's piece ends where the rendering of messages[0..i] (R_i) ends — the
 * design's rule "the difference between the renderings up to and including it and up to before
 * it" — whenever R_i is a prefix of F. For templates where every R_i is a prefix of the next
 * (Qwen2.5 without consecutive tool messages, Llama-2, ChatML) this is exactly that rule.
 *
 * Some real templates render a message differently when it is the last one:
 *   - Qwen3 gives the final assistant turn an empty "<think>\n\n</think>\n\n" block and drops it
 *     once a later user message exists, so no multi-turn Qwen3 conversation is prefix-stable;
 *   - Qwen2.5/Qwen3 close a run of tool messages with "<|im_end|>" only after the last of them.
 * There R_i and F agree up to some point d, then R_i goes on with its last-message variant of
 * message i. The piece then ends at d plus the longest tail of R_i[d:] that F continues with
 * (for Qwen3: "content<|im_end|>\n", the part both variants share). If R_i already disagrees
 * with F before message i's piece starts (earlier messages' text depends on what follows them),
 * or the two variants share no ending, no honest boundary exists: 422 chat_template_not_prefix.
 *
 * Template inputs: bos_token/eos_token/... as strings, add_generation_prompt false, `tools`
 * when given. Messages are passed with content flattened to a string (null → "", since
 * templates concatenate it) and tool-call arguments that are JSON strings parsed into objects
 * (as vLLM does), so templates that apply `tojson` write them once, not as a quoted string.
 */
import { Template } from '@huggingface/jinja';
import { unprocessable } from '../errors.js';
import { contentText, type Message } from './messages.js';

export interface ChatTemplateOptions {
  /** Tool definitions for templates that describe them (Qwen2.5/Qwen3 `tools`). */
  tools?: unknown[];
}

const compiled = new Map<string, Template>();
const MAX_CACHED_TEMPLATES = 16;

function parseTemplate(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (err) {
      throw unprocessable('chat_template_error', `the tokenizer's chat template does not parse: ${(err as Error).message}`);
    }
    if (compiled.size >= MAX_CACHED_TEMPLATES) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

function parsedArguments(args: unknown): unknown {
  if (typeof args !== 'string') return args;
  try {
    const parsed = JSON.parse(args);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : args;
  } catch {
    return args;
  }
}

function templateMessage(message: Message, index: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...message, content: contentText(message, index) };
  if (message.tool_calls) {
    // τ²-bench calls {name, arguments} are given to templates in OpenAI shape.
    out.tool_calls = message.tool_calls.map(({ name, arguments: args, ...call }) => ({
      ...call,
      function: call.function
        ? { ...call.function, arguments: parsedArguments(call.function.arguments) }
        : { name, arguments: parsedArguments(args) },
    }));
  }
  return out;
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** Length of the longest suffix of `a` that is a prefix of `b` (KMP over `a` with pattern `b`). */
export function suffixPrefixOverlap(a: string, b: string): number {
  const pattern = b.slice(0, a.length);
  if (pattern.length === 0) return 0;
  const fail = new Int32Array(pattern.length);
  for (let i = 1, k = 0; i < pattern.length; i++) {
    while (k > 0 && pattern[i] !== pattern[k]) k = fail[k - 1];
    if (pattern[i] === pattern[k]) k++;
    fail[i] = k;
  }
  let k = 0;
  for (let i = 0; i < a.length; i++) {
    while (k > 0 && (k === pattern.length || a[i] !== pattern[k])) k = fail[k - 1];
    if (a[i] === pattern[k]) k++;
  }
  return k;
}

/** Where message i's piece ends in the full rendering, given R_i and where its piece starts. */
function pieceEnd(partial: string, full: string, start: number, index: number): number {
  if (full.startsWith(partial) && partial.length >= start) return partial.length;
  const agreed = commonPrefixLength(partial, full);
  const shared = agreed >= start ? suffixPrefixOverlap(partial.slice(agreed), full.slice(agreed)) : 0;
  // The last-message variant must agree before message i and share its ending with the full
  // rendering; otherwise the boundary would be a guess.
  if (agreed < start || shared === 0) {
    throw unprocessable(
      'chat_template_not_prefix',
      `the chat template renders messages[0..${index}] in a way that is not part of its rendering of the whole conversation, so messages[${index}] has no well-defined span; use render "plain" or segments`,
    );
  }
  return agreed + shared;
}

/** One text piece per message; their concatenation is the template's rendering of all messages. */
export function renderChatTemplate(
  messages: readonly Message[],
  template: string,
  specialTokens: Record<string, string>,
  options: ChatTemplateOptions = {},
): string[] {
  const tpl = parseTemplate(template);
  const prepared = messages.map(templateMessage);
  const render = (count: number): string => {
    try {
      return tpl.render({
        ...specialTokens,
        messages: prepared.slice(0, count),
        add_generation_prompt: false,
        ...(options.tools ? { tools: options.tools } : {}),
      });
    } catch (err) {
      throw unprocessable('chat_template_error', `the chat template failed on messages[0..${count - 1}]: ${(err as Error).message}`);
    }
  };
  const full = render(messages.length);
  const pieces: string[] = [];
  let start = 0;
  for (let i = 0; i < messages.length; i++) {
    const end = i === messages.length - 1 ? full.length : pieceEnd(render(i + 1), full, start, i);
    pieces.push(full.slice(start, end));
    start = end;
  }
  return pieces;
}
