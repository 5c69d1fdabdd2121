/**
 * Checks that a scorer's model directories hold a layout the engine can load, without creating
 * an ONNX Runtime session: the directory and its ONNX file exist (resolveModelDir), and, when
 * `deep`, the graph decodes, every external-weights file it names is there, and the scoring head
 * can be added to it (no bf16 I/O, opset ≥ 11, a float logits output, a known vocabulary), the
 * same checks and messages as at load. Policy and reference must then agree on the vocabulary.
 *
 * `serve` runs the shallow check before it listens; `config check` runs the deep one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { resolveModelDir, ModelDirError } from './model-dir.js';
import { addScoringHead, decodeModel, externalDataFiles } from './scoring-head.js';

export interface LayoutInfo {
  dir: string;
  onnxFile: string;
  /** From the graph (deep) or config.json; null when neither tells. */
  vocabSize: number | null;
  externalData: string[];
}

export class LayoutError extends Error {}

export function checkModelLayout(dir: string, deep: boolean): LayoutInfo {
  let resolved;
  try {
    resolved = resolveModelDir(dir);
  } catch (err) {
    if (err instanceof ModelDirError) throw new LayoutError(err.message);
    throw err;
  }
  const info: LayoutInfo = { dir: resolved.dir, onnxFile: resolved.onnxFile, vocabSize: resolved.vocabSize, externalData: [] };
  if (!deep) return info;
  let model;
  try {
    model = decodeModel(fs.readFileSync(resolved.onnxFile));
  } catch (err) {
    throw new LayoutError(`${resolved.onnxFile}: not a valid ONNX model (${(err as Error).message})`);
  }
  info.externalData = externalDataFiles(model);
  for (const name of info.externalData) {
    const full = path.resolve(path.dirname(resolved.onnxFile), name);
    if (!fs.existsSync(full)) throw new LayoutError(`${full}: external weights of ${resolved.onnxFile} not found`);
  }
  try {
    info.vocabSize = addScoringHead(model, resolved.onnxFile, { stats: false }).vocabSize;
  } catch (err) {
    throw new LayoutError((err as Error).message);
  }
  return info;
}

/** Both directories of a scorer; a vocabulary mismatch is refused as the engine refuses it. */
export function checkPairLayout(name: string, policyDir: string, referenceDir: string, deep: boolean): { policy: LayoutInfo; reference: LayoutInfo } {
  const policy = checkModelLayout(policyDir, deep);
  const reference = checkModelLayout(referenceDir, deep);
  if (deep && policy.vocabSize !== reference.vocabSize) {
    throw new LayoutError(
      `scorer "${name}": policy ${policy.onnxFile} has vocabulary ${policy.vocabSize} but reference ${reference.onnxFile} has ${reference.vocabSize}; a pair must share its tokenizer`,
    );
  }
  return { policy, reference };
}
