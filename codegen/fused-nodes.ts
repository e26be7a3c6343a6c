// The fused nodes of a model, each with its op description: what both back ends generate code from.
import type { Analysis } from '../src/analysis/analyze.js';
import { analysisOf } from '../src/analysis/cache.js';
import { badInput } from '../src/errors.js';
import type { Model, Node } from '../src/ir/graph.js';
import { describeOp, DYNCONV_DOMAIN, FUSED_OP_TYPES, isDynconvDomain, OP_INPUTS, OpDescError, type FusedOpType, type OpDesc } from '../ops/index.js';

export interface FusedNode {
  /** A safe identifier ([A-Za-z0-9_]) for file and symbol names: never derived from the model's names. */
  id: string;
  node: Node;
  desc: OpDesc;
}

export function fusedNodes(model: Model, analysis: Analysis = analysisOf(model)): FusedNode[] {
  const nodes: FusedNode[] = [];
  let k = 0;
  for (const n of model.graph.nodes) {
    if (!isDynconvDomain(n.domain)) continue; // com.dynconv, or a domain of a further function body (ops/index.ts)
    if (!FUSED_OP_TYPES.includes(n.opType as FusedOpType)) throw badInput(model.source, `${n.label} is not an op of the ${DYNCONV_DOMAIN} set (${FUSED_OP_TYPES.join(', ')})`);
    // Every input of the op is required, and the epilogue's its attributes ask for (docs/ops.md): the back ends
    // index them by position.
    const own = OP_INPUTS[n.opType as FusedOpType];
    const given = n.inputs.filter((v) => v).length;
    if (n.inputs.length < own.length || given < own.length) throw badInput(model.source, `${n.label} has ${given} of its inputs; ${n.opType} takes ${own.length} (${own.join(', ')}), all required`);
    if (n.outputs.length !== 1 || !n.outputs[0]) throw badInput(model.source, `${n.label} has ${n.outputs.length} outputs; ${n.opType} has one (Y)`);
    const xShape = analysis.shape(n.inputs[0]);
    if (!xShape) throw badInput(model.source, `${n.label}: the rank of its input X is unknown`);
    let desc: OpDesc;
    try {
      desc = describeOp(n.opType as FusedOpType, xShape.length - 2, n.numericAttributes());
    } catch (e) {
      if (e instanceof OpDescError) throw badInput(model.source, `${n.label}: ${e.message}`);
      throw e;
    }
    const want = desc.inputNames;
    if (n.inputs.length !== want.length || given !== want.length) throw badInput(model.source, `${n.label} has ${given} inputs; ${n.opType} with these attributes takes ${want.length} (${want.join(', ')}), all required`);
    nodes.push({ id: `op${String(k++).padStart(3, '0')}_${n.opType}`, node: n, desc });
  }
  return nodes;
}
