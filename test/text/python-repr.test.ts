/**
 * Python's repr() of floats and strings (python-repr.ts) against /usr/bin/python3 itself, on
 * seeded random values: any bit pattern of a double, short decimals at every exponent, and
 * strings drawn from control characters, Latin, Greek/Cyrillic, punctuation and spaces, CJK,
 * private use, lone surrogates and emoji (ranges assigned in every Unicode version Python 3 ships).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/scoring/evaluation.js';
import { parsePythonJson, pythonFloat, pythonRepr, pythonStrRepr } from '../../src/text/python-repr.js';

const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const RANGES: [number, number][] = [[0x00, 0x2ff], [0x370, 0x52f], [0x2000, 0x206f], [0x3000, 0x30ff], [0x4e00, 0x9ffc], [0xe000, 0xe0ff], [0xd800, 0xdfff], [0x1f600, 0x1f64f]];

describe('Python repr, compared with Python', () => {
  it('floats and strings', () => {
    const rand = seededRandom(20261201);
    const view = new DataView(new ArrayBuffer(8));
    const floats: number[] = [0, -0, 1, -1.5, 1e16, 1e15, 1e-4, 1e-5, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3, 123456789012345680000];
    while (floats.length < 3000) {
      if (rand() < 0.5) {
        for (let b = 0; b < 8; b++) view.setUint8(b, Math.floor(rand() * 256));
        const v = view.getFloat64(0);
        if (Number.isFinite(v)) floats.push(v);
      } else floats.push(Number((rand() * 10 ** (Math.floor(rand() * 44) - 22)).toPrecision(1 + Math.floor(rand() * 17))));
    }
    const strings: string[] = ["it's", 'say "hi"', `both ' and "`, '\\', '\t\n\r\x0b\x0c', '\x7f\x80\x9f\xa0\xad', '\u200b\u2028\u2029\ufeff'];
    while (strings.length < 2000) {
      let s = '';
      for (let k = Math.floor(rand() * 6); k > 0; k--) {
        const [lo, hi] = RANGES[Math.floor(rand() * RANGES.length)];
        s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
      }
      strings.push(s);
    }
    const hex = floats.map((x) => {
      view.setFloat64(0, x);
      return Array.from({ length: 8 }, (_, b) => view.getUint8(b).toString(16).padStart(2, '0')).join('');
    });
    const script = 'import json,sys,struct\nd=json.load(sys.stdin)\nprint(json.dumps([[repr(struct.unpack(">d", bytes.fromhex(h))[0]) for h in d["f"]], [repr(s) for s in d["s"]]]))';
    const [pyFloats, pyStrings] = JSON.parse(execFileSync(PYTHON, ['-c', script], { input: JSON.stringify({ f: hex, s: strings }) }).toString('utf8'));
    expect(floats.map(pythonFloat)).toEqual(pyFloats);
    expect(strings.map(pythonStrRepr)).toEqual(pyStrings);
  });

  it('json.loads types and order; invalid JSON is refused', () => {
    expect(pythonRepr(parsePythonJson('{"a": [1, 2.0, -0, 1e400, NaN, "x"], "b": {"c": true, "d": null}, "a": false}'))).toBe(
      "{'a': False, 'b': {'c': True, 'd': None}}",
    );
    expect(pythonRepr(parsePythonJson('[1, 2.0, -0, -0.0, 1e400, -Infinity, NaN, 99999999999999999999]'))).toBe('[1, 2.0, 0, -0.0, inf, -inf, nan, 99999999999999999999]');
    for (const bad of ['{', '{"a" 1}', '[1,]', '01', '"\\x"', '{"a": 1} x', "{'a': 1}"]) expect(() => parsePythonJson(bad)).toThrow();
  });
});
