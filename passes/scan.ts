// Finds every dynamic-conv site of a model: the rule driver with rewriting off, on the canonical model.
import type { Analysis } from '../src/analysis/analyze.js';
import { analysisOf } from '../src/analysis/cache.js';
import type { Model } from '../src/ir/graph.js';
import { canonicalize } from './canonicalize/index.js';
import { runRules } from './driver.js';
import type { Site } from './site.js';

/**
 * The sites of `model`, which is first canonicalised in place (passes/canonicalize): `a` is used when that
 * changed nothing, else a fresh analysis of the canonical model.
 */
export function scanModel(model: Model, a: Analysis): Site[] {
  if (canonicalize(model)) a = analysisOf(model);
  return runRules(model, a, { rewrite: false }).sites;
}
