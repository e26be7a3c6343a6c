// The fuse pass: every site that can be fused becomes one com.dynconv node carrying a model-local
// function, so the result runs on stock ONNX Runtime. In place on the IR; returns what it did.
import { DYNCONV_DOMAIN, DYNCONV_OPSET_VERSION, type FusedOpType } from '../ops/index.js';
import { analysisOf } from '../src/analysis/cache.js';
import { DynconvError } from '../src/errors.js';
import type { Model } from '../src/ir/graph.js';
import { runRules } from './driver.js';
import type { Rule } from './rules/rule.js';
import { BAKED_ATTRIBUTES, functionFor, MIN_FUNCTION_OPSET } from './function-bodies.js';
import { canonicalize, POST_FUSION_PASSES } from './canonicalize/index.js';
import { runPasses, sortPass, sweepPass, type Pass } from './pipeline.js';
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
}

/**
 * The fuse pipeline, in place: the model canonicalised, the sites rewritten with their function bodies, then (when
 * anything was fused) dead nodes swept, the result cleaned up and the nodes sorted. A model with nothing to
 * canonicalise and nothing fused is left exactly as it was.
 */
export function fuseModel(model: Model, opts: FuseOptions = {}): FuseResult {
  let result!: FuseResult;
  const fuseSitesPass: Pass<FuseResult> = { name: 'fuse-sites', inPlace: true, requires: [], ensures: [], run: (m) => (result = fuseSites(m, opts)) };
  const canonical = runPasses(model, [canonicalizePass], opts);
  runPasses(model, [fuseSitesPass], opts);
  if (result.changed) runPasses(model, [sweepPass, cleanUpPass, sortPass], opts);
  return { ...result, changed: result.changed || canonical.changed };
}

/** Exporter noise removed once for every rule (passes/canonicalize); a model already canonical is left as it is. */
const canonicalizePass: Pass = { name: 'canonicalize', inPlace: true, requires: [], ensures: [], run: (m) => ({ changed: canonicalize(m) }) };

/**
 * The rewrites build their shapes and biases from what they found: folded here, the fused model is canonical
 * (fusing it again changes nothing) and free of the Reshape pairs ONNX Runtime's optimiser mishandles.
 */
const cleanUpPass: Pass = { name: 'clean-up-fused', inPlace: true, requires: [], ensures: [], run: (m) => ({ changed: canonicalize(m, POST_FUSION_PASSES) }) };

/** Rewrites every fusable site into its com.dynconv node and adds the ops' function bodies. */
function fuseSites(model: Model, opts: FuseOptions): FuseResult {
  const analysis = analysisOf(model);
  const opset = model.opsets.get('') ?? 0;
  // One function body per op type, specialised to one spatial rank (and, before opset 12, to the
  // attribute values the body reads).
  const bodies = new Map<FusedOpType, { key: string; rank: number; literals?: Record<string, number | number[]> }>();
  for (const f of model.functions) if (f.domain === DYNCONV_DOMAIN) bodies.set(f.name as FusedOpType, { key: 'existing', rank: -1 });
  let checkedOpset = false;
  const admit = (s: Site): string | undefined => {
    if (!checkedOpset && opset < MIN_FUNCTION_OPSET) {
      throw new DynconvError(`${model.source}: the model uses ONNX opset ${opset}; fusing needs opset ${MIN_FUNCTION_OPSET} or newer (re-export with a newer opset_version)`);
    }
    checkedOpset = true;
    const rank = s.params!.rank;
    const literals = opset < 12 ? Object.fromEntries(BAKED_ATTRIBUTES.filter((k) => s.bodyAttrs?.[k] !== undefined).map((k) => [k, s.bodyAttrs![k]])) : undefined;
    const key = JSON.stringify([rank, literals ?? null]);
    const have = bodies.get(s.op!);
    if (have && have.key !== key) {
      return have.key === 'existing'
        ? `the model already has a ${s.op} function`
        : `another ${s.op} site of this model needs a different function body (${opset < 12 ? 'opset 11 bakes attributes into it; re-export with opset 13 or newer' : 'another spatial rank'})`;
    }
    bodies.set(s.op!, { key, rank, literals });
    return undefined;
  };
  const { sites, rewritten } = runRules(model, analysis, { rewrite: true, admit, rules: opts.rules });
  if (rewritten.length) {
    for (const [op, body] of bodies) {
      if (body.rank < 0 || model.hasFunction(DYNCONV_DOMAIN, op)) continue;
      model.addFunction(functionFor(op, opset, body.rank, body.literals));
    }
    model.opsets.set(DYNCONV_DOMAIN, DYNCONV_OPSET_VERSION);
    model.requireIrVersion(8); // model-local functions need IR 8
  }
  return { sites, fused: rewritten, notFused: sites.filter((s) => !isFusable(s)), changed: rewritten.length > 0 };
}
