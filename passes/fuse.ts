// The fuse pass: every site that can be fused becomes one com.dynconv node carrying a model-local
// function, so the result runs on stock ONNX Runtime. In place on the IR; returns what it did.
import { analysisOf } from '../src/analysis/cache.js';
import { DynconvError } from '../src/errors.js';
import type { Model } from '../src/ir/graph.js';
import { runRules } from './driver.js';
import type { Rule } from './rules/rule.js';
import { BodyRegistry } from './body-registry.js';
import { epiloguePass } from './epilogue.js';
import type { FusedNodes } from './fused-facts.js';
import { MIN_FUNCTION_OPSET } from './function-bodies.js';
import { canonicalize, CANONICAL_PASSES, POST_FUSION_PASSES } from './canonicalize/index.js';
import { declareFusedShapesPass } from './fused-shapes.js';
import { runPasses, sortPass, sweepPass, type Pass } from './pipeline.js';
import { routingPoolPass } from './routing-pool.js';
import { isFusable, type Site } from './site.js';

export interface FuseResult {
  /** Every site found, in graph order (scan's report). */
  sites: Site[];
  fused: Site[];
  notFused: Site[];
  changed: boolean;
}

export interface FuseOptions {
  /** The rules to apply (default: all, passes/rules/index.ts). */
  rules?: readonly Rule<unknown>[];
  /** Check the properties each pass ensures (passes/pipeline.ts). */
  verify?: boolean;
  /** Absorb the BatchNormalization, residual Add and activation after each fused op into it (default on; passes/epilogue.ts). */
  epilogues?: boolean;
}

/**
 * The fuse pipeline, in place: the model canonicalised, the sites rewritten, then (when anything was fused) the
 * epilogues absorbed (passes/epilogue.ts), the fused ops' routing pools made ReduceMeans (passes/routing-pool.ts),
 * dead nodes swept, the function bodies written, the result cleaned up, the nodes sorted and the fused outputs'
 * shapes declared. A model with nothing to canonicalise and nothing fused is left exactly as it was.
 */
export function fuseModel(model: Model, opts: FuseOptions = {}): FuseResult {
  let result!: FuseResult & { fusedNodes: FusedNodes };
  const canonical = runPasses(model, [canonicalizePass(opts)], opts);
  const bodies = new BodyRegistry(model);
  const fuseSitesPass: Pass<FuseResult> = { name: 'fuse-sites', inPlace: true, requires: [], ensures: [], run: (m) => (result = fuseSites(m, bodies, opts)) };
  runPasses(model, [fuseSitesPass], opts);
  if (result.changed) {
    const epilogues = epiloguePass(bodies, () => result.fusedNodes, opts.epilogues !== false);
    const bodiesPass: Pass = { name: 'function-bodies', inPlace: true, requires: [], ensures: [], run: () => (bodies.write(), { changed: true }) };
    // the clean-up's passes read an analysis, which needs the graph in order: sorted before it (and after it, the
    // model's order; nodes already in order cost one walk)
    const fusedNodes = () => result.fusedNodes;
    runPasses(model, [epilogues, routingPoolPass(fusedNodes), sweepPass, bodiesPass, sortPass, cleanUpPass(opts), sortPass, declareFusedShapesPass(opts)], opts);
  }
  const { fusedNodes: _nodes, ...out } = result;
  return { ...out, changed: result.changed || canonical.changed };
}

/**
 * Exporter noise removed once for every rule (passes/canonicalize); a model already canonical is left as it is.
 * With `verify`, each canonicalisation pass is verified too.
 */
const canonicalizePass = (opts: FuseOptions): Pass => ({ name: 'canonicalize', inPlace: true, requires: ['sorted'], ensures: [], run: (m) => ({ changed: canonicalize(m, CANONICAL_PASSES, opts) }) });

/**
 * The rewrites build their shapes and biases from what they found: folded here, the fused model is canonical
 * (fusing it again changes nothing) and free of the Reshape pairs ONNX Runtime's optimiser mishandles.
 */
const cleanUpPass = (opts: FuseOptions): Pass => ({ name: 'clean-up-fused', inPlace: true, requires: ['sorted'], ensures: [], run: (m) => ({ changed: canonicalize(m, POST_FUSION_PASSES, opts) }) });

/** Rewrites every fusable site into its com.dynconv node, choosing each node's function body. */
function fuseSites(model: Model, bodies: BodyRegistry, opts: FuseOptions): FuseResult & { fusedNodes: FusedNodes } {
  const analysis = analysisOf(model);
  let checkedOpset = false;
  const admit = (s: Site): { leave: string } | { domain: string } => {
    if (!checkedOpset && bodies.opset < MIN_FUNCTION_OPSET) {
      throw new DynconvError(`${model.source}: the model uses ONNX opset ${bodies.opset}; fusing needs opset ${MIN_FUNCTION_OPSET} or newer (re-export with a newer opset_version)`);
    }
    checkedOpset = true;
    return bodies.admit(s.op!, s.params!.rank, s.bodyAttrs ?? {});
  };
  const { sites, rewritten, nodes, forwarded } = runRules(model, analysis, { rewrite: true, admit, rules: opts.rules });
  return { sites, fused: rewritten, notFused: sites.filter((s) => !isFusable(s)), changed: rewritten.length > 0, fusedNodes: { nodes, analysis, forwarded } };
}
