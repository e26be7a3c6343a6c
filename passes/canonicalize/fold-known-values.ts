// Values that do not depend on activation data and whose contents the analysis can compute become
// initializers: shape chains over known shapes (Shape, Expand, ConstantOfShape, Concat, Gather), index
// computations on constants (Range, NonZero, Mul/Add of index grids, Loops of constants: src/analysis/loops.ts),
// type-only chains (a Cast of a literal, dynamo's zero bias once CastLike reads X for its type only).
// Rules then see literals instead of exporter arithmetic. Big float constants (expert banks, standardised
// weights) stay as they are: folding them would only copy weights.
import { DataType } from '../../src/onnx/proto.js';
import type { Value } from '../../src/ir/graph.js';
import { isEncodable, numel } from '../../src/ir/tensor.js';
import type { Analysis } from '../../src/analysis/analyze.js';
import { analysisOf } from '../../src/analysis/cache.js';
import type { Model, Node } from '../../src/ir/graph.js';
import type { Tensor } from '../../src/ir/tensor.js';
import type { Pass } from '../pipeline.js';

/** Float results up to this many elements are folded even when they come from constants alone. */
const SMALL_FLOAT = 64;
/** Integer / bool results (indices, shapes) up to this many elements are folded. */
const MAX_INDEX_ELEMENTS = 1 << 20;
const FLOATS = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);

/** Whether a value of this element type and size is worth writing as a literal. */
function worthFolding(dtype: number, elements: number, label: string): boolean {
  if (FLOATS.has(dtype)) return elements <= SMALL_FLOAT || (label === 'shape-only' && elements <= MAX_INDEX_ELEMENTS);
  return elements <= MAX_INDEX_ELEMENTS;
}

/** False when the analysis's type of v (static shape, known element type) already rules its literal out. */
function worthBySize(v: Value, a: Analysis): boolean {
  const t = a.factsOf(v).type, dims = t?.shape;
  if (!t?.elemType || !dims || !dims.every((d) => typeof d === 'number')) return true;
  return worthFolding(t.elemType, numel(dims as number[]), a.label(v));
}

/** The literals that replace n's used outputs (undefined for an unused one), when n is worth folding. */
function foldedOutputs(n: Node, a: Analysis): (Tensor | undefined)[] | undefined {
  if (n.opType === 'Constant' || (n.subgraphs.length && n.opType !== 'Loop') || n.outputs.length === 0) return undefined;
  if (n.outputs.some((o) => o.isGraphOutput || a.label(o) === 'data')) return undefined;
  // An output whose type already says it is too big to be worth a literal is not computed only to be dropped
  // (a constant float chain of a million elements: the rules compute what they read of it, lazily).
  if (n.outputs.some((o) => o.uses.length && !worthBySize(o, a))) return undefined;
  // a node whose inputs are all literals already, and that only reshapes a big float literal, is left
  const folded = n.outputs.map((o) => (o.uses.length ? a.constValue(o) : undefined));
  if (n.outputs.some((o, i) => o.uses.length && !folded[i])) return undefined;
  const worth = n.outputs.every((o, i) => {
    const t = folded[i];
    if (!t) return true;
    // Folding a corrupt model can give a value that is no literal (dims that are not sizes, NaN in integers).
    return isEncodable(t) && worthFolding(t.dtype, t.data.length, a.label(o));
  });
  return !worth || folded.every((t) => !t) ? undefined : folded;
}

/** Property known-values-folded: the first node the pass would still fold, by the analysis of the model. */
export function foldableNode(model: Model): Node | undefined {
  const a = analysisOf(model);
  return model.graph.nodes.find((n) => foldedOutputs(n, a) !== undefined);
}

export const foldKnownValues: Pass = {
  name: 'fold-known-values',
  inPlace: true,
  // the analysis (labels, shapes, constant folding with its budget) reads the graph in order
  requires: ['sorted'],
  ensures: ['known-values-folded'],
  run(model) {
    const a = analysisOf(model);
    // Which nodes fold is decided first: a value read only by nodes that fold too goes with them, and is never
    // written as a literal (the index chains of an unfold have a dozen such steps).
    const folds = new Map<Node, (Tensor | undefined)[]>();
    for (const n of model.graph.nodes) {
      const folded = foldedOutputs(n, a);
      if (folded) folds.set(n, folded);
    }
    const changed = folds.size > 0;
    const renames: [Value, string][] = [];
    for (const [n, folded] of folds) {
      n.outputs.forEach((o, i) => {
        const t = folded[i];
        if (!t) return;
        if (o.uses.every((u) => folds.has(u.node))) {
          // the name its literal would have had is taken all the same, so that later names do not depend on this
          model.graph.uniqueName(o.name);
          return;
        }
        const init = model.graph.addInitializer(o.name, t);
        o.replaceAllUsesWith(init);
        renames.push([init, o.name]);
      });
    }
    if (changed) model.graph.sweepDeadNodes();
    // the literal takes the name of the value it replaces, once that value is gone
    for (const [init, name] of renames) if (!model.graph.values.has(name) && model.graph.values.get(init.name) === init) model.graph.renameValue(init, name);
    return { changed };
  },
};
