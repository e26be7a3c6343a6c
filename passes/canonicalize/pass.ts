// The contract of a canonicalisation pass: it edits the model in place, says what it needs and what holds
// after it, and returns whether it changed anything (onnx_ir passes/_pass_infra.py).
import type { Analysis } from '../../src/analysis/analyze.js';
import type { Model } from '../../src/ir/graph.js';

export interface CanonicalPass {
  name: string;
  /** What the pass relies on (read by people, not checked). */
  requires: string;
  /** What holds for the top-level graph once it ran. */
  ensures: string;
  /** Edits `model` in place; `a` is an analysis of the model as it was when the pass started. */
  run(model: Model, a: Analysis): boolean;
}
