// Canonicalisation before matching, once for every rule: exporter noise (dynamo's attribute constants and
// type-only inputs, identities, shape and index arithmetic on known values, constant Loops) is removed so
// rules match what the graph computes. The passes run in order, again while any of them changes something.
import type { Model } from '../../src/ir/graph.js';
import { runPasses, type Pass } from '../pipeline.js';
import { composeReshapes } from './compose-reshapes.js';
import { constantForms } from './constant-forms.js';
import { foldKnownValues } from './fold-known-values.js';
import { identities } from './identities.js';
import { typeOnlyInputs } from './type-only-inputs.js';

export const CANONICAL_PASSES: readonly Pass[] = [constantForms, identities, typeOnlyInputs, foldKnownValues];
/** Clean-ups of fused models (not run before matching: rules see the exporter's own views). */
export const POST_FUSION_PASSES: readonly Pass[] = [...CANONICAL_PASSES, composeReshapes];
const MAX_ROUNDS = 4;

/**
 * Runs the canonicalisation passes (passes/pipeline.ts `Pass`es) on the model in place, in rounds while any of
 * them changes something; returns whether anything changed. With `verify`, each pass's requirements and
 * guarantees are checked around it (runPasses).
 */
export function canonicalize(model: Model, passes: readonly Pass[] = CANONICAL_PASSES, opts: { verify?: boolean } = {}): boolean {
  let changed = false;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (!runPasses(model, passes, opts).changed) break;
    changed = true;
  }
  if (changed) model.graph.topoSort();
  return changed;
}
