// Identity nodes (torch's clone/contiguous/detach under the dynamo exporter) carry nothing: their readers
// read the input directly.
import type { CanonicalPass } from './pass.js';

export const identities: CanonicalPass = {
  name: 'identities',
  requires: 'nothing',
  ensures: 'no Identity in the top-level graph except where it names a graph output',
  run(model) {
    let changed = false;
    for (const n of [...model.graph.nodes]) {
      if (n.domain !== '' || n.opType !== 'Identity' || !n.inputs[0] || n.outputs.length !== 1) continue;
      const out = n.outputs[0];
      // A graph output keeps its producer: renaming the input onto the output's name would rename a graph input.
      if (out.isGraphOutput) continue;
      out.replaceAllUsesWith(n.inputs[0]);
      model.graph.removeNode(n);
      changed = true;
    }
    return changed;
  },
};
