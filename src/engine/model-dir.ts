/**
 * Finds the ONNX file, external weights and size facts in a model directory laid out the way
 * the hub, optimum and onnxruntime-genai lay them out. Read-only: never writes into the user's
 * model directory.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ModelDir {
  dir: string;
  /** Absolute path of the ONNX graph. */
  onnxFile: string;
  /** From config.json / genai_config.json when present. */
  vocabSize: number | null;
  maxPositions: number | null;
  /** Where maxPositions was read, e.g. "config.json max_position_embeddings". */
  maxPositionsFrom: string | null;
  /** config.json `kl_beta`: the β the policy was trained with. */
  klBeta: number | null;
}

const ONNX_CANDIDATES = [
  // A with-past export next to a plain one is preferred: it is what the prefix cache runs.
  'decoder_with_past_model.onnx',
  'model.onnx',
  'onnx/model.onnx',
  'decoder_model_merged.onnx',
  'onnx/decoder_model_merged.onnx',
  'decoder_model.onnx',
  'onnx/decoder_model.onnx',
  'past.onnx',
];

export class ModelDirError extends Error {}

function readJson(file: string): Record<string, any> | null {
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelDirError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

function positiveInt(...values: unknown[]): number | null {
  for (const v of values) if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  return null;
}

/** The first positive integer among `file key` candidates, with where it was found. */
function firstPositive(candidates: [string, unknown][]): { value: number | null; from: string | null } {
  for (const [from, v] of candidates) if (typeof v === 'number' && Number.isInteger(v) && v > 0) return { value: v, from };
  return { value: null, from: null };
}

export function resolveModelDir(dirArg: string): ModelDir {
  const dir = path.resolve(dirArg);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new ModelDirError(`${dir}: model directory not found`);
  }
  const config = readJson(path.join(dir, 'config.json')) ?? {};
  const genai = readJson(path.join(dir, 'genai_config.json'))?.model ?? {};
  const candidates = [genai.decoder?.filename, ...ONNX_CANDIDATES].filter((f): f is string => typeof f === 'string');
  const found = candidates.map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  if (!found) {
    throw new ModelDirError(`${dir}: no ONNX model found (looked for ${ONNX_CANDIDATES.join(', ')})`);
  }
  const klBeta = typeof config.kl_beta === 'number' && config.kl_beta > 0 ? config.kl_beta : null;
  const positions = firstPositive([
    ['config.json max_position_embeddings', config.max_position_embeddings],
    ['config.json n_positions', config.n_positions],
    ['config.json n_ctx', config.n_ctx],
    ['config.json max_sequence_length', config.max_sequence_length],
    ['genai_config.json context_length', genai.context_length],
  ]);
  return {
    dir,
    onnxFile: found,
    vocabSize: positiveInt(config.vocab_size, genai.vocab_size),
    maxPositions: positions.value,
    maxPositionsFrom: positions.from,
    klBeta,
  };
}

/**
 * The reference a policy's config.json names in `reference_model` (as the trainer's model cards
 * do): `named` is the value, `dir` the first existing directory it names, tried as a path inside
 * the policy directory and then beside it (absolute paths as they are); both null without the key.
 */
export function referenceFromPolicyCard(policyDir: string): { named: string | null; dir: string | null } {
  const dir = path.resolve(policyDir);
  const named = readJson(path.join(dir, 'config.json'))?.reference_model;
  if (typeof named !== 'string' || named.length === 0) return { named: null, dir: null };
  const candidates = path.isAbsolute(named) ? [named] : [path.join(dir, named), path.join(path.dirname(dir), named)];
  const found = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isDirectory());
  return { named, dir: found ?? null };
}
