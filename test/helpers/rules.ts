// Set-up for the rule tests: a hand-built graph, fused by one rule, printed before and after (one line per
// node), and the fused model checked against the original on ONNX Runtime through the validator.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Analysis } from '../../src/analysis/analyze.js';
import { buildModel } from '../../src/ir/build.js';
import type { Model } from '../../src/ir/graph.js';
import { printGraph } from '../../src/ir/print.js';
import { loadModelFromBytes, saveModel } from '../../src/onnx/io.js';
import { validateModels, type ValidateResult } from '../../src/validate/validate.js';
import { fuseModel, type FuseOptions, type FuseResult } from '../../passes/fuse.js';
import type { Rule } from '../../passes/rules/rule.js';
import { scanModel } from '../../passes/scan.js';
import type { Site } from '../../passes/site.js';
import { encode, model as modelProto, type ModelSpec } from './model.js';

export interface RuleRun {
  before: string;
  after: string;
  result: FuseResult;
  /** The original and the fused model, as files. */
  original: string;
  fused: string;
}

/** The model of a spec, as the CLI would load it. */
export function modelOf(spec: ModelSpec, name = 'model.onnx'): { model: Model; bytes: Uint8Array } {
  const bytes = encode(modelProto(spec));
  return { model: buildModel(loadModelFromBytes(bytes, name)), bytes };
}

const made: string[] = [];
process.on('exit', () => { for (const d of made) fs.rmSync(d, { recursive: true, force: true }); });

/** Writes the spec's model to a fresh temporary folder (removed when the test process exits). */
export function writeSpec(spec: ModelSpec, name = 'model.onnx'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-rule-'));
  made.push(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, encode(modelProto(spec)));
  return file;
}

/** Fuses the spec's model with `rule` only; both models are written to a temporary folder. */
export function fuseWith(spec: ModelSpec, rule: Rule<unknown>, options: Omit<FuseOptions, 'rules'> = {}): RuleRun {
  const original = writeSpec(spec, 'original.onnx');
  const bytes = new Uint8Array(fs.readFileSync(original));
  const loaded = loadModelFromBytes(bytes, original, path.dirname(original));
  const model = buildModel(loaded);
  const before = printGraph(model.graph);
  const result = fuseModel(model, { ...options, rules: [rule as Rule<never>] as Rule<unknown>[] });
  const after = printGraph(model.graph);
  model.toProto();
  const fused = path.join(path.dirname(original), 'fused.onnx');
  saveModel(loaded, fused);
  return { before, after, result, original, fused };
}

/** The validator's comparison of the fused model with the original (seeded random inputs). */
export function validate(run: RuleRun): Promise<ValidateResult> {
  return validateModels(run.original, run.fused);
}

export function scanSpec(spec: ModelSpec): Site[] {
  const { model } = modelOf(spec);
  return scanModel(model, new Analysis(model));
}

/** The expected text of a snapshot, written indented in the test: common indentation and the outer blank lines go. */
export function text(s: string): string {
  const lines = s.replace(/^\n+|\n\s*$/g, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

export function cleanup(run: RuleRun): void {
  fs.rmSync(path.dirname(run.original), { recursive: true, force: true });
}
