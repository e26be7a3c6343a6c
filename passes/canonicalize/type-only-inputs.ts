// CastLike(x, like) reads `like` for its element type only. Its value makes a constant look data-dependent:
// the dynamo exporter's zero bias Expand(CastLike(0.0, X), ...) is labelled `data` because it reads X.
import { DataType } from '../../src/onnx/proto.js';
import type { Analysis } from '../../src/analysis/analyze.js';
import { analysisOf } from '../../src/analysis/cache.js';
import type { Model, Node } from '../../src/ir/graph.js';
import type { Pass } from '../pipeline.js';

/** The element type a CastLike casts to, when the analysis knows it. */
function knownTarget(n: Node, a: Analysis): number | undefined {
  if (n.domain !== '' || n.opType !== 'CastLike' || !n.inputs[0] || !n.inputs[1]) return undefined;
  const to = a.factsOf(n.inputs[1]).type?.elemType;
  return !to || to === DataType.UNDEFINED ? undefined : to;
}

/** Property no-known-castlike: the first CastLike whose target type the analysis of the model knows. */
export function knownCastLike(model: Model): Node | undefined {
  const a = analysisOf(model);
  return model.graph.nodes.find((n) => knownTarget(n, a) !== undefined);
}

export const typeOnlyInputs: Pass = {
  name: 'type-only-inputs',
  inPlace: true,
  // the analysis infers the element types of CastLike targets (declared or inferred) in graph order
  requires: ['sorted'],
  ensures: ['no-known-castlike'],
  run(model) {
    const a = analysisOf(model);
    let changed = false;
    for (const n of [...model.graph.nodes]) {
      const to = knownTarget(n, a);
      if (to === undefined) continue;
      const cast = model.graph.addNode('Cast', [n.inputs[0]], 1, { name: `${n.name || 'CastLike'}_cast`, attrs: { to }, before: n, outputBase: n.outputs[0].name });
      cast.outputs[0].type = n.outputs[0].type;
      n.outputs[0].replaceAllUsesWith(cast.outputs[0]);
      model.graph.removeNode(n);
      changed = true;
    }
    return { changed };
  },
};
