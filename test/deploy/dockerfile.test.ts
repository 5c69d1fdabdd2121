/**
 * The Dockerfile builds the way CI does: its build stage runs the same npm commands as .ci/run,
 * in the same order (npm ci, whose prepare script builds dist/), with package.json's allowScripts
 * keeping onnxruntime-node's CUDA download from running. The runtime stage: a slim current Node
 * LTS, non-root, HEALTHCHECK on /health, the default port, the embedded default pair, /models
 * for mounts, the CLI entry of package.json; the CUDA variant sets ONNXRUNTIME_NODE_INSTALL=cuda12.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig, DEFAULT_POLICY_DIR, DEFAULT_REFERENCE_DIR } from '../../src/config.js';

const ROOT = path.resolve(__dirname, '../..');
const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const ciRun = fs.readFileSync(path.join(ROOT, '.ci/run'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string;
  instructions: Instruction[];
}

/** Dockerfile → stages of instructions (comments dropped, `\` continuations joined). */
function stages(text: string): Stage[] {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const out: Stage[] = [];
  for (const line of logical) {
    const [, op, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      out.push({ from: m[1], name: m[2] ?? '', instructions: [] });
    } else if (out.length > 0) {
      out[out.length - 1].instructions.push({ op: op.toUpperCase(), args: args.replace(/\s+/g, ' ') });
    }
  }
  return out;
}

const all = stages(dockerfile);
const stage = (name: string) => all.find((s) => s.name === name)!;
const args = (s: Stage, op: string) => s.instructions.filter((i) => i.op === op).map((i) => i.args);
const argDefault = (name: string) => new RegExp(`^ARG ${name}=(\\S+)$`, 'm').exec(dockerfile)?.[1];

/** npm commands that install and build (npm test / npm --version are CI's own). */
const INSTALL_AND_BUILD = /^npm (ci|install|run build)\b/;

describe('Dockerfile build stage', () => {
  const build = stage('build');

  it('runs the same install and build commands as .ci/run, in the same order', () => {
    const dockerSteps = args(build, 'RUN').filter((r) => INSTALL_AND_BUILD.test(r));
    const ciSteps = ciRun
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => INSTALL_AND_BUILD.test(l));
    expect(dockerSteps).toEqual(['npm ci --no-audit --no-fund']);
    expect(dockerSteps).toEqual(ciSteps);
    // npm ci builds: the prepare script is the build, so the bin works right after install.
    expect(pkg.scripts.prepare).toBe(pkg.scripts.build);
  });

  it('installs from the lock file with the sources in place (prepare builds them), no .npmrc, CUDA download denied', () => {
    const copies = args(build, 'COPY');
    const beforeInstall = build.instructions.slice(0, build.instructions.findIndex((i) => i.op === 'RUN' && i.args.startsWith('npm ci')));
    const copied = beforeInstall.filter((i) => i.op === 'COPY').flatMap((i) => i.args.split(' ').slice(0, -1));
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'tsconfig.json', 'src']));
    // A project .npmrc key npm does not know is warned about on every npm call; allowScripts replaces it.
    expect(fs.existsSync(path.join(ROOT, '.npmrc'))).toBe(false);
    expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
    // An npm older than allowScripts would run the install script: the variable makes it skip.
    expect(beforeInstall.filter((i) => i.op === 'ENV').map((i) => i.args)).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
    for (const c of copies) {
      for (const src of c.split(' ').slice(0, -1).filter((s) => !s.startsWith('--'))) expect(fs.existsSync(path.join(ROOT, src)), src).toBe(true);
    }
  });

  it('the CUDA variant fetches the CUDA 12 execution provider', () => {
    const cuda = args(build, 'RUN').find((r) => r.includes('ONNXRUNTIME_NODE_INSTALL=cuda12'));
    expect(cuda).toMatch(/if \[ "\$VARIANT" = "cuda" \]/);
    expect(cuda).toContain('node_modules/onnxruntime-node/script/install.js');
    // The same command as the package's install:cuda script (the README's route outside the image).
    expect(cuda).toContain(pkg.scripts['install:cuda']);
    expect(fs.existsSync(path.join(ROOT, 'node_modules/onnxruntime-node/script/install.js'))).toBe(true);
    expect(argDefault('VARIANT')).toBe('cpu');
    expect(argDefault('CUDA_IMAGE')).toMatch(/^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/);
  });

  it('.ci/run installs promtool before npm ci, only when missing', () => {
    const apt = ciRun.indexOf('apt-get install -y --no-install-recommends prometheus');
    expect(apt).toBeGreaterThan(0);
    expect(apt).toBeLessThan(ciRun.search(/^npm ci /m));
    expect(ciRun).toContain('if ! command -v promtool');
  });

  it('.ci/run installs haproxy before npm ci, only when missing', () => {
    const apt = ciRun.indexOf('apt-get install -y --no-install-recommends haproxy');
    expect(apt).toBeGreaterThan(0);
    expect(apt).toBeLessThan(ciRun.search(/^npm ci /m));
    expect(ciRun).toContain('if ! command -v haproxy');
  });
});

describe('Dockerfile runtime stage', () => {
  const runtime = stage('runtime');
  const env = Object.fromEntries(
    args(runtime, 'ENV')
      .flatMap((e) => e.split(' '))
      .map((kv) => kv.split('=')),
  );

  it('a slim Node 26 (the active LTS) base, a non-root user, the CLI entry', () => {
    expect(argDefault('NODE_IMAGE')).toMatch(/^node:26(\.[\d.]+)?-[a-z]+-slim$/);
    expect(runtime.from).toBe('runtime-${VARIANT}');
    expect(stage('runtime-cpu').from).toBe('${NODE_IMAGE}');
    expect(stage('runtime-cuda').from).toBe('${CUDA_IMAGE}');
    expect(args(runtime, 'USER')).toEqual(['node']);
    expect(args(runtime, 'ENTRYPOINT')).toEqual([JSON.stringify(['node', pkg.bin['pa-server']]).replace(/,/g, ', ')]);
    expect(args(runtime, 'CMD')).toEqual(['["serve"]']);
  });

  it('listens on the default port on all interfaces, with a HEALTHCHECK on /health', () => {
    const port = defaultConfig().port;
    expect(args(runtime, 'EXPOSE')).toEqual([String(port)]);
    expect(Number(env.PA_PORT)).toBe(port);
    expect(env.PA_HOST).toBe('0.0.0.0');
    const health = args(runtime, 'HEALTHCHECK')[0];
    expect(health).toContain('/health');
    expect(health).toContain(`process.env.PA_PORT||${port}`);
  });

  it('ships the embedded default pair and openapi.yaml; /models exists for mounts', () => {
    const copies = args(runtime, 'COPY');
    expect(copies).toContain('--chown=node:node models ./models');
    expect(copies.some((c) => /\bopenapi\.yaml\b/.test(c))).toBe(true);
    // The image's WORKDIR is the package root, so the defaults of src/config.ts resolve inside it.
    expect(args(runtime, 'WORKDIR')).toEqual(['/app']);
    expect(path.relative(ROOT, DEFAULT_POLICY_DIR)).toBe('models/gridworld-policy');
    expect(path.relative(ROOT, DEFAULT_REFERENCE_DIR)).toBe('models/gridworld-reference');
    expect(args(runtime, 'RUN').some((r) => /mkdir -p \/models && chown node:node \/models/.test(r))).toBe(true);
    expect(dockerfile).toMatch(/-v "\$PWD\/models:\/models:ro"/);
    // No PA_POLICY/PA_REFERENCE baked in: they would override a mounted PA_CONFIG's scorers.
    expect(env.PA_POLICY).toBeUndefined();
    expect(env.PA_REFERENCE).toBeUndefined();
  });
});
