/**
 * Flags + environment + config file → one validated Config.
 * Precedence: command-line flag > PA_* environment variable > config file > default.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import YAML from 'yaml';
import { MERGE_METHODS, mergeProblem } from './engine/merge-spec.js';

/** The package root (works from src/ under tsx and from dist/src/ when compiled). */
export const PACKAGE_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

export const DEFAULT_POLICY_DIR = path.join(PACKAGE_ROOT, 'models', 'gridworld-policy');
export const DEFAULT_REFERENCE_DIR = path.join(PACKAGE_ROOT, 'models', 'gridworld-reference');
/** The second embedded pair: distilled to the exact KL-regularized optimum (tools/train-tiny-pair/distill.py). */
export const EXACT_POLICY_DIR = path.join(PACKAGE_ROOT, 'models', 'gridworld-exact-policy');
export const EXACT_REFERENCE_DIR = path.join(PACKAGE_ROOT, 'models', 'gridworld-exact-reference');

const Device = Type.String({ pattern: '^(cpu|auto|cuda(:[0-9]+)?)$' });

/** pino's levels, as --log-level / PA_LOG_LEVEL / log_level accept them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const ScorerConfigSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
    policy: Type.String({ minLength: 1 }),
    reference: Type.String({ minLength: 1 }),
    tokenizer: Type.Optional(Type.String({ minLength: 1 })),
    beta: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    device: Type.Optional(Device),
    max_length: Type.Optional(Type.Integer({ minimum: 2 })),
    /** Default tokenization profile of this scorer's requests (design §2): paper (default) or joint. */
    tokenization: Type.Optional(Type.Union([Type.Literal('paper'), Type.Literal('joint')])),
    /** Serve a merge π_α of the policy and the reference as the reference (engine/merge.ts). */
    reference_merge: Type.Optional(
      Type.Object(
        {
          method: Type.Union(MERGE_METHODS.map((m) => Type.Literal(m))),
          alpha: Type.Number({ minimum: 0, maximum: 1 }),
          density: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
          seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type ScorerConfig = Static<typeof ScorerConfigSchema>;

export const ConfigSchema = Type.Object(
  {
    host: Type.String(),
    port: Type.Integer({ minimum: 0, maximum: 65535 }),
    device: Device,
    threads: Type.Integer({ minimum: 1, maximum: 256 }),
    max_batch_tokens: Type.Integer({ minimum: 16 }),
    max_batch_rows: Type.Integer({ minimum: 1 }),
    max_batch_logits: Type.Integer({ minimum: 1024 }),
    drain_timeout_ms: Type.Integer({ minimum: 0 }),
    max_queue: Type.Integer({ minimum: 1 }),
    max_wait_ms: Type.Number({ minimum: 0 }),
    max_inflight_batches: Type.Integer({ minimum: 1, maximum: 8 }),
    /** Prefix KV cache per scorer in MiB (both roles together); 0 turns all reuse off. */
    prefix_cache_mb: Type.Number({ minimum: 0 }),
    max_items: Type.Integer({ minimum: 1 }),
    body_limit: Type.Integer({ minimum: 1024 }),
    log_level: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l))),
    api_key: Type.Optional(Type.String({ minLength: 1 })),
    /** A file holding the API key (a mounted secret); read once at start-up into api_key. */
    api_key_file: Type.Optional(Type.String({ minLength: 1 })),
    /** Require the API key on /metrics too (default: /metrics is open, like /health and /ready). */
    auth_metrics: Type.Optional(Type.Boolean()),
    scorers: Type.Array(ScorerConfigSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);
export type Config = Static<typeof ConfigSchema>;

/** Per-session intra-op threads: policy and reference run side by side, so each gets half. */
export function defaultThreads(): number {
  return Math.max(1, Math.floor(os.availableParallelism() / 2));
}

export function defaultConfig(): Config {
  return {
    host: '127.0.0.1',
    port: 8080,
    device: 'cpu',
    threads: defaultThreads(),
    // Measured best on CPU (bench/RESULTS.md, levers): the exports build [rows, heads, S, S] attention
    // scores, so big batches of long rows cost memory and buy no speed; rows longer than this still run alone.
    max_batch_tokens: 1024,
    max_batch_rows: 64,
    // Scored tokens × vocabulary per batch: bounds the scoring head's memory at any vocabulary.
    max_batch_logits: 2 ** 25,
    // SIGTERM: finish accepted work for at most this long (Kubernetes waits 30 s before SIGKILL).
    drain_timeout_ms: 25_000,
    max_queue: 1024,
    max_wait_ms: 0,
    max_inflight_batches: 2,
    prefix_cache_mb: 512,
    max_items: 256,
    body_limit: 8 * 1024 * 1024,
    log_level: 'info',
    scorers: [
      { name: 'default', policy: DEFAULT_POLICY_DIR, reference: DEFAULT_REFERENCE_DIR },
      { name: 'exact', policy: EXACT_POLICY_DIR, reference: EXACT_REFERENCE_DIR },
    ],
  };
}

export class ConfigError extends Error {}

/** Reads a YAML or JSON config file; relative model paths resolve against the file's folder. */
export function readConfigFile(file: string): Partial<Config> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read config file (${(err as Error).message})`);
  }
  let data: any;
  try {
    data = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'} (${(err as Error).message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`${file}: the config must be a mapping`);
  }
  const base = path.dirname(path.resolve(file));
  if (typeof data.api_key_file === 'string') data.api_key_file = path.resolve(base, data.api_key_file);
  if (Array.isArray(data.scorers)) {
    data.scorers = data.scorers.map((s: any) => {
      if (typeof s !== 'object' || s === null) return s;
      const out = { ...s };
      for (const key of ['policy', 'reference', 'tokenizer']) {
        if (typeof out[key] === 'string') out[key] = path.resolve(base, out[key]);
      }
      return out;
    });
  }
  return data;
}

/** Validates a complete config; the message lists every problem with its path. */
export function validateConfig(candidate: unknown): Config {
  if (!Value.Check(ConfigSchema, candidate)) {
    const problems = [...Value.Errors(ConfigSchema, candidate)].slice(0, 10).map((e) => {
      // A union of literals (log_level) lists its values instead of "Expected union value".
      const choices = (e.schema as { anyOf?: { const?: unknown }[] }).anyOf?.map((s) => s.const);
      const message = choices && choices.every((c) => typeof c === 'string') ? `must be one of ${choices.join(', ')}` : e.message;
      return `${e.path || '/'}: ${message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const names = new Set<string>();
  for (const s of candidate.scorers) {
    if (names.has(s.name)) throw new ConfigError(`invalid configuration: scorer name "${s.name}" appears twice`);
    const mergeIssue = s.reference_merge && mergeProblem(s.reference_merge);
    if (mergeIssue) throw new ConfigError(`invalid configuration: scorer "${s.name}" reference_merge: ${mergeIssue}`);
    names.add(s.name);
  }
  return candidate;
}

/**
 * Reads `api_key_file` into `api_key` (trailing newline dropped, as secrets files usually end in one).
 * A key given both ways is ambiguous, so it is an error rather than a silent choice.
 */
export function resolveApiKey(config: Config): Config {
  if (config.api_key_file === undefined) return config;
  if (config.api_key !== undefined) {
    throw new ConfigError('invalid configuration: /api_key and /api_key_file are both set; give the key one way');
  }
  let key: string;
  try {
    key = fs.readFileSync(config.api_key_file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError(`invalid configuration: /api_key_file: cannot read ${config.api_key_file} (${(err as Error).message})`);
  }
  if (key.length === 0 || /[\r\n]/.test(key)) {
    throw new ConfigError(`invalid configuration: /api_key_file: ${config.api_key_file} must hold one non-empty line`);
  }
  return { ...config, api_key: key };
}

/** The config with secrets replaced, for the start-up log line; no api_key key at all when none is set. */
export function redactConfig(config: Config): Record<string, unknown> {
  const { api_key: key, ...rest } = config;
  return key === undefined ? rest : { ...rest, api_key: '[redacted]' };
}
