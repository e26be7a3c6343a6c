// Builds the nodes of a rewrite in front of the site's anchor, so the graph stays in order.
import type { AttrValue, Graph, Node, Value } from '../src/ir/graph.js';
import { makeTensor, type Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';

export class RewriteBuilder {
  constructor(
    readonly graph: Graph,
    /** New nodes go before this one. */
    readonly before: Node,
    /** The rule doing the rewrite: recorded on the fused node (provenance). */
    readonly rule: string,
  ) {}

  node(opType: string, inputs: (Value | null)[], opts: { domain?: string; name?: string; attrs?: Record<string, AttrValue>; outputBase?: string; docString?: string } = {}): Node {
    return this.graph.addNode(opType, inputs, 1, { ...opts, before: this.before });
  }

  /** One node, its single output. */
  op(opType: string, inputs: (Value | null)[], attrs?: Record<string, AttrValue>, outputBase?: string): Value {
    return this.node(opType, inputs, { attrs, outputBase }).outputs[0];
  }

  initializer(base: string, t: Tensor): Value {
    return this.graph.addInitializer(base, t);
  }

  ints(values: number[], base = 'dynconv_ints'): Value {
    return this.initializer(base, makeTensor(DataType.INT64, [values.length], values));
  }

  /** Reshape(v, shape) with a constant target. */
  reshape(v: Value, shape: number[]): Value {
    return this.op('Reshape', [v, this.ints(shape, 'dynconv_shape')], undefined, `${v.name}_reshaped`);
  }
}
