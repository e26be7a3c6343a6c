// Head absorption for per-pixel sites: when the kernel of a PixelConv is the output of a plain 1x1 conv (the last
// layer of the kernel generator), the site becomes PixelConvHead(X, F, HW, HB), which computes the taps from
// that conv's input and weights inside the op and never writes the kernel tensor (b x G x KK x *O).
import type { Analysis } from '../src/analysis/analyze.js';
import { isStatic } from '../src/analysis/dims.js';
import type { Node, Value } from '../src/ir/graph.js';
import { makeTensor, numel } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';
import { inverse, type PixelParams } from './pixel-layout.js';
import type { RewriteBuilder } from './rewrite-builder.js';

/** The last 1x1 conv of a kernel generator, when the op can compute the kernel from its input instead. */
export interface KernelHead {
  conv: Node;
  /** The conv's input: features [N, Cf, *O]. */
  features: Value;
  weight: Value;
  bias?: Value;
  /** G * KK output channels, Cf input channels. */
  M: number;
  Cf: number;
  /** Shape nodes reading the kernel root (dynamic exports take the kernel's sizes from it). */
  shapeUses: Node[];
}

/**
 * The kernel root as the output of a plain 1x1 conv (stride 1, no padding, one group, constant weights) whose
 * output channels are K's (group, tap) in order, read only by the site (the conv is in its generator) or by
 * Shape nodes, with no upsampling. `a` is the analysis at probe sizes, the one `p` was inferred at.
 */
export function kernelHead(kRoot: Value, p: PixelParams, generator: Node[], structural: Analysis, a: Analysis): KernelHead | undefined {
  const conv = kRoot.producer;
  if (!conv || conv.opType !== 'Conv' || conv.domain !== '' || p.upsample !== 1) return undefined;
  const shapeUses = kRoot.uses.filter((u) => u.node.opType === 'Shape' && u.node.domain === '' && u.node.attrInt('start') === undefined && u.node.attrInt('end') === undefined).map((u) => u.node);
  if (kRoot.isGraphOutput || kRoot.uses.some((u) => !generator.includes(u.node) && !shapeUses.includes(u.node))) return undefined;
  const [features, weight, bias] = conv.inputs;
  if (!features || !weight || structural.label(weight) !== 'constant' || (bias && structural.label(bias) !== 'constant')) return undefined;
  const r = p.kernel.length;
  const all = (v: number[] | undefined, n: number, want: number) => v === undefined || (v.length === n && v.every((x) => x === want));
  const autoPad = conv.attrString('auto_pad');
  if (conv.attrInt('group', 1) !== 1 || !all(conv.attrInts('strides'), r, 1) || !all(conv.attrInts('dilations'), r, 1) || !all(conv.attrInts('pads'), 2 * r, 0) || !all(conv.attrInts('kernel_shape'), r, 1) || (autoPad !== undefined && autoPad !== 'NOTSET')) return undefined;
  const w = structural.shape(weight);
  if (!isStatic(w) || w.length !== r + 2 || w.slice(2).some((d) => d !== 1)) return undefined;
  const KK = numel(p.kernel), M = w[0], Cf = w[1];
  if (M !== p.groups * KK) return undefined;
  const b = bias ? structural.shape(bias) : undefined;
  if (bias && (!isStatic(b) || b.length !== 1 || b[0] !== M)) return undefined;
  // K's memory must be [N, G, KK, *O] in row-major order (axes of size 1 have no stride to check).
  const kDims = a.shape(kRoot);
  if (!isStatic(kDims) || kDims.length !== r + 2 || kDims[0] !== p.N || kDims[1] !== M || kDims.slice(2).some((d, i) => d !== p.O[i])) return undefined;
  const Oprod = numel(p.O);
  const rowMajor = (dims: number[], scale: number) => dims.map((_, i) => numel(dims.slice(i + 1)) * scale);
  const want = [M * Oprod, KK * Oprod, ...rowMajor(p.kernel, Oprod), ...rowMajor(p.O, 1)];
  const sizes = [p.N, p.groups, ...p.kernel, ...p.O];
  const got = [p.kStrides.n, p.kStrides.g, ...p.kStrides.a, ...p.kStrides.o];
  if (sizes.some((size, i) => size > 1 && got[i] !== want[i])) return undefined;
  return { conv, features, weight, bias: bias ?? undefined, M, Cf, shapeUses };
}

export interface PixelHeadSite { node: Node; xRoot: Value; xPerm: number[]; head: KernelHead; p: PixelParams; replaced: Value; yPerm: number[] }

export function rewritePixelHead({ node, xRoot, xPerm, head, p, replaced, yPerm }: PixelHeadSite, b: RewriteBuilder): Node {
  const identity = (perm: number[]) => perm.every((q, i) => q === i);
  const x = identity(xPerm) ? xRoot : b.op('Transpose', [xRoot], { perm: xPerm });
  const hw = b.op('Reshape', [head.weight, b.ints([head.M, head.Cf])], undefined, `${head.weight.name}_head`);
  const hb = head.bias ?? b.initializer('dynconv_zero_bias', makeTensor(DataType.FLOAT, [head.M], new Float32Array(head.M)));
  if (head.shapeUses.length) {
    // Shape(kernel root) = [N, M, *O] = Shape(F) with M on axis 1, computed where the first Shape node was (its
    // readers come before the site: the graph stays in order, so the sweep removes what dies in one pass).
    const first = head.shapeUses.length === 1 ? head.shapeUses[0] : b.graph.nodes.find((n) => head.shapeUses.includes(n)) ?? head.shapeUses[0];
    const op = (type: string, inputs: Value[], attrs?: Record<string, number>) => b.graph.addNode(type, inputs, 1, { before: first, attrs }).outputs[0];
    const fShape = op('Shape', [head.features]);
    const part = (from: number, to: number) => op('Slice', [fShape, b.ints([from]), b.ints([to]), b.ints([0])]);
    const kShape = op('Concat', [part(0, 1), b.ints([head.M]), part(2, 2 ** 62)], { axis: 0 });
    for (const s of head.shapeUses) s.outputs[0].replaceAllUsesWith(kShape);
  }
  const fused = b.node('PixelConvHead', [x, head.features, hw, hb], {
    domain: b.domain, // com.dynconv, or the domain of this site's own function body (opset 11: one per specialisation)
    name: 'dynconv_PixelConvHead',
    outputBase: `${replaced.name}_fused`,
    docString: `dynconv: per-pixel site fused by rule ${b.rule} with its kernel head absorbed; replaces the contraction ${JSON.stringify(node.name)}, its unfold and the kernel head ${JSON.stringify(head.conv.name)}`,
    attrs: { kernel_shape: p.kernel, strides: p.strides, pads: p.pads, dilations: p.dilations, upsample: p.upsample },
  });
  let out = fused.outputs[0];
  if (!identity(yPerm)) out = b.op('Transpose', [out], { perm: inverse(yPerm) });
  b.replace(replaced, out);
  return fused;
}
