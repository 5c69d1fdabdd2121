/**
 * needShared (test/helpers/shared.ts), the guard of every test that reads ../shared/real:
 * present → true; missing outside CI → false with one warning naming the file and each missing
 * path; missing under CI=true → an error naming them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { describeIf, inCi, needShared, SHARED_REAL } from '../helpers/shared.js';

const ROOT = path.resolve(__dirname, '../..');

// vitest runs a skipped suite's body to collect it; describeIf(false) must not (it would read ../shared).
let bodyRan = false;
describeIf(false)('a suite that needs what is missing', () => {
  bodyRan = true;
});
describeIf(false).each([[1], [2]])('each row %s', () => {
  bodyRan = true;
});

describe('describeIf', () => {
  it('never runs the body of a suite whose files are missing', () => {
    expect(bodyRan).toBe(false);
  });
});

describe('needShared', () => {
  afterEach(() => vi.restoreAllMocks());
  const present = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-shared-'));
  const missing = path.join(SHARED_REAL, 'models', 'no-such-export');

  it('is ../shared/real beside the checkout', () => {
    expect(SHARED_REAL).toBe(path.join(path.dirname(ROOT), 'shared', 'real'));
  });

  it('all present: true, silently', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(needShared(import.meta.url, [present], {})).toBe(true);
    expect(warn).not.toHaveBeenCalled();
  });

  it('missing outside CI: false, and one line naming the test file and what is missing', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(needShared(import.meta.url, [present, missing], { CI: 'false' })).toBe(false);
    expect(warn).toHaveBeenCalledTimes(1);
    const line = String(warn.mock.calls[0][0]);
    expect(line).toContain('test/deploy/shared-helper.test.ts');
    expect(line).toContain(path.relative(ROOT, missing));
    expect(line).not.toContain('\n');
  });

  it('missing under CI=true: throws naming what is missing', () => {
    expect(() => needShared(import.meta.url, [missing], { CI: 'true' })).toThrow(path.relative(ROOT, missing));
    expect(inCi({ CI: '1' })).toBe(true);
    expect(inCi({ CI: 'false' })).toBe(false);
    expect(inCi({})).toBe(false);
  });
});
