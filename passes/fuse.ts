// The fuse pass: every site that can be fused becomes one com.dynconv node carrying a model-local
// function, so the result runs on stock ONNX Runtime. In place on the IR; returns what it did.
import { DYNCONV_DOMAIN, DYNCONV_DOMAINS, DYNCONV_OPSET_VERSION, isDynconvDomain, isFusedOpType, type FusedOpType } from '../ops/index.js';
import { analysisOf } from '../src/analysis/cache.js';
import { DynconvError } from '../src/errors.js';
import type { Model } from '../src/ir/graph.js';
import { runRules } from './driver.js';
import type { Rule } from './rules/rule.js';
import { BAKED_ATTRIBUTES, functionFor, MIN_FUNCTION_OPSET } from './function-bodies.js';
import { canonicalize, CANONICAL_PASSES, POST_FUSION_PASSES } from './canonicalize/index.js';
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
  const canonical = runPasses(model, [canonicalizePass(opts)], opts);
  runPasses(model, [fuseSitesPass], opts);
  // the clean-up's passes read an analysis, which needs the graph in order: sorted before it and after it
  if (result.changed) runPasses(model, [sweepPass, sortPass, cleanUpPass(opts), sortPass], opts);
  return { ...result, changed: result.changed || canonical.changed };
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

/** Rewrites every fusable site into its com.dynconv node and adds the ops' function bodies. */
function fuseSites(model: Model, opts: FuseOptions): FuseResult {
  const analysis = analysisOf(model);
  const opset = model.opsets.get('') ?? 0;
  // A function body is specialised to one spatial rank and, before opset 12, to the attribute values it
  // reads. Functions are found by (domain, op type): the k-th body an op needs goes in domain
  // com.dynconv.f<k> (ops/index.ts), so every site fuses and its node keeps the op type of its kernel.
  type Body = { key: string; rank: number; literals?: Record<string, number | number[]>; domain: string };
  const bodies = new Map<FusedOpType, Body[]>();
  const bodiesOf = (op: FusedOpType) => bodies.get(op) ?? bodies.set(op, []).get(op)!;
  // Bodies already in the model (a model fused before) keep their domains; new ones take the next.
  for (const f of model.functions) {
    if (isDynconvDomain(f.domain ?? '') && isFusedOpType(f.name ?? '')) bodiesOf(f.name as FusedOpType).push({ key: 'existing', rank: -1, domain: f.domain! });
  }
  let checkedOpset = false;
  const admit = (s: Site): { leave: string } | { domain: string } => {
    if (!checkedOpset && opset < MIN_FUNCTION_OPSET) {
      throw new DynconvError(`${model.source}: the model uses ONNX opset ${opset}; fusing needs opset ${MIN_FUNCTION_OPSET} or newer (re-export with a newer opset_version)`);
    }
    checkedOpset = true;
    const rank = s.params!.rank;
    const literals = opset < 12 ? Object.fromEntries(BAKED_ATTRIBUTES.filter((k) => s.bodyAttrs?.[k] !== undefined).map((k) => [k, s.bodyAttrs![k]])) : undefined;
    const key = JSON.stringify([rank, literals ?? null]);
    const list = bodiesOf(s.op!);
    const have = list.find((b) => b.key === key);
    if (have) return { domain: have.domain };
    const free = DYNCONV_DOMAINS.find((d) => !list.some((b) => b.domain === d));
    if (!free) return { leave: `the ${s.op} sites of this model need more than ${DYNCONV_DOMAINS.length} function bodies (${opset < 12 ? 'opset 11 bakes attributes into them; re-export with opset 13 or newer' : 'spatial ranks'})` };
    list.push({ key, rank, literals, domain: free });
    return { domain: free };
  };
  const { sites, rewritten } = runRules(model, analysis, { rewrite: true, admit, rules: opts.rules });
  if (rewritten.length) {
    for (const [op, list] of bodies) {
      for (const body of list) {
        if (body.rank < 0 || model.hasFunction(body.domain, op)) continue;
        model.addFunction(functionFor(op, opset, body.rank, body.literals, body.domain));
        model.opsets.set(body.domain, DYNCONV_OPSET_VERSION);
      }
    }
    model.opsets.set(DYNCONV_DOMAIN, DYNCONV_OPSET_VERSION);
    model.requireIrVersion(8); // model-local functions need IR 8
  }
  return { sites, fused: rewritten, notFused: sites.filter((s) => !isFusable(s)), changed: rewritten.length > 0 };
}
