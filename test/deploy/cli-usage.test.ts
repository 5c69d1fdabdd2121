/**
 * The CLI's answers to the mistakes a newcomer makes (issue 16), each in a child process of the
 * TypeScript entry: one line on stderr naming the flag or variable, exit 2, no stack trace.
 *  - bad numeric values by flag and by PA_* variable; an unknown log level lists the levels;
 *  - `npm start --port 9001` (npm keeps --port, passes 9001 on): a hint about `--`;
 *  - --policy / --reference pairing: named as given (flag or variable), the policy card's
 *    `reference_model` used when there;
 *  - `config check` refuses missing model directories (the README's own example) and layouts the
 *    engine cannot load (bf16 logits), naming them, and accepts the embedded pair;
 *  - `serve --help` says what the API key guards.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromOptions } from '../../src/cli.js';
import { DEFAULT_REFERENCE_DIR, LOG_LEVELS } from '../../src/config.js';
import { writeBfloat16Model } from '../helpers/fault-models.js';
import { randomTable, writeBigramModel, writeWordLevelTokenizer } from '../helpers/onnx-fixtures.js';

const ROOT = path.resolve(__dirname, '../..');
const CLI = ['--import', 'tsx', 'src/cli.ts'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-cli-usage-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('PA_') || key.startsWith('npm_')) delete env[key];
  return { ...env, PA_THREADS: '1', ...extra };
}

function runCli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, env: cleanEnv(env), encoding: 'utf8', timeout: 60_000 });
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('bad values: one line naming the flag or variable, exit 2', () => {
  it.each([
    [['--port', 'abc'], {}, "'--port <port>' argument 'abc'", 'integer'],
    [['--threads', 'x'], {}, "'--threads <n>' argument 'x'", 'integer'],
    [['--beta', 'abc'], {}, "'--beta <number>' argument 'abc'", 'number'],
    [['--max-batch-tokens', '1.5'], {}, "'--max-batch-tokens <n>' argument '1.5'", 'integer'],
    [[], { PA_PORT: 'abc' }, "value 'abc' from env 'PA_PORT'", 'integer'],
    [[], { PA_MAX_WAIT_MS: 'soon' }, "value 'soon' from env 'PA_MAX_WAIT_MS'", 'number'],
  ] as const)('serve %j %j', (args, env, names, expected) => {
    const r = runCli(['serve', ...args], env);
    expect(r.status).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain(names);
    expect(r.stderr).toContain(`Expected an ${expected}`.replace('an number', 'a number'));
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe('');
  });

  it('--log-level loud and PA_LOG_LEVEL=loud list the allowed levels', () => {
    for (const r of [runCli(['serve', '--log-level', 'loud']), runCli(['serve'], { PA_LOG_LEVEL: 'loud' })]) {
      expect(r.status).toBe(2);
      expect(lines(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain('loud');
      for (const level of LOG_LEVELS) expect(r.stderr).toContain(level);
    }
  });

  it('log_level: loud in a config file lists the allowed levels too', () => {
    const file = path.join(tmp, 'loud.yaml');
    fs.writeFileSync(file, 'log_level: loud\n');
    const r = runCli(['config', 'check', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`/log_level: must be one of ${LOG_LEVELS.join(', ')}`);
  });
});

describe('npm start --port 9001 (without --)', () => {
  it('says to put the flags after --, with the command to type', () => {
    // What npm hands the script for `npm start --port 9001`: --port as its own config, 9001 as an argument.
    const r = runCli(['serve', '9001'], { npm_lifecycle_event: 'start', npm_config_port: 'true' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("too many arguments for 'serve'");
    expect(r.stderr).toContain('npm start -- --port 9001');
  });

  it('a switch npm keeps silently (npm start --auth-metrics) is not ignored either', () => {
    const r = runCli(['serve'], { npm_lifecycle_event: 'start', npm_config_auth_metrics: 'true' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--auth-metrics');
    expect(r.stderr).toContain('npm start --');
  });
});

describe('--policy and --reference', () => {
  const policyDir = (config: Record<string, unknown> | null) => {
    const dir = fs.mkdtempSync(path.join(tmp, 'policy-'));
    if (config) fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  };

  it("the policy's config.json reference_model names the reference (the embedded policy's card does)", () => {
    const c = configFromOptions({ policy: path.join(ROOT, 'models/gridworld-policy') }, (k) => (k === 'policy' ? 'cli' : false));
    expect(c.scorers).toEqual([{ name: 'default', policy: path.join(ROOT, 'models/gridworld-policy'), reference: DEFAULT_REFERENCE_DIR }]);
    // A path inside the policy directory works as well.
    const dir = policyDir({ reference_model: 'ref' });
    fs.mkdirSync(path.join(dir, 'ref'));
    expect(configFromOptions({ policy: dir }, (k) => (k === 'policy' ? 'env' : false)).scorers[0].reference).toBe(path.join(dir, 'ref'));
  });

  it('alone without a card: names the variable when it was a variable, the flag when a flag', () => {
    const dir = policyDir({ kl_beta: 0.1 });
    expect(() => configFromOptions({ policy: dir }, (k) => (k === 'policy' ? 'env' : false))).toThrow(/^PA_POLICY is set but --reference \/ PA_REFERENCE is not/);
    expect(() => configFromOptions({ policy: dir }, (k) => (k === 'policy' ? 'cli' : false))).toThrow(/^--policy is set but/);
    expect(() => configFromOptions({ reference: dir }, (k) => (k === 'reference' ? 'env' : false))).toThrow(/^PA_REFERENCE is set but --policy \/ PA_POLICY is not/);
  });

  it('a card naming a reference that is not there says so', () => {
    const dir = policyDir({ reference_model: 'org/missing-sft' });
    expect(() => configFromOptions({ policy: dir }, (k) => (k === 'policy' ? 'env' : false))).toThrow(/PA_POLICY .* names reference_model "org\/missing-sft".*--reference DIR or PA_REFERENCE/);
  });

  it('through the CLI: one line and exit 2', () => {
    const r = runCli(['serve'], { PA_POLICY: policyDir(null) });
    expect(r.status).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^pa-server: PA_POLICY is set but/);
  });
});

describe('config check verifies the model directories without starting sessions', () => {
  it("the README's own example: its /models/... directories do not exist here, and it says so", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const example = /```yaml\n(# pa\.yaml[\s\S]*?)```/.exec(readme)![1];
    const file = path.join(tmp, 'pa.yaml');
    fs.writeFileSync(file, example);
    // The example's first scorer is the embedded pair, relative to the file: put the file beside it.
    fs.symlinkSync(path.join(ROOT, 'models'), path.join(tmp, 'models'));
    const r = runCli(['config', 'check', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^pa-server: scorer "math": \/models\/math-grpo: model directory not found$/m);
  });

  it('a directory whose graph has bf16 logits is refused with the load-time message; the embedded pair is ok', () => {
    const bf16 = path.join(tmp, 'bf16');
    writeBfloat16Model(bf16);
    writeWordLevelTokenizer(bf16, 16);
    const bad = path.join(tmp, 'bf16.yaml');
    fs.writeFileSync(bad, `scorers:\n  - name: b\n    policy: ${bf16}\n    reference: ${path.join(ROOT, 'models/gridworld-reference')}\n`);
    const r = runCli(['config', 'check', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/scorer "b": .*logits is bfloat16; bf16 inputs\/outputs are not supported/);

    const good = path.join(tmp, 'good.yaml');
    fs.writeFileSync(good, `scorers:\n  - name: g\n    policy: ${path.join(ROOT, 'models/gridworld-policy')}\n    reference: ${path.join(ROOT, 'models/gridworld-reference')}\n`);
    const ok = runCli(['config', 'check', good]);
    expect(ok.stderr).toContain('ok (1 scorer(s): g)');
    expect(ok.status).toBe(0);
  });

  it('a pair whose vocabularies differ is refused: they must share a tokenizer', () => {
    // The gridworld policy (vocabulary 48) against a 16-word bigram model.
    const small = path.join(tmp, 'bigram16');
    writeBigramModel(small, { table: randomTable(16, 3) });
    const file = path.join(tmp, 'mismatch.yaml');
    fs.writeFileSync(file, `scorers:\n  - name: m\n    policy: ${path.join(ROOT, 'models/gridworld-policy')}\n    reference: ${small}\n`);
    const r = runCli(['config', 'check', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/vocabulary 48 but reference .* has 16; a pair must share its tokenizer/);
  });
});

describe('serve --help', () => {
  it('says the key guards /v1/* and /score, and that /ui loads without it', () => {
    const r = runCli(['serve', '--help']);
    expect(r.status).toBe(0);
    const help = r.stdout.replace(/\s+/g, ' ');
    expect(help).toContain('on /v1/* and /score; the /ui page loads without it and asks for the key');
    expect(help).not.toMatch(/\/score and \/ui/);
  });
});
