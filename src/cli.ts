#!/usr/bin/env node
/**
 * Entry point: `pa-server serve` (HTTP) and `pa-server config check FILE`.
 * Every serve flag is also an environment variable PA_<NAME> (e.g. PA_MAX_BATCH_TOKENS).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { buildApp } from './app.js';
import { ConfigError, defaultConfig, LOG_LEVELS, readConfigFile, redactConfig, resolveApiKey, validateConfig, type Config } from './config.js';
import { checkPairLayout } from './engine/layout-check.js';
import { referenceFromPolicyCard } from './engine/model-dir.js';
import { ServiceError } from './errors.js';
import { Metrics } from './metrics.js';
import { ScorerPool } from './pool.js';
import { addOfflineCommands } from './offline/commands.js';
import { parseMergeFlag } from './engine/merge-spec.js';

// Value parsers: a bad value is commander's one-line "option '--port <port>' argument 'abc' is
// invalid. …" (or "… value 'abc' from env 'PA_PORT' …") and exit 2, never a stack trace.
const int = (v: string) => {
  if (!/^[+-]?\d+$/.test(v.trim())) throw new InvalidArgumentError('Expected an integer.');
  return Number(v);
};
const num = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('Expected a number.');
  return n;
};

/** commander prints an InvalidArgumentError as one line; any other error escapes as a stack trace. */
const mergeFlag = (v: string) => {
  try {
    return parseMergeFlag(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const bool = (v: string) => {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new InvalidArgumentError('Expected true or false.');
};

/** Exit status of a command line that cannot be run as given (bad flag, bad value, bad config). */
export const USAGE_EXIT = 2;

/** Flag name → config key; each flag also reads PA_<FLAG_IN_CAPS>. */
const SERVE_FLAGS: [flag: string, key: keyof Config | null, description: string, parse?: (v: string) => unknown][] = [
  ['--policy <dir>', null, 'policy model directory (default: the embedded gridworld policy)'],
  ['--reference <dir>', null, 'reference model directory (default: the embedded gridworld reference)'],
  ['--tokenizer <dir>', null, 'tokenizer directory (default: the policy directory)'],
  ['--beta <number>', null, 'KL coefficient β (default: the policy config.json kl_beta, else 1)', num],
  ['--name <name>', null, 'scorer name (default: default)'],
  ['--reference-merge <spec>', null, 'serve a merge of policy and reference as the reference: METHOD:ALPHA[:DENSITY], METHOD linear, ties or dare_linear', mergeFlag],
  ['--reference-merge-seed <n>', null, 'seed of the dare_linear mask (default 0)', int],
  ['--tokenization <profile>', null, 'paper (default: BOS whenever the tokenizer names one, pieces encoded apart) or joint (as the tokenizer encodes the whole text)'],
  ['--device <device>', 'device', 'cpu, cuda, cuda:N or auto (auto falls back to cpu)'],
  ['--threads <n>', 'threads', 'intra-op threads per session (default: half the cores)', int],
  ['--host <host>', 'host', 'address to listen on (default 127.0.0.1)'],
  ['--port <port>', 'port', 'port to listen on (default 8080)', int],
  ['--max-batch-tokens <n>', 'max_batch_tokens', 'rows × padded length per forward batch (default 1024; a longer row runs alone)', int],
  ['--max-batch-rows <n>', 'max_batch_rows', 'rows per forward batch (default 64)', int],
  ['--max-batch-logits <n>', 'max_batch_logits', 'scored tokens × vocabulary per forward batch; bounds the head\'s memory (default 33554432)', int],
  ['--prefix-cache-mb <mib>', 'prefix_cache_mb', 'memory bound of the prefix KV cache per scorer in MiB (half for blocks), with-past exports only (default 512; 0: no reuse)', num],
  ['--max-queue <n>', 'max_queue', 'queued rows before 429 (default 1024)', int],
  ['--drain-timeout-ms <ms>', 'drain_timeout_ms', 'on SIGTERM, wait this long for queued requests; then answer the rest 503 and exit 1 (default 25000)', int],
  ['--max-wait-ms <ms>', 'max_wait_ms', 'wait this long for a fuller batch (default 0: no timer)', num],
  ['--max-items <n>', 'max_items', 'items per request (default 256)', int],
  ['--body-limit <bytes>', 'body_limit', 'request body limit in bytes (default 8 MiB)', int],
  ['--log-level <level>', 'log_level', `${LOG_LEVELS.join(', ')} (default info)`],
  ['--api-key <key>', 'api_key', 'require "Authorization: Bearer <key>" on /v1/* and /score; the /ui page loads without it and asks for the key (prefer --api-key-file: flags show in ps)'],
  ['--api-key-file <file>', 'api_key_file', 'file holding the API key (e.g. a mounted secret)'],
  ['--auth-metrics [bool]', 'auth_metrics', 'require the API key on /metrics too (default false)', bool],
  ['--config <file>', null, 'YAML or JSON config file with several named scorers'],
];

function envName(flag: string): string {
  return 'PA_' + flag.replace(/^--/, '').split(' ')[0].replace(/-/g, '_').toUpperCase();
}

function optionKey(flag: string): string {
  return flag
    .replace(/^--/, '')
    .split(' ')[0]
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** --reference-merge / --reference-merge-seed as a scorer's reference_merge (over the config file's). */
function mergeFromOptions(opts: Record<string, unknown>, given: Given, fromFile?: Record<string, unknown>): Record<string, unknown> {
  if (!given('referenceMerge') && !given('referenceMergeSeed')) return {};
  if (!given('referenceMerge') && !fromFile) throw new ConfigError('--reference-merge-seed needs --reference-merge dare_linear:ALPHA:DENSITY');
  const merge = { ...(given('referenceMerge') ? (opts.referenceMerge as object) : fromFile) } as Record<string, unknown>;
  if (given('referenceMergeSeed')) merge.seed = opts.referenceMergeSeed;
  return { reference_merge: merge };
}

/** How a value was given: a flag or a PA_* variable; false when not given. */
export type Given = (key: string) => boolean | 'cli' | 'env';

/** `--policy` or `PA_POLICY`, as the user wrote it. */
function named(key: 'policy' | 'reference', given: Given): string {
  return given(key) === 'env' ? `PA_${key.toUpperCase()}` : `--${key}`;
}

/** defaults < config file < environment < flags. */
export function configFromOptions(opts: Record<string, unknown>, given: Given): Config {
  const config: Record<string, unknown> = { ...defaultConfig() };
  if (typeof opts.config === 'string') Object.assign(config, readConfigFile(opts.config));
  for (const [flag, key] of SERVE_FLAGS) {
    const k = optionKey(flag);
    if (key && given(k)) config[key] = opts[k];
  }
  if (given('policy') || given('reference')) {
    let reference = opts.reference as string | undefined;
    if (!given('reference')) {
      // The policy's card may name its reference (config.json reference_model).
      if (!fs.existsSync(String(opts.policy))) throw new ConfigError(`${named('policy', given)} ${path.resolve(String(opts.policy))}: model directory not found`);
      const card = referenceFromPolicyCard(opts.policy as string);
      if (card.dir) reference = card.dir;
      else if (card.named) {
        throw new ConfigError(
          `${named('policy', given)} ${opts.policy} names reference_model "${card.named}" in its config.json, but no such directory is inside or beside it; ` +
            'give the reference with --reference DIR or PA_REFERENCE',
        );
      } else {
        throw new ConfigError(
          `${named('policy', given)} is set but --reference / PA_REFERENCE is not, and ${path.join(String(opts.policy), 'config.json')} names no reference_model; ` +
            'give both, or neither for the embedded default pair',
        );
      }
    }
    if (!given('policy')) {
      throw new ConfigError(`${named('reference', given)} is set but --policy / PA_POLICY is not; give both, or neither for the embedded default pair`);
    }
    config.scorers = [
      {
        name: (opts.name as string) ?? 'default',
        policy: opts.policy,
        reference,
        ...(opts.tokenizer ? { tokenizer: opts.tokenizer } : {}),
        ...(opts.beta !== undefined ? { beta: opts.beta } : {}),
        ...(given('tokenization') ? { tokenization: opts.tokenization } : {}),
        ...mergeFromOptions(opts, given),
      },
    ];
  } else if (given('beta') || given('name') || given('tokenizer') || given('tokenization') || given('referenceMerge') || given('referenceMergeSeed')) {
    const scorers = config.scorers as Record<string, unknown>[];
    // Without a config file they change the embedded `default` pair (the first); the `exact` pair keeps its own.
    if (scorers.length !== 1 && typeof opts.config === 'string') {
      throw new ConfigError('--beta/--name/--tokenizer/--tokenization/--reference-merge apply to a single scorer; set them per scorer in the config file');
    }
    scorers[0] = {
      ...scorers[0],
      ...(given('tokenization') ? { tokenization: opts.tokenization } : {}),
      ...(given('name') ? { name: opts.name } : {}),
      ...(given('tokenizer') ? { tokenizer: opts.tokenizer } : {}),
      ...(given('beta') ? { beta: opts.beta } : {}),
      ...mergeFromOptions(opts, given, scorers[0].reference_merge as Record<string, unknown> | undefined),
    };
  }
  // A key given by flag or environment replaces the config file's key, whichever way the file gave it.
  if (given('apiKey') && !given('apiKeyFile')) delete config.api_key_file;
  if (given('apiKeyFile') && !given('apiKey')) delete config.api_key;
  return resolveApiKey(validateConfig(config));
}

/**
 * The process logger: pino JSON lines on stdout; pino-pretty only when stdout is a terminal and
 * the package is installed. The Authorization header is redacted wherever a logged object holds it.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): pino.Logger {
  const options: pino.LoggerOptions = {
    level,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', 'api_key', 'config.api_key'], censor: '[redacted]' },
  };
  if (destination) return pino(options, destination);
  if (process.stdout.isTTY) {
    try {
      createRequire(import.meta.url).resolve('pino-pretty');
      return pino({ ...options, transport: { target: 'pino-pretty' } });
    } catch {
      // not installed: plain JSON
    }
  }
  return pino(options);
}

/** Every scorer's model directories hold a loadable layout; `deep` also decodes the graphs. Throws ConfigError. */
export function checkScorerLayouts(config: Config, deep: boolean): void {
  for (const s of config.scorers) {
    try {
      checkPairLayout(s.name, s.policy, s.reference, deep);
      if (s.tokenizer !== undefined && !fs.existsSync(path.join(s.tokenizer, 'tokenizer.json')) && !fs.existsSync(path.join(s.tokenizer, 'tokenizer.json.gz'))) {
        throw new Error(`${path.resolve(s.tokenizer)}: no tokenizer.json in the tokenizer directory`);
      }
    } catch (err) {
      throw new ConfigError(`scorer "${s.name}": ${(err as Error).message}`);
    }
  }
}

async function serve(config: Config): Promise<void> {
  // A missing model directory fails here, before the port is taken and anything says "listening".
  try {
    checkScorerLayouts(config, false);
  } catch (err) {
    process.stderr.write(`pa-server: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const logger = createLogger(config.log_level);
  logger.info({ config: redactConfig(config) }, 'effective configuration');
  const metrics = new Metrics();
  const pool = new ScorerPool(config, (name) => metrics.engineObserver(name));
  const app = buildApp(config, pool, { metrics, logger });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    // e.g. EADDRINUSE: one clear line and exit 1, not an unhandled-rejection stack trace.
    process.stderr.write(`pa-server: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}\n`);
    await pool.close();
    process.exit(1);
  }
  // Registered before the models load: a SIGTERM during start-up is a clean exit 0 too.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drain_timeout_ms: config.drain_timeout_ms }, 'draining');
    app.drainState.draining = true;
    // A long queue must not keep an orchestrator waiting: after the timeout, what is still queued
    // is answered 503 and the exit code says so. Batches already running finish first, because
    // exiting while a worker is inside onnxruntime's run() aborts the process (SIGABRT).
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      logger.error({ drain_timeout_ms: config.drain_timeout_ms }, 'drain timed out; queued requests answered 503');
      pool.abandonQueued(new ServiceError(503, 'shutting_down', 'the server is shutting down and its drain timeout passed'));
    }, config.drain_timeout_ms);
    await app.close(); // stops accepting, waits for in-flight requests
    await pool.whenIdle();
    clearTimeout(deadline);
    await pool.close();
    logger.info('stopped');
    process.exit(timedOut ? 1 : 0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    await pool.load();
  } catch (err) {
    if (stopping) return; // closed by a signal while loading: stop() exits
    process.stderr.write(`pa-server: cannot start: ${(err as Error).message}\n`);
    await app.close();
    process.exit(1);
  }
  if (stopping) return;
  metrics.recordModels(pool.list());
  for (const s of pool.list()) {
    for (const warning of s.warnings) logger.warn({ scorer: s.name }, warning);
    for (const [role, info] of [['policy', s.engine.policyInfo], ['reference', s.engine.referenceInfo]] as const) {
      if (s.device === 'auto' && !info.provider.startsWith('cuda')) {
        logger.warn({ scorer: s.name, role, device: s.device, provider: info.provider }, 'device auto: the CUDA execution provider is unavailable; falling back to CPU');
      }
      const worker = role === 'policy' ? s.engine.policy : s.engine.reference;
      worker.on('down', (code) => {
        metrics.workerRestarts.inc({ scorer: s.name, role });
        logger.error({ scorer: s.name, role, code }, 'engine worker died; restarting');
      });
    }
  }
  logger.info({ scorers: pool.list().map((s) => s.name), address: app.server.address() }, 'ready');

}

/** Adds serve's flags (all, or only those named) to a command, each with its PA_* variable. */
function addServeFlags(cmd: Command, only?: readonly string[]): void {
  for (const [flag, , description, parse] of SERVE_FLAGS) {
    if (only && !only.includes(flag.split(' ')[0])) continue;
    const option = new Option(flag, description).env(envName(flag));
    if (parse) option.argParser(parse as (v: string) => unknown);
    if (flag.startsWith('--log-level ')) option.choices(LOG_LEVELS);
    cmd.addOption(option);
  }
}

/** A command's config from its flags and PA_* variables; an invalid one is one stderr line and exit 2. */
function commandConfig(opts: Record<string, unknown>, cmd: Command, label: string): Config {
  const given: Given = (key) => {
    const source = cmd.getOptionValueSource(key);
    return source === 'cli' ? 'cli' : source === 'env' ? 'env' : false;
  };
  try {
    return configFromOptions(opts, given);
  } catch (err) {
    process.stderr.write(`${label}: ${(err as Error).message}\n`);
    process.exit(USAGE_EXIT);
  }
}

/**
 * `npm start --port 9001` (no `--`): npm keeps `--port` as its own config (npm_config_port in
 * the script's environment) and passes 9001 on as an argument. The serve flags found that way.
 */
export function flagsTakenByNpm(env: NodeJS.ProcessEnv = process.env): string[] {
  if (!env.npm_lifecycle_event) return [];
  return SERVE_FLAGS.map(([flag]) => flag.split(' ')[0]).filter((flag) => env[`npm_config_${flag.slice(2).replace(/-/g, '_')}`] !== undefined);
}

/** Usage errors exit 2; help and version exit 0. Under npm, flags npm kept for itself get a hint about `--`. */
function onCommanderExit(err: CommanderError): never {
  if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(err.exitCode);
  const taken = flagsTakenByNpm();
  if (taken.length > 0) {
    // npm read `--port 9001` as the switch --port and the argument 9001; with one such flag they
    // pair back up (npm does not tell the order of several).
    const values = process.argv.slice(3);
    const example = taken.length === 1 && values.length === 1 ? `${taken[0]} ${values[0]}` : '<the same flags>';
    process.stderr.write(`pa-server: npm kept ${taken.join(', ')} for itself; put pa-server's flags after --: npm start -- ${example}\n`);
  }
  process.exit(USAGE_EXIT);
}

export function buildCli(): Command {
  // One line per usage error (commander's own, with "Did you mean" suggestions), exit 2.
  const program = new Command('pa-server').description('Progress-advantage scoring service').exitOverride(onCommanderExit);
  const serveCmd = program.command('serve').description('serve the HTTP API');
  addServeFlags(serveCmd);
  serveCmd.action(async (opts: Record<string, unknown>, cmd: Command) => {
    // `npm start --auth-metrics` parses without an error, and npm would silently keep the flag.
    if (flagsTakenByNpm().length > 0) onCommanderExit(new CommanderError(USAGE_EXIT, 'pa-server.npmFlags', 'flags taken by npm'));
    return serve(commandConfig(opts, cmd, 'pa-server'));
  });
  const configCmd = program.command('config').description('configuration tools');
  configCmd
    .command('check <file>')
    .description('validate a config file and its model directories (layouts, no ONNX sessions) without starting')
    .action((file: string) => {
      try {
        const config = configFromOptions({ config: file }, () => false);
        checkScorerLayouts(config, true);
        // The effective config (defaults filled in, paths resolved), secrets redacted.
        process.stdout.write(`${JSON.stringify(redactConfig(config), null, 2)}\n`);
        process.stderr.write(`${file}: ok (${config.scorers.length} scorer(s): ${config.scorers.map((s) => s.name).join(', ')})\n`);
      } catch (err) {
        process.stderr.write(`pa-server: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
  // `score` and `eval`: the trajectory pipeline offline, with serve's model flags.
  addOfflineCommands(program, { addServeFlags, commandConfig });
  return program;
}

const invokedDirectly = (() => {
  try {
    return fs.realpathSync(process.argv[1] ?? '') === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();
if (invokedDirectly) await buildCli().parseAsync(process.argv);
