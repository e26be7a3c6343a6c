// Constant nodes in their attribute forms (value_int, value_ints, value_float, value_floats: what onnxscript
// writes) become initializers, so every rule sees one form of a literal.
import { DataType } from '../../src/onnx/proto.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import type { Model, Node } from '../../src/ir/graph.js';
import type { Pass } from '../pipeline.js';

function literal(n: Node): Tensor | undefined {
  const ints = n.attrInts('value_ints');
  if (ints) return makeTensor(DataType.INT64, [ints.length], ints);
  if (n.attr('value_int')) return makeTensor(DataType.INT64, [], [n.attrInt('value_int', 0)]);
  const f = n.attr('value_float');
  if (f) return makeTensor(DataType.FLOAT, [], [f.f ?? 0]);
  const fs = n.attr('value_floats');
  if (fs) return makeTensor(DataType.FLOAT, [fs.floats?.length ?? 0], fs.floats ?? []);
  return undefined;
}

/** A Constant in an attribute form whose value can become an initializer (not one that names a graph output). */
function convertible(n: Node): Tensor | undefined {
  if (n.domain !== '' || n.opType !== 'Constant' || n.outputs.length !== 1 || n.outputs[0].isGraphOutput) return undefined;
  return literal(n);
}

/** Property no-constant-attribute-forms: the first Constant the pass would still convert. */
export function attributeFormConstant(model: Model): Node | undefined {
  return model.graph.nodes.find((n) => convertible(n) !== undefined);
}

export const constantForms: Pass = {
  name: 'constant-forms',
  inPlace: true,
  requires: ['sorted'],
  ensures: ['no-constant-attribute-forms'],
  run(model) {
    let changed = false;
    for (const n of [...model.graph.nodes]) {
      const t = convertible(n);
      if (!t) continue;
      const init = model.graph.addInitializer(n.outputs[0].name, t);
      n.outputs[0].replaceAllUsesWith(init);
      model.graph.removeNode(n);
      changed = true;
    }
    return { changed };
  },
};
