/**
 * The Python client (clients/python): installed offline into a fresh venv of Debian's
 * /usr/bin/python3 with `pip install --no-index --no-build-isolation` (no dependencies, no build
 * tools beyond the venv's own pip), then its pytest suite run with Debian's pytest against a real
 * server that the suite's conftest.py starts from this checkout.
 *
 * Needs /usr/bin/python3 with venv (Debian python3-venv) and pytest (python3-pytest); .ci/run
 * installs both. Without them the file is skipped with a message, except under CI=true, where it
 * fails. pytest's exit codes: 0 passes; 5 (no tests collected) and every other code fail.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const PACKAGE = path.join(ROOT, 'clients', 'python');
const PYTHON = '/usr/bin/python3';
const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

function probe(args: string[]): boolean {
  return fs.existsSync(PYTHON) && spawnSync(PYTHON, args, { stdio: 'ignore' }).status === 0;
}
const HAVE_VENV = probe(['-c', 'import ensurepip, venv']);
const HAVE_PYTEST = probe(['-c', 'import pytest']);
const RUN = (HAVE_VENV && HAVE_PYTEST) || IN_CI;
if (!RUN) {
  console.warn(
    `test/clients/python.test.ts: skipped, ${PYTHON} lacks ${HAVE_VENV ? '' : 'venv (apt-get install python3-venv) '}${HAVE_PYTEST ? '' : 'pytest (apt-get install python3-pytest)'}. Under CI=true this file runs and fails instead.`,
  );
}

/** The environment without any pip configuration of this machine: no find-links, no index, no cache. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PIP_') && !k.startsWith('PYTHON') && !k.startsWith('PA_')));
  return { ...env, PIP_CONFIG_FILE: os.devNull, PIP_NO_CACHE_DIR: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONDONTWRITEBYTECODE: '1' };
}

function run(command: string, args: string[], timeout = 120_000) {
  const r = spawnSync(command, args, { cwd: ROOT, env: cleanEnv(), encoding: 'utf8', timeout });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function installInto(venv: string, systemSitePackages: boolean) {
  const created = run(PYTHON, ['-m', 'venv', ...(systemSitePackages ? ['--system-site-packages'] : []), venv]);
  expect(created.status, `python3 -m venv failed:\n${created.output}`).toBe(0);
  const pip = run(path.join(venv, 'bin', 'pip'), ['install', '--no-index', '--no-build-isolation', PACKAGE]);
  expect(pip.status, `pip install --no-index --no-build-isolation ./clients/python failed:\n${pip.output}`).toBe(0);
  return pip.output;
}

describe.skipIf(!RUN)('the Python client', () => {
  let tmp = '';
  beforeAll(() => {
    if (!HAVE_VENV || !HAVE_PYTEST) {
      throw new Error(`CI=true but ${PYTHON} lacks venv or pytest: .ci/run must install python3-venv and python3-pytest with apt`);
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pa-python-'));
  });
  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('installs offline into a fresh venv of /usr/bin/python3, with no dependencies', () => {
    const venv = path.join(tmp, 'fresh');
    const output = installInto(venv, false);
    expect(output).toMatch(/Successfully installed progress-advantage-0\.1\.0/);
    // Nothing else was installed: the venv holds pip, setuptools (the venv's own) and the client.
    const listed = run(path.join(venv, 'bin', 'python'), ['-m', 'pip', 'list', '--format=json']);
    const names = (JSON.parse(listed.output.trim().split('\n').at(-1)!) as { name: string }[]).map((p) => p.name.toLowerCase()).sort();
    expect(names.filter((n) => n !== 'pip' && n !== 'setuptools')).toEqual(['progress-advantage']);
    const imported = run(path.join(venv, 'bin', 'python'), [
      '-c',
      'import importlib.metadata as m, progress_advantage as p; print(p.__version__, m.requires("progress-advantage"), p.Client.__name__)',
    ]);
    expect(imported.status, imported.output).toBe(0);
    expect(imported.output.trim()).toBe('0.1.0 None Client');
  });

  it('passes its pytest suite against a real server (every method, an error code, a retry on 429)', { timeout: 600_000 }, () => {
    // Debian's pytest is seen through --system-site-packages; the client is the installed one.
    const venv = path.join(tmp, 'tests');
    installInto(venv, true);
    const r = run(path.join(venv, 'bin', 'python'), ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'clients/python/tests'], 540_000);
    if (r.status === 5) throw new Error(`pytest collected no tests (exit 5):\n${r.output}`);
    expect(r.status, `pytest exited ${r.status}:\n${r.output.slice(-6000)}`).toBe(0);
    const passed = /(\d+) passed/.exec(r.output);
    expect(Number(passed?.[1] ?? 0)).toBeGreaterThanOrEqual(15);
    expect(r.output).not.toMatch(/\d+ (failed|skipped|error)/);
  });
});
