// A Reshape to a literal shape reads past a chain of Reshape / Squeeze / Unsqueeze / Flatten producers: the
// elements in row-major order are the same whatever the intermediate views were. Run on fused models: ONNX
// Runtime's ReshapeFusion::FuseContiguousReshapes merges such a pair into one node and, when the first
// Reshape's shape is computed by a node (`Reshape(x, Concat(...))`, as torch's unfold exports), fails to load
// the model ("Attempting to get index by a name which does not exist ... _new_reshape"). Whether it fires depends
// on which shapes ORT knows, which registering the com.dynconv library changes (its kernels declare their
// output shapes, the function bodies ORT inlines otherwise do not), so the fused model must not contain the pair.
import type { Analysis } from '../../src/analysis/analyze.js';
import type { Model, Node, Value } from '../../src/ir/graph.js';
import { analysisOf } from '../../src/analysis/cache.js';
import type { Pass } from '../pipeline.js';

const VIEWS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten']);

/** The data input of a view op (the one whose elements it passes on). */
function viewed(n: Node): Value | null {
  return n.domain === '' && VIEWS.has(n.opType) ? n.inputs[0] : null;
}

/** The value a Reshape to a literal shape can read instead of its input (the view chain's root), if any. */
function composedInput(model: Model, n: Node, a: Analysis): Value | undefined {
  if (n.domain !== '' || n.opType !== 'Reshape' || !n.inputs[0] || a.label(n.inputs[1]) !== 'constant') return undefined;
  const target = a.intsOf(n.inputs[1]);
  // a 0 copies a dim of the direct input, so it cannot skip that input
  if (!target || target.includes(0) || target.filter((d) => d === -1).length > 1) return undefined;
  let root = n.inputs[0];
  for (let p = root.producer; p && p.graph === model.graph && viewed(p); p = root.producer) root = viewed(p)!;
  return root === n.inputs[0] ? undefined : root;
}

/** Whether the pass would change the model (read-only). */
export function hasComposableReshapes(model: Model, a: Analysis): boolean {
  return model.graph.nodes.some((n) => composedInput(model, n, a) !== undefined);
}

/** Property reshapes-composed: the first Reshape the pass would still compose, by the analysis of the model. */
export function composableReshape(model: Model): Node | undefined {
  const a = analysisOf(model);
  return model.graph.nodes.find((n) => composedInput(model, n, a) !== undefined);
}

export const composeReshapes: Pass = {
  name: 'compose-reshapes',
  inPlace: true,
  // constant Reshape targets, from the analysis of the graph in order
  requires: ['sorted'],
  ensures: ['reshapes-composed'],
  run(model) {
    const a = analysisOf(model);
    let changed = false;
    for (const n of model.graph.nodes) {
      const root = composedInput(model, n, a);
      if (!root) continue;
      n.setInput(0, root);
      changed = true;
    }
    if (changed) model.graph.sweepDeadNodes();
    return { changed };
  },
};
