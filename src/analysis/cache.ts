// Analyses cached on the model state: one per model version (edits through the IR bump it) and binding of the
// graph inputs' sizes, so that every stage of a run (scan, fuse, the memory estimate, emission) shares them.
import type { Model } from '../ir/graph.js';
import { Analysis } from './analyze.js';

const cache = new WeakMap<Model, { version: number; byShapes: Map<string, Analysis>; prior?: Analysis }>();

/**
 * The analysis of the model as it is now; with `inputShapes`, the analysis with those concrete input sizes.
 * Built once per model state and sizes.
 */
export function analysisOf(model: Model, inputShapes?: Readonly<Record<string, readonly number[]>>): Analysis {
  let entry = cache.get(model);
  if (!entry || entry.version !== model.version) {
    // the symbolic analysis of the state before (or its prior): what it inferred of the values the edits kept holds
    entry = { version: model.version, byShapes: new Map(), prior: entry?.byShapes.get('') ?? entry?.prior };
    cache.set(model, entry);
  }
  const key = inputShapes ? JSON.stringify(Object.entries(inputShapes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : '';
  let a = entry.byShapes.get(key);
  if (!a) {
    // An analysis at concrete sizes reads the constants from the symbolic one when that is built.
    a = new Analysis(model, undefined, inputShapes, { lazy: true, base: key ? entry.byShapes.get('') : undefined, prior: key ? undefined : entry.prior });
    // Building an analysis never edits the model, but a check keeps the cache honest.
    if (model.version !== entry.version) throw new Error('internal: the analysis changed the model');
    entry.byShapes.set(key, a);
  }
  return a;
}
