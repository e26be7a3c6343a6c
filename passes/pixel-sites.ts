// Per-pixel dynamic convolution (involution, CARAFE, per-pixel dynamic filters): placeholder until the
// probe-based matcher lands.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Model } from '../src/ir/graph.js';
import type { Site } from './site.js';

export function findPixelSites(model: Model, a: Analysis): Site[] {
  void model; void a;
  return [];
}
