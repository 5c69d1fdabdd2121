/**
 * The plain renderer (design §2): "[role]: content", "\n" before every message but the first,
 * tool calls as `tool_call(name, {args})` lines, `name` as the label for speaking agents.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/errors.js';
import type { Message } from '../../src/text/messages.js';
import { formatToolCall, renderPlain } from '../../src/text/render.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { DIRS, readJson } from './real-files.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function errorOf(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ServiceError) return err;
    throw err;
  }
  throw new Error('expected a ServiceError');
}

describe('renderPlain', () => {
  it('keeps the gridworld format exactly', () => {
    const messages: Message[] = [
      { role: 'user', content: 'map :\n. S\ngoal 0 1' },
      { role: 'assistant', content: 'up' },
      { role: 'env', content: 'hit a wall' },
    ];
    expect(renderPlain(messages)).toEqual(['[user]: map :\n. S\ngoal 0 1', '\n[assistant]: up', '\n[env]: hit a wall']);
  });

  it('gives the trainer\'s ids for the fixture episode (BOS + each message encoded separately)', async () => {
    const fixture = readJson(path.join(ROOT, 'tools', 'train-tiny-pair', 'tokenizer-fixture.json'));
    const tok = await loadTokenizer(DIRS.gridworld);
    const ids = [tok.bosId!, ...renderPlain(fixture.messages.messages).flatMap((t) => tok.encode(t))];
    expect(ids).toEqual(fixture.messages.ids_with_bos);
  });

  it('labels a message by its role (the paper); label "name" uses the speaker name, but a tool result keeps its role', () => {
    const messages: Message[] = [
      { role: 'user', content: 'Q' },
      { role: 'assistant', name: 'Orchestrator', content: 'plan' },
      { role: 'user', name: 'Computer_terminal', content: 'exitcode: 0' },
      { role: 'tool', name: 'get_user_details', tool_call_id: 'c1', content: '{}' },
    ];
    expect(renderPlain(messages)).toEqual(['[user]: Q', '\n[assistant]: plan', '\n[user]: exitcode: 0', '\n[tool]: {}']);
    expect(renderPlain(messages, 'name')).toEqual(['[user]: Q', '\n[Orchestrator]: plan', '\n[Computer_terminal]: exitcode: 0', '\n[tool]: {}']);
  });

  it('appends tool calls one per line with Python str() arguments, strips the body, and marks an empty turn', () => {
    const messages: Message[] = [
      { role: 'user', content: 'Hi' },
      {
        role: 'assistant',
        content: 'Let me look.  ',
        tool_calls: [
          { id: 'a', type: 'function', function: { name: 'get_user_details', arguments: '{"user_id": "mia_li_3668"}' } },
          { function: { name: 'search', arguments: { query: 'x', k: 3 } } },
        ],
      },
      { role: 'assistant', content: null, tool_calls: [{ function: { name: 'think', arguments: 'not json' } }] },
      { role: 'assistant', content: ' \n ' },
      { role: 'assistant', content: null, tool_calls: [{ name: 'calc', arguments: { a: true, b: null, c: [1.5, 'it\'s'] } }] },
      { role: 'user', content: '  kept as is  ' },
    ];
    // Written by hand from Python: str({'user_id': 'mia_li_3668'}), str({'query': 'x', 'k': 3}), ...
    expect(renderPlain(messages)).toEqual([
      '[user]: Hi',
      "\n[assistant]: Let me look.  \ntool_call(get_user_details, {'user_id': 'mia_li_3668'})\ntool_call(search, {'query': 'x', 'k': 3})",
      '\n[assistant]: tool_call(think, not json)',
      '\n[assistant]: [assistant action]',
      `\n[assistant]: tool_call(calc, {'a': True, 'b': None, 'c': [1.5, "it's"]})`,
      '\n[user]:   kept as is  ',
    ]);
    expect(formatToolCall({ function: { name: 'f', arguments: '{}' } })).toBe('tool_call(f, {})');
  });

  it('joins text parts and refuses other content parts', () => {
    const parts: Message = { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] };
    expect(renderPlain([parts])).toEqual(['[user]: a\nb']);
    const image = { role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] } as unknown as Message;
    const err = errorOf(() => renderPlain([image]));
    expect([err.status, err.code]).toEqual([422, 'unsupported_content']);
  });
});
