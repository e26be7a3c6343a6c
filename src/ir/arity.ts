// How many inputs the ONNX ops that dynconv reasons about take, over every opset version: the IR refuses a
// node outside these bounds, or one missing a required input (an empty name where an input must be), so
// the analyses and matchers can rely on the inputs an op always has.
import { badInput } from '../errors.js';
import type { Node } from './graph.js';

/** [required inputs, most inputs]; Infinity for variadic ops. */
const ARITY: Record<string, [number, number]> = {};
const set = (ops: string, min: number, max: number) => { for (const op of ops.split(' ')) ARITY[op] = [min, max]; };

set('Relu Sigmoid Tanh Neg Abs Sqrt Exp Log Reciprocal Floor Ceil Identity Softmax LogSoftmax Erf Not Sign Sin Cos Round Softplus Mish Gelu Selu Elu LeakyRelu HardSigmoid HardSwish Transpose Flatten Shape Size DepthToSpace SpaceToDepth GlobalAveragePool GlobalMaxPool NonZero EyeLike Cast ConstantOfShape LRN ArgMax ArgMin AveragePool', 1, 1);
set('Add Sub Mul Div Pow Equal Less Greater LessOrEqual GreaterOrEqual And Or Xor Mod MatMul PRelu Gather Expand', 2, 2);
set('Max Min Sum Mean Concat Einsum', 1, Infinity);
set('Where Range', 3, 3);
set('Reshape Squeeze Unsqueeze Upsample Split', 1, 2); // the second input replaced an attribute in later opsets
set('ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceSumSquare ReduceL1 ReduceL2 ReduceLogSumExp', 1, 2);
set('Tile', 2, 3);
set('Slice', 1, 5);
set('Pad', 1, 4);
set('Resize', 1, 4);
set('Clip Dropout', 1, 3);
set('MaxPool', 1, 1);
set('Conv ConvTranspose Gemm QuantizeLinear DequantizeLinear LayerNormalization', 2, 3);
set('InstanceNormalization', 3, 3);
set('BatchNormalization', 5, 5);
set('Constant', 0, 0);

/** Refuses a default-domain node whose inputs the op cannot have, or with no output. */
export function checkArity(node: Node, source: string): void {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return;
  const arity = ARITY[node.opType];
  if (!arity) return;
  const [min, max] = arity;
  const given = node.inputs.length;
  if (given < min || given > max) {
    const expect = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    throw badInput(source, `${node.label} has ${given} input${given === 1 ? '' : 's'}; ${node.opType} takes ${expect}`);
  }
  const missing = node.inputs.findIndex((v, i) => i < min && !v);
  if (missing >= 0) throw badInput(source, `${node.label}: input ${missing} is required but empty`);
  if (node.outputs.length === 0) throw badInput(source, `${node.label} has no output`);
}
