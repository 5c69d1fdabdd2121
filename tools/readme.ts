/**
 * Regenerates the parts of README.md that the code decides, from real runs:
 *  - the "stable codes" table, from src/api/error-codes.ts;
 *  - the "Try it" examples: the /v1/score request of the README is sent to the embedded default
 *    pair (in-process, the server's default threads) and its answer written below it with every
 *    number to SIGNIFICANT digits (the last digits of a float32 forward pass vary with the thread
 *    count); the /v1/rank sentence's scores and best, from the same state.
 *
 *   npm run readme          # both, in place
 *   npm run readme -- --check   # exit 1 when README.md differs from what would be written
 *
 * test/docs/readme.test.ts checks the same parts against the code and a live server.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.js';
import { codesTable } from '../src/api/error-codes.js';
import { defaultConfig, validateConfig } from '../src/config.js';
import { ScorerPool } from '../src/pool.js';

export const SIGNIFICANT = 6;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const README = path.join(ROOT, 'README.md');

const CODES = /(<!-- codes:start[^>]*-->\n)[\s\S]*?(\n<!-- codes:end -->)/;
/** The curl heredoc of the /v1/score example, and the JSON block after it. */
const SCORE_EXAMPLE = /(curl -s http:\/\/127\.0\.0\.1:8080\/v1\/score [^\n]*<<'JSON'\n)([\s\S]*?)(\nJSON\n```\n\n```json\n)([^\n]*)(\n```)/;
const RANK_SENTENCE = /(`POST \/v1\/rank` \(`"candidates": )(\[.*?\])(`\)\ngives `"scores": )(\[[^\]]*\])(` and `"best": )(\d+)(`)/;

/** A number to `digits` significant digits, as JSON would print the rounded value. */
export function roundSignificant(x: number, digits = SIGNIFICANT): number {
  return Number.isInteger(x) ? x : Number(x.toPrecision(digits));
}

function roundDeep(value: unknown): unknown {
  if (typeof value === 'number') return roundSignificant(value);
  if (Array.isArray(value)) return value.map(roundDeep);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundDeep(v)]));
  return value;
}

export function scoreExample(readme: string): { request: Record<string, unknown>; shown: Record<string, unknown> } {
  const m = SCORE_EXAMPLE.exec(readme);
  if (!m) throw new Error('README.md: the /v1/score example (curl heredoc and its ```json block) was not found');
  return { request: JSON.parse(m[2]), shown: JSON.parse(m[4]) };
}

export function rankExample(readme: string): { candidates: string[]; scores: number[]; best: number } {
  const m = RANK_SENTENCE.exec(readme);
  if (!m) throw new Error('README.md: the /v1/rank sentence was not found');
  return { candidates: JSON.parse(m[2]), scores: JSON.parse(m[4]), best: Number(m[6]) };
}

/** Live answers of the embedded default pair to the README's two examples. */
export async function liveExamples(readme: string): Promise<{ score: Record<string, unknown>; rank: { scores: number[]; best: number } }> {
  const config = validateConfig({ ...defaultConfig(), log_level: 'silent' });
  const pool = new ScorerPool(config);
  const app = buildApp(config, pool);
  try {
    await pool.load();
    const { request } = scoreExample(readme);
    const score = await app.inject({ method: 'POST', url: '/v1/score', payload: request });
    if (score.statusCode !== 200) throw new Error(`/v1/score answered ${score.statusCode}: ${score.body}`);
    const rank = await app.inject({ method: 'POST', url: '/v1/rank', payload: { prompt: request.prompt, candidates: rankExample(readme).candidates } });
    if (rank.statusCode !== 200) throw new Error(`/v1/rank answered ${rank.statusCode}: ${rank.body}`);
    return { score: score.json(), rank: rank.json() };
  } finally {
    await app.close();
    await pool.close();
  }
}

export async function regenerate(readme: string): Promise<string> {
  let out = readme.replace(CODES, (_all, start: string, end: string) => `${start}${codesTable()}${end}`);
  if (out === readme && !CODES.test(readme)) throw new Error('README.md: the <!-- codes:start --> … <!-- codes:end --> markers were not found');
  const live = await liveExamples(out);
  out = out.replace(SCORE_EXAMPLE, (_all, a: string, req: string, b: string, _json: string, c: string) => `${a}${req}${b}${JSON.stringify(roundDeep(live.score))}${c}`);
  const fixed4 = (x: number) => x.toFixed(4);
  out = out.replace(
    RANK_SENTENCE,
    (_all, a: string, cands: string, b: string, _s: string, c: string, _best: string, d: string) =>
      `${a}${cands}${b}[${live.rank.scores.map(fixed4).join(', ')}]${c}${live.rank.best}${d}`,
  );
  return out;
}

const invokedDirectly = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const before = fs.readFileSync(README, 'utf8');
  const after = await regenerate(before);
  if (process.argv.includes('--check')) {
    if (after !== before) {
      process.stderr.write('README.md is out of date: run npm run readme\n');
      process.exit(1);
    }
    process.stdout.write('README.md is up to date\n');
  } else {
    fs.writeFileSync(README, after);
    process.stdout.write(after === before ? 'README.md unchanged\n' : 'wrote README.md\n');
  }
}
