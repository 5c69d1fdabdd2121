/**
 * Paths of the third-party tokenizers and data sets in ../shared/real (see its README), and
 * readers for them. Tests read them in place; nothing is copied into the repo.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { inCi, needShared, SHARED_REAL } from '../helpers/shared.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** ../shared/real next to the checkout; tests check for what they read with needShared (test/helpers/shared.ts). */
export const REAL = SHARED_REAL;

export const DIRS = {
  llama: path.join(REAL, 'models', 'tiny-random-LlamaForCausalLM-fp16'),
  tinyGpt2: path.join(REAL, 'models', 'tiny-random-gpt2-fp32'),
  gpt2: path.join(REAL, 'tokenizers', 'gpt2'),
  qwen25: path.join(REAL, 'tokenizers', 'qwen2.5'),
  qwen3: path.join(REAL, 'tokenizers', 'qwen3'),
  gridworld: path.join(ROOT, 'models', 'gridworld-policy'),
};

export const DATA = path.join(REAL, 'data');

export function readJson(file: string): any {
  const raw = fs.readFileSync(file);
  return JSON.parse((file.endsWith('.gz') ? zlib.gunzipSync(raw) : raw).toString('utf8'));
}

/** Tests that need ../shared/real: outside CI they skip (saying what is missing); under CI=true they run, and fail without it. */
export const IN_CI = inCi();
export const HAVE_REAL = fs.existsSync(REAL);
/** The one rule (test/helpers/shared.ts): skip with a line naming what is missing; under CI=true, fail. */
export const SKIP_REAL = !needShared(import.meta.url, [REAL]);
