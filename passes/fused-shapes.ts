// declare-fused-shapes: the output types of the com.dynconv nodes written as value_info. ONNX Runtime has no shape
// inference for a custom op, so without them every shape after a fused op is unknown to its optimiser, which then
// leaves fusions that need shapes undone: on RedNet the residual Add and ReLU after each block's last 1x1 conv ran
// as separate NCHWc ops (4% of the network's time at 1 thread) instead of inside that Conv. The shapes are the op
// definitions' (ops/), as the analysis infers them; dims it only knows as symbols are left unnamed.
import { isDynconvDomain } from '../ops/index.js';
import { analysisOf } from '../src/analysis/cache.js';
import type { Model } from '../src/ir/graph.js';
import type { Pass } from './pipeline.js';

export const declareFusedShapesPass: Pass = {
  name: 'declare-fused-shapes',
  inPlace: true,
  requires: ['sorted'],
  ensures: [],
  run(model: Model) {
    const a = analysisOf(model);
    const typed = [];
    for (const n of model.graph.nodes) {
      if (!isDynconvDomain(n.domain)) continue;
      for (const v of n.outputs) {
        const t = a.factsOf(v).type;
        if (t?.shape) typed.push({ v, t: { elemType: t.elemType, shape: t.shape.map((d) => (typeof d === 'number' ? d : undefined)) } });
      }
    }
    for (const { v, t } of typed) model.graph.declareType(v, t);
    return { changed: typed.length > 0 };
  },
};
