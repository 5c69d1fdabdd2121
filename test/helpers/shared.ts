/**
 * The third-party artifacts in ../shared/real (real ONNX exports, tokenizers, agent data sets),
 * beside the checkout as in CI. Tests that read them ask `needShared(import.meta.url, ...paths)`
 * first and skip their suites when it answers false:
 *
 * - everything there: true;
 * - something missing outside CI: false, and one warning line naming the test file and each
 *   missing path (a fresh clone without ../shared runs the rest of the suite and passes);
 * - something missing under CI=true: it throws, so the file fails, naming what is missing.
 */
import fs from 'node:fs';
import { describe, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** ../shared/real next to the checkout. */
export const SHARED_REAL = path.join(ROOT, '..', 'shared', 'real');

/** A path inside ../shared/real. */
export function sharedPath(...parts: string[]): string {
  return path.join(SHARED_REAL, ...parts);
}

export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0';
}

/** True when every path exists; see the module comment for the missing case. */
export function needShared(caller: string, paths: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const missing = paths.filter((p) => !fs.existsSync(p));
  if (missing.length === 0) return true;
  const file = path.relative(ROOT, caller.startsWith('file:') ? fileURLToPath(caller) : caller);
  const names = missing.map((p) => path.relative(ROOT, p)).join(', ');
  if (inCi(env)) throw new Error(`${file}: CI=true but ${names} is missing: CI runs with ../shared beside the checkout`);
  console.warn(`${file}: skipping the tests that need ${names} (not found; ../shared/real sits beside the checkout in CI, where they run)`);
  return false;
}

/**
 * `describe` when `have`, else a describe that registers one skipped test and never runs the
 * suite's body: vitest runs the body of a `describe.skipIf(true)` suite to collect its tests, and a
 * body that reads ../shared at collection time would fail. Supports `.each(rows)`.
 */
export function describeIf(have: boolean): typeof describe {
  if (have) return describe;
  const skipped = (name: unknown) =>
    describe.skip(String(name), () => {
      it.skip('needs ../shared/real (see the warning line above)', () => {});
    });
  return Object.assign(skipped, { each: () => skipped }) as unknown as typeof describe;
}
