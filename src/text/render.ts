/**
 * Messages → text segments, one per message, each to be encoded on its own (design §2).
 *
 * `plain` (the paper's format, the default):
 *   message i  →  (i > 0 ? "\n" : "") + "[" + label + "]: " + body
 *   label      =  the message's `name` when it has one (the speaking agent: Who&When's
 *                 "[Orchestrator]: ..." reads as who acted, which is what attribution reports),
 *                 else its role. On tool/function messages `name` is the called function, so
 *                 the label stays the role ("[tool]: ...").
 *   body       =  the content, then each tool call on its own line as
 *                 `tool_call(NAME, ARGS)` with ARGS compact JSON (a string that is JSON is
 *                 re-serialized compactly; one that is not is written as is).
 *                 With no content the first tool call follows the label directly.
 *   A step's segment therefore includes its "\n[assistant]: " prefix.
 *
 * `chat_template`: see chat-template.ts.
 */
import { contentText, speakerOf, type Message, type ToolCall } from './messages.js';

export { renderChatTemplate } from './chat-template.js';

function compactArguments(args: unknown): string {
  if (typeof args === 'string') {
    try {
      return JSON.stringify(JSON.parse(args));
    } catch {
      return args;
    }
  }
  return JSON.stringify(args ?? {});
}

/** `tool_call(get_user_details, {"user_id":"mia_li_3668"})` */
export function formatToolCall(call: ToolCall): string {
  return `tool_call(${call.function.name}, ${compactArguments(call.function.arguments)})`;
}

export function plainLabel(message: Message): string {
  return speakerOf(message) ?? message.role;
}

/** The text of message `index` in the plain format, given its position in the conversation. */
export function renderPlainMessage(message: Message, index: number): string {
  const content = contentText(message, index);
  const calls = (message.tool_calls ?? []).map(formatToolCall);
  const body = (content === '' ? calls : [content, ...calls]).join('\n');
  return `${index > 0 ? '\n' : ''}[${plainLabel(message)}]: ${body}`;
}

/** One segment per message, in order; concatenated they are the whole plain rendering. */
export function renderPlain(messages: readonly Message[]): string[] {
  return messages.map(renderPlainMessage);
}
