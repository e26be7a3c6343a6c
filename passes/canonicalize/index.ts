// Canonicalisation before matching, once for every rule: exporter noise (dynamo's attribute constants and
// type-only inputs, identities, shape and index arithmetic on known values, constant Loops) is removed so
// rules match what the graph computes. The passes run in order, again while any of them changes something.
import { analysisOf } from '../../src/analysis/cache.js';
import type { Model } from '../../src/ir/graph.js';
import { composeReshapes } from './compose-reshapes.js';
import { constantForms } from './constant-forms.js';
import { foldKnownValues } from './fold-known-values.js';
import { identities } from './identities.js';
import type { CanonicalPass } from './pass.js';
import { typeOnlyInputs } from './type-only-inputs.js';

export type { CanonicalPass } from './pass.js';

export const CANONICAL_PASSES: readonly CanonicalPass[] = [constantForms, identities, typeOnlyInputs, foldKnownValues];
/** Clean-ups of fused models (not run before matching: rules see the exporter's own views). */
export const POST_FUSION_PASSES: readonly CanonicalPass[] = [...CANONICAL_PASSES, composeReshapes];
const MAX_ROUNDS = 4;

/** Runs the canonicalisation passes on the model in place; returns whether anything changed. */
export function canonicalize(model: Model, passes: readonly CanonicalPass[] = CANONICAL_PASSES): boolean {
  let changed = false;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let any = false;
    let a = analysisOf(model);
    for (const p of passes) {
      if (!p.run(model, a)) continue;
      any = true;
      a = analysisOf(model);
    }
    if (!any) break;
    changed = true;
  }
  if (changed) model.graph.topoSort();
  return changed;
}
