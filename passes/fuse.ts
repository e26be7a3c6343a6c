// The fuse pass: every site that can be fused becomes one com.dynconv node carrying a model-local
// function, so the result runs on stock ONNX Runtime. In place on the IR; returns what it did.
import { DYNCONV_DOMAIN, type FusedOpType } from '../ops/index.js';
import { Analysis } from '../src/analysis/analyze.js';
import { DynconvError } from '../src/errors.js';
import type { Model } from '../src/ir/graph.js';
import { runRules } from './driver.js';
import { BAKED_ATTRIBUTES, functionFor, MIN_FUNCTION_OPSET } from './function-bodies.js';
import { isFusable, type Site } from './site.js';

export interface FuseResult {
  fused: Site[];
  notFused: Site[];
  changed: boolean;
}

export function fuseModel(model: Model): FuseResult {
  const analysis = new Analysis(model);
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
  const { sites, rewritten } = runRules(model, analysis, { rewrite: true, admit });
  if (rewritten.length) {
    model.graph.sweepDeadNodes();
    model.graph.topoSort();
    for (const [op, body] of bodies) {
      if (body.rank < 0 || model.hasFunction(DYNCONV_DOMAIN, op)) continue;
      model.addFunction(functionFor(op, opset, body.rank, body.literals));
    }
    model.opsets.set(DYNCONV_DOMAIN, 1);
    model.requireIrVersion(8); // model-local functions need IR 8
  }
  return { fused: rewritten, notFused: sites.filter((s) => !isFusable(s)), changed: rewritten.length > 0 };
}
