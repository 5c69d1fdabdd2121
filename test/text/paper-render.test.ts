/**
 * Renderer parity (issue 11, design §2): `render: "plain"` equals, byte for byte, an independent
 * rendering written from the paper's rules in Python (fixtures/paper_render.py, standard library
 * only, run by /usr/bin/python3 so that str() of the arguments is Python's own), for every τ-bench
 * trajectory and Who&When case in ../shared/real/data and for edge cases. The service side goes
 * through the whole compile path (adapter → pieces), as /v1/tokenize shows it.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeIf } from '../helpers/shared.js';
import { readTrajectoryFile } from '../../src/text/adapters.js';
import { compileTrajectoryDetailed } from '../../src/text/compile.js';
import { renderPlain } from '../../src/text/render.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { resolveTrajectoryInput } from '../../src/pipeline/trajectory.js';
import { DATA, DIRS, SKIP_REAL, readJson } from './real-files.js';

const SCRIPT = path.join(__dirname, 'fixtures', 'paper_render.py');
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function paper(input: { messages?: unknown[]; who_and_when?: unknown[] } | string): { messages: string[][]; who_and_when: string[][] } {
  const text = typeof input === 'string' ? input : JSON.stringify(input);
  return JSON.parse(execFileSync(PYTHON, [SCRIPT], { input: text, maxBuffer: 256 * 1024 * 1024 }).toString('utf8'));
}

/** The edge cases: JSON-string arguments carry what JSON.parse would lose (1.0, big ints, key order). */
const EDGE: any[][] = [
  [
    { role: 'user', content: 'quotes' },
    {
      role: 'assistant',
      content: 'mixed',
      tool_calls: [
        { function: { name: 'q', arguments: JSON.stringify({ single: "it's", double: 'say "hi"', both: `it's "x"`, none: 'plain', back: 'a\\b' }) } },
        { function: { name: 'esc', arguments: '{"tab": "a\\tb", "nl": "x\\ny", "cr": "\\r", "ctl": "\\u0001\\u007f", "nbsp": "\\u00a0", "zw": "\\u200b", "ls": "\\u2028", "emoji": "😀", "accent": "é", "cjk": "日本", "lone": "\\ud800"}' } },
      ],
    },
    {
      role: 'assistant',
      content: null,
      tool_calls: [
        { function: { name: 'nested', arguments: '{"a": [1, [2, {"b": [true, false, null]}], {}], "c": {"d": {"e": []}}}' } },
        { function: { name: 'numbers', arguments: '{"one": 1.0, "big": 12345678901234567890, "neg0": -0.0, "int0": -0, "f": 0.1, "e16": 1e16, "e15": 1e15, "small": 0.0001, "smaller": 0.00001, "exp": 1.5e-7, "huge": 1e400, "nan": NaN, "inf": -Infinity, "pi": 3.141592653589793, "third": 0.3333333333333333, "e": 2.5E+3}' } },
        { function: { name: 'order', arguments: '{"b": 1, "2": 2, "1": 3, "b": 4}' } },
        { function: { name: 'not_json', arguments: '{oops' } },
        { function: { name: 'list_args', arguments: '[1, "x"]' } },
        { function: { name: 'string_args', arguments: '"just a string"' } },
        { function: { name: 'empty', arguments: '{}' } },
      ],
    },
    { role: 'assistant', content: '' },
    { role: 'assistant', content: '   \n\t ' },
    { role: 'assistant', content: null, tool_calls: [{ id: 't2', name: 'tau2_shape', arguments: { user_id: 'u1', flags: [true, false], note: null, ratio: 0.25, n: 3 } }] },
    { role: 'assistant', content: '\u00a0 padded \u3000\n', tool_calls: [{ function: { name: 'only', arguments: { k: 'v' } } }] },
    { role: 'tool', content: '  raw tool output \n' },
    { role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two' }] },
    { role: 'system', content: null },
  ],
  [{ role: 'assistant', content: null, tool_calls: [{ function: { name: 'first', arguments: '{"x": "\'"}' } }] }],
];

describeIf(!SKIP_REAL)('plain rendering equals the paper\'s rules, written independently in Python', async () => {
  const tok = await loadTokenizer(DIRS.gridworld);
  const limits = { maxLength: 1 << 30, vocabSize: tok.vocabSize, truncate: true };

  /** The service's pieces for a record, through the adapter and the compiler. */
  const servicePieces = (format: string, data: unknown) => {
    const { input } = resolveTrajectoryInput({ format: format as any, data });
    return compileTrajectoryDetailed(input, tok, limits).pieces.map((p) => p.text);
  };

  it('every τ-bench trajectory', () => {
    const records = readJson(path.join(DATA, 'tau-bench', 'gpt-4o-airline.trial0.tasks0-19.json'));
    expect(records).toHaveLength(20);
    const expected = paper({ messages: records.map((r: any) => r.traj) }).messages;
    records.forEach((r: any, i: number) => expect(servicePieces('tau_bench', r)).toEqual(expected[i]));
    // The data has tool calls in most trajectories: the str() rule is exercised.
    expect(expected.flat().filter((p) => p.includes('tool_call(')).length).toBeGreaterThan(100);
  });

  it('every Who&When case: [role] from the record, its name reported as the agent', () => {
    const all = readTrajectoryFile(path.join(DATA, 'who-and-when'), 'who_and_when');
    expect(all).toHaveLength(50);
    const raws = all.map(({ id }) => readJson(path.join(DATA, 'who-and-when', `${id}.json`)));
    const expected = paper({ who_and_when: raws }).who_and_when;
    raws.forEach((r, i) => {
      expect(servicePieces('who_and_when', r)).toEqual(expected[i]);
      const { input } = resolveTrajectoryInput({ format: 'who_and_when', data: r });
      const agents = compileTrajectoryDetailed(input, tok, limits).pieces.filter((p) => p.scored).map((p) => p.agent);
      const named = r.history.filter((h: any, k: number) => h.content !== '' && !(k === 0 && h.role === 'human')).map((h: any) => h.name ?? h.role);
      expect(agents).toEqual(named);
    });
  });

  it('edge cases: quotes, escapes, nested values, booleans, null, numbers, empty and tool-call-only turns', () => {
    const expected = paper({ messages: EDGE }).messages;
    EDGE.forEach((messages, i) => expect(renderPlain(messages)).toEqual(expected[i]));
    // A few of them written out, to see the rules at work.
    expect(expected[0][3]).toBe('\n[assistant]: [assistant action]');
    expect(expected[0][2]).toContain("tool_call(numbers, {'one': 1.0, 'big': 12345678901234567890, 'neg0': -0.0, 'int0': 0,");
    expect(expected[0][2]).toContain("tool_call(order, {'b': 4, '2': 2, '1': 3})");
    expect(expected[1][0]).toBe(`[assistant]: tool_call(first, {'x': "'"})`);
  });

  it('arguments objects read from a file keep what json.loads keeps (1.0, big integers, key order)', () => {
    const messages =
      '[{"role": "user", "content": "go"}, {"role": "assistant", "content": null, "tool_calls": [{"name": "f", ' +
      '"arguments": {"x": 1.0, "big": 12345678901234567890, "2": "a", "1": "b", "e": 1e2, "deep": {"arguments": {"y": 2.50}}}}]}]';
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'paper-render-')), 'one.json');
    fs.writeFileSync(file, messages);
    try {
      const [{ trajectory }] = readTrajectoryFile(file, 'messages');
      const expected = paper(`{"messages": [${messages}]}`).messages[0];
      expect(renderPlain(trajectory.messages)).toEqual(expected);
      expect(expected[1]).toContain("'x': 1.0, 'big': 12345678901234567890, '2': 'a', '1': 'b', 'e': 100.0");
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});
