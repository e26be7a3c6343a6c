// A CondConv as torch.onnx.export writes it in the grouped-conv trick, for the rule tests: routing
// sigmoid(Gemm(GAP(x))) over E expert kernels, mixed per sample, the conv over the whole batch done as one conv
// with group = batch. The sizes are small (C 4 -> M 8, E 3, 3x3, 6x6) so the numeric checks run in milliseconds.
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './model.js';

export const CONDCONV = { C: 4, M: 8, E: 3, K: 3, H: 6 } as const;

/** What follows the CondConv's output `y0`, ending in `y`: nodes and their initializers. */
export type Tail = { nodes: ModelSpec['nodes']; initializers?: ModelSpec['initializers']; outputs?: string[] };

export interface CondConvOptions {
  /** The batch (2 unless timm's batch-1 read-back is asked for). */
  batch?: number;
  /** The "experts" computed from the input by a Gemm head: no longer a mixture of constants (the rule refuses it). */
  dataExperts?: boolean;
  /** Batch 1 read back as timm does: Transpose [1, M, H, W] -> [M, 1, H, W], then Reshape to [1, M, H, W]. */
  timmReadback?: boolean;
  /** What follows the conv. With a tail the conv's output is `y0`, and the block's shortcut `skip` (a plain 1x1
   *  conv of x to M channels) is there for a residual; without one the conv's output is the graph output `y`. */
  tail?: Tail;
}

const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + seed) * 0.5);
const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v }) as never;

export function groupedCondConv(opts: CondConvOptions = {}): ModelSpec {
  const { C, M, E, K, H } = CONDCONV;
  const N = opts.timmReadback ? 1 : (opts.batch ?? 2);
  const out = opts.tail ? 'y0' : 'y';
  const transB = { name: 'transB', type: 2, i: 1 } as never;
  const nodes = [
    node('GlobalAveragePool', ['x'], ['pooled']),
    node('Flatten', ['pooled'], ['flat']),
    node('Gemm', ['flat', 'route_w', 'route_b'], ['logits'], { attrs: [transB] }),
    node('Sigmoid', ['logits'], ['r']),
  ];
  if (opts.dataExperts) {
    // the summed product then has two data-dependent factors
    nodes.push(
      node('Gemm', ['flat', 'expert_head'], ['expert_flat'], { attrs: [transB] }),
      node('Reshape', ['expert_flat', 'experts_shape'], ['experts_data']),
      node('Unsqueeze', ['r', 'axis2'], ['r3']),
      node('Mul', ['r3', 'experts_data'], ['mixed']),
      node('ReduceSum', ['mixed', 'axis1'], ['w_flat'], { attrs: [{ name: 'keepdims', type: 2, i: 0 } as never] }),
    );
  } else {
    nodes.push(node('MatMul', ['r', 'experts'], ['w_flat']));
  }
  nodes.push(
    node('Reshape', ['w_flat', 'w_shape'], ['w']),
    node('Reshape', ['x', 'x_shape'], ['x1']),
    node('Conv', ['x1', 'w'], ['y1'], { attrs: [{ name: 'group', type: 2, i: N } as never, ints('pads', [1, 1, 1, 1]), ints('kernel_shape', [K, K])] }),
    ...(opts.timmReadback
      ? [node('Transpose', ['y1'], ['y1t'], { attrs: [ints('perm', [1, 0, 2, 3])] }), node('Reshape', ['y1t', 'y_shape'], [out])]
      : [node('Reshape', ['y1', 'y_shape'], [out])]),
  );
  if (opts.tail) nodes.push(node('Conv', ['x', 'skip_w'], ['skip'], { attrs: [ints('kernel_shape', [1, 1])] }), ...opts.tail.nodes);
  const outputs = opts.tail ? (opts.tail.outputs ?? ['y']).map((o) => valueInfo(o, DataType.FLOAT)) : [valueInfo('y', DataType.FLOAT, [N, M, H, H])];
  return {
    opset: 13,
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs,
    initializers: [
      tensor('route_w', DataType.FLOAT, [E, C], f32Bytes(values(E * C, 1))),
      tensor('route_b', DataType.FLOAT, [E], f32Bytes(values(E, 2))),
      tensor('experts', DataType.FLOAT, [E, M * C * K * K], f32Bytes(values(E * M * C * K * K, 3))),
      ...(opts.dataExperts
        ? [
            tensor('expert_head', DataType.FLOAT, [E * M * C * K * K, C], f32Bytes(values(E * M * C * K * K * C, 4))),
            tensorI64('experts_shape', [3], [N, E, M * C * K * K]),
            tensorI64('axis1', [1], [1]),
            tensorI64('axis2', [1], [2]),
          ]
        : []),
      ...(opts.tail ? [tensor('skip_w', DataType.FLOAT, [M, C, 1, 1], f32Bytes(values(M * C, 5)))] : []),
      tensorI64('w_shape', [4], [N * M, C, K, K]),
      tensorI64('x_shape', [4], [1, N * C, H, H]),
      tensorI64('y_shape', [4], [N, M, H, H]),
      ...(opts.tail?.initializers ?? []),
    ],
  };
}
