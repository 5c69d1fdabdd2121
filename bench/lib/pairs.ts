/**
 * The benchmark pairs, generated on demand into the git-ignored bench/models/:
 *   full suite: Llama-style pairs from tools/bench-models/make_pair.py (Debian torch), vocab
 *               32,000 and 151,936, hidden 128, 4 layers, untied lm_head, ONNX + torch weights;
 *   --quick:    tiny pairs written from TypeScript (no Python needed), plus a tiny torch pair for
 *               the paper pattern when torch is installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { log, MODELS_DIR, ROOT, type BenchOptions, type Pair } from './common.js';
import { writeTinyPair } from './tiny-pair.js';

export const PYTHON = process.env.PA_BENCH_PYTHON ?? '/usr/bin/python3';

let torchChecked: boolean | undefined;

/** Whether PYTHON can import torch (the paper pattern and the full-size generator need it). */
export function torchAvailable(options: BenchOptions): boolean {
  if (options.noPython) return false;
  if (torchChecked === undefined) {
    const r = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { stdio: 'ignore', timeout: 120_000 });
    torchChecked = r.status === 0;
  }
  return torchChecked;
}

function readPair(root: string): Pair {
  const arch = JSON.parse(fs.readFileSync(path.join(root, 'arch.json'), 'utf8'));
  const config = JSON.parse(fs.readFileSync(path.join(root, 'policy', 'config.json'), 'utf8'));
  return {
    name: path.basename(root),
    dir: root,
    policy: path.join(root, 'policy'),
    reference: path.join(root, 'reference'),
    vocab: arch.vocab,
    hidden: arch.hidden,
    layers: arch.layers,
    torchWeights: fs.existsSync(path.join(root, 'policy', 'weights.pt')),
    maxPositions: config.max_position_embeddings,
  };
}

/** A Llama-style pair from make_pair.py, generated unless bench/models already holds it. */
export function llamaPair(options: BenchOptions, vocab: number, hidden = 128, layers = 4): Pair {
  const root = path.join(MODELS_DIR, `llama-v${vocab}-h${hidden}`);
  if (!fs.existsSync(path.join(root, 'arch.json'))) {
    if (!torchAvailable(options)) {
      throw new Error(
        `${root} is missing and ${PYTHON} cannot import torch and onnx to generate it ` +
          '(apt-get install python3-torch python3-onnx, or set PA_BENCH_PYTHON)',
      );
    }
    log(`generating ${path.relative(ROOT, root)} (vocab ${vocab}, hidden ${hidden}, ${layers} layers)`);
    execFileSync(
      PYTHON,
      ['tools/bench-models/make_pair.py', '--out', MODELS_DIR, '--vocab', String(vocab), '--hidden', String(hidden), '--layers', String(layers)],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } },
    );
  }
  return readPair(root);
}

export function tinyPair(vocab: number): Pair {
  return readPair(writeTinyPair(MODELS_DIR, vocab));
}

/** The pair the speed benches run: vocab 32,000 (full) or the tiny TypeScript pair (quick). */
export function mainPair(options: BenchOptions): Pair {
  return options.quick ? tinyPair(1000) : llamaPair(options, 32000);
}

/** The large-vocabulary pair of the memory bench. */
export function largeVocabPair(options: BenchOptions): Pair {
  return options.quick ? tinyPair(8000) : llamaPair(options, 151936);
}

/** The pair the paper pattern runs: the main pair in full mode; a tiny torch pair in quick mode. */
export function paperPair(options: BenchOptions): Pair {
  return options.quick ? llamaPair(options, 1000, 32, 2) : mainPair(options);
}

/** The with-past variant of a pair: make_pair.py writes it to {policy,reference}/kv (quick: the embedded gridworld pair, which is with-past). */
export function withPastPair(pair: Pair, quick: boolean): Pair {
  if (quick) {
    const models = path.join(ROOT, 'models');
    return { ...pair, name: 'gridworld (with past)', policy: path.join(models, 'gridworld-policy'), reference: path.join(models, 'gridworld-reference'), vocab: 48, maxPositions: 384 };
  }
  return { ...pair, name: `${pair.name}/kv`, policy: path.join(pair.policy, 'kv'), reference: path.join(pair.reference, 'kv') };
}
