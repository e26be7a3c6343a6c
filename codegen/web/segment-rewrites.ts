// Standard ops of a segment rewritten into equal ones that onnxruntime-web's WebGPU EP runs faster.
//
// GlobalAveragePool -> ReduceMean over the spatial axes (keepdims): the EP's Pool program gives each (sample,
// channel) one invocation that loops over the whole plane, its ReduceMean a workgroup. On ODConv MobileNetV2 the
// routing's pools were 44% of the fused network's GPU time; one pool of 32 x 112 x 112 took 514 ms of GPU time
// as GlobalAveragePool and 42 ms as ReduceMean (144 x 56 x 56: 486 and 109 ms; SwiftShader, ORT's profiler).
import type { Graph, Model, Value, ValueType } from '../../src/ir/graph.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { DataType } from '../../src/onnx/proto.js';

/** Rewrites the segment's GlobalAveragePool nodes of known rank (float); returns how many. */
export function globalPoolsAsReduceMean(m: Model, g: Graph, typeOf: (v: Value) => ValueType | undefined): number {
  const opset = m.opsets.get('') ?? m.opsets.get('ai.onnx') ?? 1;
  let count = 0;
  for (const n of [...g.nodes]) {
    const x = n.inputs[0];
    if (n.opType !== 'GlobalAveragePool' || n.domain !== '' || !x) continue;
    const t = typeOf(x);
    if (!t?.shape || t.shape.length < 3 || (t.elemType ?? DataType.FLOAT) !== DataType.FLOAT) continue;
    const axes = t.shape.slice(2).map((_, i) => i + 2);
    // opset 18 moved ReduceMean's axes from an attribute to an input
    const mean = opset >= 18
      ? g.addNode('ReduceMean', [x, g.addInitializer('pool_axes', makeTensor(DataType.INT64, [axes.length], axes))], 1, { attrs: { keepdims: 1 }, before: n, outputBase: 'pool_mean' })
      : g.addNode('ReduceMean', [x], 1, { attrs: { axes, keepdims: 1 }, before: n, outputBase: 'pool_mean' });
    const y = n.outputs[0], name = y.name;
    y.replaceAllUsesWith(mean.outputs[0]);
    g.removeNode(n);
    g.renameValue(mean.outputs[0], name); // it may be a segment output, read by name
    count++;
  }
  return count;
}
