/**
 * What `npm ci` prints that comes from this project's own configuration:
 *  - no EBADENGINE: every package in the lock file declares a Node range that holds the lowest
 *    Node version of each range package.json's engines admits, the Node running the tests and the
 *    Node of the Docker image;
 *  - no install-script warning: every dependency with an install script is approved or denied in
 *    package.json's allowScripts (onnxruntime-node is denied: its only install work on Linux x64
 *    is the CUDA download, which `npm run install:cuda` does on request);
 *  - no "Unknown project config": there is no project .npmrc with keys npm does not know.
 * And the bin works right after `npm ci`: the prepare script is the build, and it compiles the bin.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
const dockerNode = /^ARG NODE_IMAGE=node:(\d+)/m.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))![1];

describe('npm ci: no warnings from our own configuration', () => {
  it('every locked package admits the Node versions we support (no EBADENGINE)', () => {
    const floors = pkg.engines.node.split('||').map((r: string) => semver.minVersion(r.trim())!.version);
    const versions = [...floors, process.versions.node, `${dockerNode}.0.0`];
    expect(floors).toContain('20.19.0');
    const refused: string[] = [];
    for (const [where, entry] of Object.entries<any>(lock.packages)) {
      const range = entry.engines?.node;
      if (!where || typeof range !== 'string') continue;
      for (const v of versions) if (!semver.satisfies(v, range)) refused.push(`${where}@${entry.version} wants node ${range}, not ${v}`);
    }
    expect(refused).toEqual([]);
  });

  it('every dependency install script is approved or denied in allowScripts', () => {
    const withScripts = Object.entries<any>(lock.packages)
      .filter(([where, entry]) => where && entry.hasInstallScript)
      .map(([where]) => where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(withScripts.length).toBeGreaterThan(0);
    for (const name of new Set(withScripts)) expect(typeof pkg.allowScripts?.[name], name).toBe('boolean');
    expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
  });

  it('npm itself agrees: no unreviewed install scripts and no unknown project config', () => {
    const r = spawnSync('npm', ['install-scripts', 'ls'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('No packages with unreviewed install scripts');
    expect(r.stderr).not.toMatch(/Unknown project config|install-scripts|EBADENGINE/);
    expect(fs.existsSync(path.join(ROOT, '.npmrc'))).toBe(false);
  });

  it('the bin is built by npm ci (prepare), from a source file that is part of the build', () => {
    expect(pkg.scripts.prepare).toBe(pkg.scripts.build);
    expect(pkg.bin['pa-server']).toBe('dist/src/cli.js');
    const tsconfig = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8'));
    expect(JSON.stringify(tsconfig.include ?? [])).toMatch(/src/);
    expect(fs.readFileSync(path.join(ROOT, 'src/cli.ts'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});
