// Builds the nodes of a rewrite in front of the site's anchor, so the graph stays in order.
import { DYNCONV_DOMAIN } from '../ops/index.js';
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
    /** The domain of the fused node: com.dynconv, or the one of a further function body of its op (ops/index.ts). */
    readonly domain: string = DYNCONV_DOMAIN,
    /**
     * Values replaced by earlier rewrites of the same run, and what replaced them: sites are matched before any
     * is rewritten, so a later site may hold a value an earlier one replaced (one block's output read by the next).
     */
    readonly forwarded: Map<Value, Value> = new Map(),
  ) {}

  /** The value that stands for v now. */
  current(v: Value): Value {
    for (let i = 0; i < 1024 && this.forwarded.has(v); i++) v = this.forwarded.get(v)!;
    return v;
  }

  /** Routes every reader of `old` to `v`, also the rewrites still to come. */
  replace(old: Value, v: Value): void {
    old.replaceAllUsesWith(v);
    this.forwarded.set(old, v);
  }

  node(opType: string, inputs: (Value | null)[], opts: { domain?: string; name?: string; attrs?: Record<string, AttrValue>; outputBase?: string; docString?: string } = {}): Node {
    return this.graph.addNode(opType, inputs.map((v) => v && this.current(v)), 1, { ...opts, before: this.before });
  }

  /** One node, its single output. */
  op(opType: string, inputs: (Value | null)[], attrs?: Record<string, AttrValue>, outputBase?: string): Value {
    return this.node(opType, inputs, { attrs, outputBase }).outputs[0];
  }

  initializer(base: string, t: Tensor): Value {
    return this.graph.addInitializer(base, t);
  }

  /** An initializer of `source`'s elements in the shape `dims`, its bytes shared when they can be (Graph.addInitializerView), else `t()`'s. */
  initializerOf(base: string, source: Value | undefined, dims: number[], t: () => Tensor): Value {
    return (source && this.graph.addInitializerView(base, source, dims)) ?? this.graph.addInitializer(base, { ...t(), dims });
  }

  ints(values: number[], base = 'dynconv_ints'): Value {
    return this.initializer(base, makeTensor(DataType.INT64, [values.length], values));
  }

  /** Reshape(v, shape) with a constant target. */
  reshape(v: Value, shape: number[]): Value {
    return this.op('Reshape', [v, this.ints(shape, 'dynconv_shape')], undefined, `${v.name}_reshaped`);
  }
}
