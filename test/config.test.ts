import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromOptions } from '../src/cli.js';
import { ConfigError, DEFAULT_POLICY_DIR, defaultConfig, EXACT_POLICY_DIR, redactConfig, validateConfig } from '../src/config.js';

const none = () => false;
const givenKeys = (...keys: string[]) => (k: string) => keys.includes(k);

function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-config-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('configuration', () => {
  it('defaults to the two embedded gridworld pairs, default and exact, on 127.0.0.1:8080', () => {
    const c = configFromOptions({}, none);
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.scorers).toEqual([
      expect.objectContaining({ name: 'default', policy: DEFAULT_POLICY_DIR }),
      expect.objectContaining({ name: 'exact', policy: EXACT_POLICY_DIR }),
    ]);
  });

  it('flags override the config file, which overrides defaults; model paths resolve against the file', () => {
    const file = tmpFile(
      'pa.yaml',
      'port: 9000\nmax_batch_rows: 8\nscorers:\n  - name: a\n    policy: ./p\n    reference: ./r\n    beta: 0.1\n  - name: b\n    policy: /abs/p\n    reference: /abs/r\n',
    );
    const c = configFromOptions({ config: file, port: 9100 }, givenKeys('config', 'port'));
    expect(c.port).toBe(9100);
    expect(c.max_batch_rows).toBe(8);
    expect(c.scorers.map((s) => s.name)).toEqual(['a', 'b']);
    expect(c.scorers[0].policy).toBe(path.join(path.dirname(file), 'p'));
    expect(c.scorers[0].beta).toBe(0.1);
  });

  it('--policy and --reference replace the scorers with one pair named by --name', () => {
    const c = configFromOptions({ policy: '/m/p', reference: '/m/r', name: 'x', beta: 0.05 }, givenKeys('policy', 'reference', 'name', 'beta'));
    expect(c.scorers).toEqual([{ name: 'x', policy: '/m/p', reference: '/m/r', beta: 0.05 }]);
  });

  it('--beta and --name alone change the embedded default pair; with a config file of several scorers they are an error', () => {
    const c = configFromOptions({ beta: 0.5, name: 'rl' }, givenKeys('beta', 'name'));
    expect(c.scorers.map((s) => [s.name, s.beta])).toEqual([
      ['rl', 0.5],
      ['exact', undefined],
    ]);
    const file = tmpFile('two.yaml', 'scorers:\n  - name: a\n    policy: /p\n    reference: /r\n  - name: b\n    policy: /p\n    reference: /r\n');
    expect(() => configFromOptions({ config: file, beta: 0.5 }, givenKeys('config', 'beta'))).toThrow(/single scorer/);
  });

  it('--tokenization sets the scorer\'s profile (with --policy or on the one configured scorer); anything but paper/joint is refused', () => {
    const c = configFromOptions({ policy: '/m/p', reference: '/m/r', tokenization: 'joint' }, givenKeys('policy', 'reference', 'tokenization'));
    expect(c.scorers).toEqual([{ name: 'default', policy: '/m/p', reference: '/m/r', tokenization: 'joint' }]);
    expect(configFromOptions({ tokenization: 'paper' }, givenKeys('tokenization')).scorers[0].tokenization).toBe('paper');
    expect(() => configFromOptions({ tokenization: 'bpe' }, givenKeys('tokenization'))).toThrow(/tokenization/);
  });

  it('--policy without --reference is an error', () => {
    expect(() => configFromOptions({ policy: '/m/p' }, givenKeys('policy'))).toThrow(ConfigError);
  });

  it('rejects invalid values with the path of each problem', () => {
    expect(() => validateConfig({ ...defaultConfig(), port: 70000 })).toThrow(/\/port/);
    expect(() => validateConfig({ ...defaultConfig(), device: 'tpu' })).toThrow(/\/device/);
    expect(() => validateConfig({ ...defaultConfig(), scorers: [] })).toThrow(/scorers/);
    expect(() => validateConfig({ ...defaultConfig(), unknown_key: 1 })).toThrow(ConfigError);
    const twice = { name: 'a', policy: '/p', reference: '/r' };
    expect(() => validateConfig({ ...defaultConfig(), scorers: [twice, twice] })).toThrow(/twice/);
  });

  it('a config file that is not YAML/JSON, or missing, names the file', () => {
    const bad = tmpFile('bad.json', '{ nope');
    expect(() => configFromOptions({ config: bad }, givenKeys('config'))).toThrow(bad);
    expect(() => configFromOptions({ config: '/nonexistent/pa.yaml' }, givenKeys('config'))).toThrow('/nonexistent/pa.yaml');
  });

  it('redacts the API key in the logged configuration', () => {
    const c = validateConfig({ ...defaultConfig(), api_key: 'sekret' });
    expect(JSON.stringify(redactConfig(c))).not.toContain('sekret');
  });
});
