/**
 * OpenAI-form chat messages, and the few facts about a message that rendering and step
 * selection need: its text, who spoke it, and whether it is a step (an agent's action).
 */
import { badRequest, unprocessable } from '../errors.js';

/** A tool call in OpenAI shape `{function: {name, arguments}}` or τ²-bench shape `{name, arguments}`. */
export interface ToolCall {
  id?: string;
  type?: string;
  function?: { name: string; arguments?: string | Record<string, unknown> };
  name?: string;
  arguments?: string | Record<string, unknown>;
  [extra: string]: unknown;
}

export function callName(call: ToolCall): string {
  return call.function ? call.function.name : call.name!;
}

export function callArguments(call: ToolCall): unknown {
  return call.function ? call.function.arguments : call.arguments;
}

export interface TextPart {
  type: 'text';
  text: string;
}

export interface Message {
  role: string;
  content?: string | null | TextPart[];
  /** The speaking agent (multi-agent logs, OpenAI `name`). On `tool`/`function` messages it names the function instead. */
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  /** Any other field is passed through to chat templates untouched (e.g. reasoning_content). */
  [extra: string]: unknown;
}

/** Roles whose `name` is the function that answered, not a speaker. */
const FUNCTION_RESULT_ROLES = new Set(['tool', 'function', 'ipython']);

/** The roles scored when a request names none (design §2). */
export const DEFAULT_ACTION_ROLES: readonly string[] = ['assistant'];

/** The agent that spoke the message, if it names one. */
export function speakerOf(message: Message): string | undefined {
  return message.name !== undefined && !FUNCTION_RESULT_ROLES.has(message.role) ? message.name : undefined;
}

/** A message is a step when its role or its speaker's name is one of the action roles. */
export function isStep(message: Message, actionRoles: readonly string[]): boolean {
  const speaker = speakerOf(message);
  return actionRoles.includes(message.role) || (speaker !== undefined && actionRoles.includes(speaker));
}

/**
 * The message's text. Text parts are joined with "\n" (as vLLM does for string-format templates);
 * null or absent content is "" (an assistant turn that only calls tools).
 */
export function contentText(message: Message, index: number): string {
  const c = message.content;
  if (c === null || c === undefined) return '';
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) throw badRequest('invalid_message', `messages[${index}].content must be a string, null or a list of parts`);
  return c
    .map((part, k) => {
      if (part && typeof part === 'object' && part.type === 'text' && typeof part.text === 'string') return part.text;
      throw unprocessable(
        'unsupported_content',
        `messages[${index}].content[${k}] is not a text part ({type:"text", text}); only text can be scored`,
      );
    })
    .join('\n');
}

/** Shape checks the HTTP schema may not have made (the compiler is also called offline). */
export function validateMessages(messages: unknown): asserts messages is Message[] {
  if (!Array.isArray(messages)) throw badRequest('invalid_message', 'messages must be a list');
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object' || Array.isArray(m)) throw badRequest('invalid_message', `messages[${i}] must be an object`);
    const msg = m as Message;
    if (typeof msg.role !== 'string' || msg.role === '') throw badRequest('invalid_message', `messages[${i}].role must be a non-empty string`);
    if (msg.name !== undefined && typeof msg.name !== 'string') throw badRequest('invalid_message', `messages[${i}].name must be a string`);
    if (msg.tool_calls !== undefined) {
      if (!Array.isArray(msg.tool_calls)) throw badRequest('invalid_message', `messages[${i}].tool_calls must be a list`);
      msg.tool_calls.forEach((call, k) => {
        const openai = call && typeof call === 'object' && call.function && typeof call.function === 'object' && typeof call.function.name === 'string';
        const tau2 = call && typeof call === 'object' && call.function === undefined && typeof call.name === 'string';
        if (!openai && !tau2) {
          throw badRequest('invalid_message', `messages[${i}].tool_calls[${k}] must be {function: {name, arguments}} or {name, arguments}`);
        }
      });
    }
    contentText(msg, i);
  });
}
