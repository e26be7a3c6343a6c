// The routing-pool pass, after the rules: a GlobalAveragePool over a value that a com.dynconv node reads or
// writes becomes the ReduceMean over the spatial axes that computes the same thing. Why: ONNX Runtime's CPU
// optimiser runs GlobalAveragePool in its blocked (NCHWc) layout, and a value our ops read or write is plain
// NCHW in memory, so the pool alone costs a reorder of the whole activation (measured on the depthwise
// CondConv k5 layer: 1.46 ms of reorder for a 0.88 ms pool; with ReduceMean the layer goes from 1.12x to 0.92x
// its floor). ReduceMean reads NCHW as it is; where ORT-web's layout pass runs NHWC, its transpose optimiser
// moves the reduction axes instead. Only pools on fused ops' values change: elsewhere ORT's choice stands.
import { isDynconvDomain } from '../ops/index.js';
import type { Model, Node, Value } from '../src/ir/graph.js';
import { makeTensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';
import { factsOfFused, type FusedNodes } from './fused-facts.js';
import type { Pass } from './pipeline.js';

/** Whether a com.dynconv node computes v or reads it. */
function touchedByFusedOp(v: Value): boolean {
  if (v.producer && isDynconvDomain(v.producer.domain)) return true;
  return v.uses.some((u) => u.index >= 0 && isDynconvDomain(u.node.domain));
}

/** The pools to rewrite, each with the rank of its input (known, at least 3). */
function routingPools(model: Model, fused: FusedNodes): { pool: Node; rank: number }[] {
  // The rank comes from the analysis of the model before the rewrites (a forwarded value has its original's
  // facts) or from the value's declared type: no new analysis is built for this.
  const facts = factsOfFused(fused);
  const out: { pool: Node; rank: number }[] = [];
  for (const n of model.graph.nodes) {
    const x = n.inputs[0];
    if (n.opType !== 'GlobalAveragePool' || n.domain !== '' || !x || n.outputs.length !== 1) continue;
    const rank = (facts.shape(x) ?? x.type?.shape)?.length;
    if (rank !== undefined && rank >= 3 && touchedByFusedOp(x)) out.push({ pool: n, rank });
  }
  return out;
}

/** Replaces each routing pool by ReduceMean(axes 2..rank-1, keepdims 1), keeping its output's name. */
function rewritePools(model: Model, fused: FusedNodes): number {
  const pools = routingPools(model, fused);
  const graph = model.graph;
  const opset = model.opsets.get('') ?? 0;
  for (const { pool, rank } of pools) {
    const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
    // From opset 18 on ReduceMean takes its axes as an input; before, as an attribute.
    const inputs = opset >= 18 ? [pool.inputs[0], graph.addInitializer('dynconv_pool_axes', makeTensor(DataType.INT64, [axes.length], axes))] : [pool.inputs[0]];
    const attrs = opset >= 18 ? { keepdims: 1 } : { axes, keepdims: 1 };
    const mean = graph.addNode('ReduceMean', inputs, 1, { name: pool.name || 'ReduceMean', attrs, before: pool, outputBase: 'dynconv_pooled' });
    const old = pool.outputs[0];
    const name = old.name;
    const type = old.type;
    old.replaceAllUsesWith(mean.outputs[0]);
    graph.removeNode(pool);
    // A graph output was renamed onto the new value already; anything else takes the pool's name back.
    if (mean.outputs[0].name !== name) graph.renameValue(mean.outputs[0], name);
    mean.outputs[0].type = type;
  }
  return pools.length;
}

/** The pass, after the rules (it reads their fused nodes' analysis, of the model before the rewrites). */
export function routingPoolPass(fused: () => FusedNodes): Pass {
  return { name: 'routing-pool', inPlace: true, requires: [], ensures: [], run: (model) => ({ changed: rewritePools(model, fused()) > 0 }) };
}
