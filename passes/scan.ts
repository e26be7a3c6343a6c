// Finds every dynamic-conv site of a model: the rule driver with rewriting off.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Model } from '../src/ir/graph.js';
import { runRules } from './driver.js';
import type { Site } from './site.js';

export function scanModel(model: Model, a: Analysis): Site[] {
  return runRules(model, a, { rewrite: false }).sites;
}
