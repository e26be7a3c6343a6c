// CastLike(x, like) reads `like` for its element type only. Its value makes a constant look data-dependent:
// the dynamo exporter's zero bias Expand(CastLike(0.0, X), ...) is labelled `data` because it reads X.
import { DataType } from '../../src/onnx/proto.js';
import type { CanonicalPass } from './pass.js';

export const typeOnlyInputs: CanonicalPass = {
  name: 'type-only-inputs',
  requires: 'element types of CastLike targets known to the analysis (declared or inferred)',
  ensures: 'no CastLike whose target element type is known: it is a Cast(to=that type)',
  run(model, a) {
    let changed = false;
    for (const n of [...model.graph.nodes]) {
      if (n.domain !== '' || n.opType !== 'CastLike' || !n.inputs[0] || !n.inputs[1]) continue;
      const to = a.factsOf(n.inputs[1]).type?.elemType;
      if (!to || to === DataType.UNDEFINED) continue;
      const cast = model.graph.addNode('Cast', [n.inputs[0]], 1, { name: `${n.name || 'CastLike'}_cast`, attrs: { to }, before: n, outputBase: n.outputs[0].name });
      cast.outputs[0].type = n.outputs[0].type;
      n.outputs[0].replaceAllUsesWith(cast.outputs[0]);
      model.graph.removeNode(n);
      changed = true;
    }
    return changed;
  },
};
