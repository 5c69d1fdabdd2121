/**
 * Messages → text segments, one per message, each to be encoded on its own (design §2).
 *
 * `plain` (the paper's format, the default), byte for byte what the paper's released code writes:
 *   message i  →  (i > 0 ? "\n" : "") + "[" + label + "]: " + body
 *   label      =  the message's role (`label: "name"`: the speaking agent's `name` where it has
 *                 one, else the role; on tool/function messages `name` is the called function, so
 *                 the label stays the role)
 *   body       =  assistant: (content + ("\n" + calls joined by "\n" if it has tool calls)) with
 *                 Python's str.strip(), or "[assistant action]" when that is empty;
 *                 any other role, and every message of a Who&When log (`verbatim`): its content as it is.
 *   a call     =  tool_call(NAME, ARGS), ARGS Python's str() of the arguments (python-repr.ts),
 *                 calls in OpenAI shape {function: {name, arguments}} or τ²-bench shape {name, arguments}.
 *   A step's segment therefore includes its "\n[assistant]: " prefix.
 *
 * `chat_template`: see chat-template.ts.
 */
import { callArguments, callName, contentText, speakerOf, type Message, type ToolCall } from './messages.js';
import { fromJs, parsePythonJson, PyJsonError, pythonStr, pythonStrip } from './python-repr.js';

export { renderChatTemplate } from './chat-template.js';

/** How a plain message is labelled: its role (the paper), or its speaker's name where it has one. */
export type PlainLabel = 'role' | 'name';

/** str() of a call's arguments: a JSON string as json.loads reads it (not JSON: the string itself). */
export function formatArguments(args: unknown): string {
  if (typeof args === 'string') {
    try {
      return pythonStr(parsePythonJson(args));
    } catch (err) {
      if (err instanceof PyJsonError) return args;
      throw err;
    }
  }
  return pythonStr(fromJs(args ?? {}));
}

/** `tool_call(get_user_details, {'user_id': 'mia_li_3668'})` */
export function formatToolCall(call: ToolCall): string {
  return `tool_call(${callName(call)}, ${formatArguments(callArguments(call))})`;
}

export function plainLabel(message: Message, label: PlainLabel = 'role'): string {
  return label === 'name' ? (speakerOf(message) ?? message.role) : message.role;
}

/** The body the paper writes for an assistant turn. */
function assistantBody(content: string, calls: readonly ToolCall[]): string {
  const text = calls.length > 0 ? `${content}\n${calls.map(formatToolCall).join('\n')}` : content;
  const body = pythonStrip(text);
  return body === '' ? '[assistant action]' : body;
}

/** The text of message `index` in the plain format, given its position in the conversation. */
export function renderPlainMessage(message: Message, index: number, label: PlainLabel = 'role', verbatim = false): string {
  const content = contentText(message, index);
  const body = message.role === 'assistant' && !verbatim ? assistantBody(content, message.tool_calls ?? []) : content;
  return `${index > 0 ? '\n' : ''}[${plainLabel(message, label)}]: ${body}`;
}

/** One segment per message, in order; concatenated they are the whole plain rendering. */
export function renderPlain(messages: readonly Message[], label: PlainLabel = 'role', verbatim = false): string[] {
  return messages.map((m, i) => renderPlainMessage(m, i, label, verbatim));
}
