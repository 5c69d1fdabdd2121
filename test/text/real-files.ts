/**
 * Paths of the third-party tokenizers and data sets in ../shared/real (see its README), and
 * readers for them. Tests read them in place; nothing is copied into the repo.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** /work/shared/real, found next to the checkout (../shared/real) or at its absolute home. */
export const REAL = [path.join(ROOT, '..', 'shared', 'real'), '/work/shared/real'].find((p) => fs.existsSync(p)) ?? '/work/shared/real';

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
export const IN_CI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
export const HAVE_REAL = fs.existsSync(REAL);
export const SKIP_REAL = !HAVE_REAL && !IN_CI;
if (SKIP_REAL) console.warn(`skipping tests that need ${REAL} (third-party models and data; see its README): not found`);
