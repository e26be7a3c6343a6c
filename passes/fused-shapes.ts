// declare-fused-shapes: the output types of the com.dynconv nodes written as value_info. ONNX Runtime has no shape
// inference for a custom op, so without them every shape after a fused op is unknown to its optimiser, which then
// leaves fusions that need shapes undone: on RedNet the residual Add and ReLU after each block's last 1x1 conv ran
// as separate NCHWc ops (4% of the network's time at 1 thread) instead of inside that Conv. The shapes are the op
// definitions' (ops/), as the analysis infers them (from the analysis of the model before the rewrites for every
// value the rewrites kept: src/analysis/analyze.ts `prior`); dims it only knows as symbols are left unnamed. With
// `verify`, an analysis of the fused model built from nothing checks them.
import { isDynconvDomain } from '../ops/index.js';
import { Analysis } from '../src/analysis/analyze.js';
import { analysisOf } from '../src/analysis/cache.js';
import type { Model, Value, ValueType } from '../src/ir/graph.js';
import { PassContractError, type Pass } from './pipeline.js';

export function declareFusedShapesPass(opts: { verify?: boolean } = {}): Pass {
  return {
    name: 'declare-fused-shapes',
    inPlace: true,
    requires: ['sorted'],
    ensures: [],
    run(model: Model) {
      const typed = fusedOutputTypes(model, analysisOf(model));
      if (opts.verify) {
        const fresh = JSON.stringify(fusedOutputTypes(model, new Analysis(model)).map(({ t }) => t));
        const used = JSON.stringify(typed.map(({ t }) => t));
        if (fresh !== used) throw new PassContractError(`pass declare-fused-shapes: the fused outputs' types ${used} differ from a fresh analysis's ${fresh}`);
      }
      for (const { v, t } of typed) model.graph.declareType(v, t);
      return { changed: typed.length > 0 };
    },
  };
}

function fusedOutputTypes(model: Model, a: Analysis): { v: Value; t: ValueType }[] {
  const typed: { v: Value; t: ValueType }[] = [];
  for (const n of model.graph.nodes) {
    if (!isDynconvDomain(n.domain)) continue;
    for (const v of n.outputs) {
      const t = a.factsOf(v).type;
      if (t?.shape) typed.push({ v, t: { elemType: t.elemType, shape: t.shape.map((d) => (typeof d === 'number' ? d : undefined)) } });
    }
  }
  return typed;
}
