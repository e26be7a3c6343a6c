// Identity nodes (torch's clone/contiguous/detach under the dynamo exporter) carry nothing: their readers
// read the input directly.
import type { Model, Node } from '../../src/ir/graph.js';
import type { Pass } from '../pipeline.js';

// A graph output keeps its producer: renaming the input onto the output's name would rename a graph input.
function removable(n: Node): boolean {
  return n.domain === '' && n.opType === 'Identity' && !!n.inputs[0] && n.outputs.length === 1 && !n.outputs[0].isGraphOutput;
}

/** Property no-identities: the first Identity the pass would still remove. */
export function removableIdentity(model: Model): Node | undefined {
  return model.graph.nodes.find(removable);
}

export const identities: Pass = {
  name: 'identities',
  inPlace: true,
  requires: ['sorted'],
  ensures: ['no-identities'],
  run(model) {
    let changed = false;
    for (const n of [...model.graph.nodes]) {
      if (!removable(n)) continue;
      n.outputs[0].replaceAllUsesWith(n.inputs[0]!);
      model.graph.removeNode(n);
      changed = true;
    }
    return { changed };
  },
};
