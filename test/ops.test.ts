// The op layer (ops/): attribute resolution and checks, shape functions with symbolic dims, the specialisation key,
// and docs/ops.md generated from it.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { mulDim } from '../src/analysis/dims.js';
import { describeOp, F32_MAX, FUSED_OP_TYPES, OP_DEFINITIONS, OpDescError, outputShape, resolveAttributes, specializationKey, SPECIALIZING_ATTRIBUTES } from '../ops/index.js';
import { withReference } from '../ops/reference.js';
import { packageRoot } from '../codegen/ort/paths.js';

test('defaults are filled in for the spatial rank, with 2r pads', (t) => {
  for (const r of [1, 2, 3]) {
    const v = resolveAttributes('DynamicConv', r, {});
    t.deepEqual(v.strides, new Array(r).fill(1));
    t.deepEqual(v.pads, new Array(2 * r).fill(0));
    t.deepEqual(v.dilations, new Array(r).fill(1));
    t.is(v.group, 1);
    t.is(v.transpose, 0);
  }
  const m = resolveAttributes('ModulatedConv', 2, {});
  t.is(m.demodulate, 1);
  t.is(m.epsilon, 1e-8);
  t.is(resolveAttributes('PixelConv', 2, { kernel_shape: [3, 3] }).upsample, 1);
});

test('every bad attribute is named in the error', (t) => {
  const bad: [Parameters<typeof resolveAttributes>, RegExp][] = [
    [['DynamicConv', 2, { strides: [1] }], /strides has 1 values, expected 2/],
    [['DynamicConv', 2, { pads: [1, 1] }], /pads has 2 values, expected 4/],
    [['DynamicConv', 2, { strides: [0, 1] }], /strides must be >= 1/],
    [['DynamicConv', 2, { pads: [0, 0, -1, 0] }], /pads must be >= 0/],
    [['MixtureConv', 2, { group: 0 }], /group must be a positive integer/],
    [['MixtureConv', 2, { group: [2] }], /group must be a single value/],
    [['ModulatedConv', 1, { demodulate: 2 }], /demodulate must be 0 or 1/],
    [['ModulatedConv', 1, { epsilon: Number.NaN }], /epsilon must be a finite number/],
    [['PixelConv', 2, {}], /kernel_shape is required/],
    [['PixelConv', 2, { kernel_shape: [3, 0] }], /kernel_shape must be >= 1/],
    [['PixelConv', 2, { kernel_shape: [3, 3], transpose: 1 }], /PixelConv has no transpose form/],
    [['PixelConv', 2, { kernel_shape: [3, 3], upsample: 1.5 }], /upsample must be an integer/],
    [['DynamicConv', 4, {}], /spatial rank 4 is not supported/],
  ];
  for (const [args, msg] of bad) t.throws(() => resolveAttributes(...args), { instanceOf: OpDescError, message: msg }, JSON.stringify(args));
});

test('shape functions: conv, transpose, groups, symbols kept at stride 1 with same padding, reasons when inputs do not fit', (t) => {
  const dyn = describeOp('DynamicConv', 2, { pads: [1, 1, 1, 1], group: 2 });
  t.deepEqual(outputShape(dyn, [['N', 8, 'H', 'W'], ['N', 6, 4, 3, 3], ['N', 6]], mulDim), ['N', 6, 'H', 'W']);
  t.deepEqual(outputShape(dyn, [[2, 8, 5, 7], [2, 6, 4, 3, 3], [6]]), [2, 6, 5, 7]);
  t.regex(outputShape(dyn, [[2, 8, 5, 7], [2, 6, 3, 3, 3], [6]]) as string, /8 channels but the weight has 3 per group x group 2/);
  t.regex(outputShape(dyn, [[2, 8, 5, 7], [3, 6, 4, 3, 3], [6]]) as string, /W holds 3 samples but X has 2/);
  t.regex(outputShape(dyn, [[2, 8, 5], [2, 6, 4, 3, 3], [6]]) as string, /X has rank 3, expected 4/);
  const tr = describeOp('MixtureConv', 1, { transpose: 1, strides: [2], pads: [1, 0], output_padding: [1], group: 2 });
  // ConvTranspose: 2*(9-1) + 1 + (3-1) + 1 - 1 - 0 = 19 outputs; M = (M/g) * g = 3 * 2
  t.deepEqual(outputShape(tr, [[2, 4, 9], [2, 5], [5, 4, 3, 3], [5, 6]]), [2, 6, 19]);
  t.regex(outputShape(tr, [[2, 4, 9], [2, 4], [5, 4, 3, 3], [5, 6]]) as string, /5 experts but R routes over 4/);
  const pix = describeOp('PixelConv', 2, { kernel_shape: [5, 5], pads: [2, 2, 2, 2], upsample: 2 });
  t.deepEqual(outputShape(pix, [['N', 16, 'H', 'W'], ['N', 1, 25, undefined, undefined]], mulDim), ['N', 16, '2*H', '2*W']);
  t.deepEqual(outputShape(pix, [[1, 16, 6, 7], [1, 2, 25, 12, 14]]), [1, 16, 12, 14]);
  t.regex(outputShape(pix, [[1, 16, 6, 7], [1, 3, 25, 12, 14]]) as string, /3 kernel groups do not divide X's 16 channels/);
  t.regex(outputShape(pix, [[1, 16, 6, 7], [1, 2, 9, 12, 14]]) as string, /9 taps per position, expected 25/);
  t.regex(outputShape(pix, [[1, 16, 6, 7], [1, 2, 25, 6, 7]]) as string, /6 positions along spatial axis 0, expected 12/);
  const empty = describeOp('DynamicConv', 1, {});
  t.regex(outputShape(empty, [[1, 2, 2], [1, 3, 2, 3], [3]]) as string, /output would be empty/);
});

test('the specialisation key holds the op, the rank and every attribute the definitions mark as specialising, and nothing else', (t) => {
  const a = describeOp('ModulatedConv', 2, { group: 2, demodulate: 0, epsilon: 1e-5, strides: [2, 2] });
  const key = specializationKey(a);
  t.is(key, specializationKey(describeOp('ModulatedConv', 2, { group: 2, demodulate: 0, epsilon: 1e-5, pads: [1, 1, 1, 1] })), 'sizes and run-time attributes are not in it');
  for (const changed of [{ group: 1 }, { demodulate: 1 }, { epsilon: 1e-8 }, { transpose: 1 }]) {
    t.not(specializationKey(describeOp('ModulatedConv', 2, { group: 2, demodulate: 0, epsilon: 1e-5, ...changed })), key, JSON.stringify(changed));
  }
  t.not(specializationKey(describeOp('ModulatedConv', 1, { group: 2, demodulate: 0, epsilon: 1e-5 })), key, 'the rank');
  t.not(specializationKey(describeOp('PixelConv', 2, { kernel_shape: [3, 3] })), specializationKey(describeOp('PixelConv', 2, { kernel_shape: [3, 5] })));
  const declared = FUSED_OP_TYPES.flatMap((op) => OP_DEFINITIONS[op].attributes.filter((s) => s.specializes).map((s) => s.name));
  t.deepEqual([...new Set(declared)].sort(), [...SPECIALIZING_ATTRIBUTES].sort());
});

test('docs/ops.md holds the reference rendered from the op definitions (run scripts/gen-ops-doc.mjs after a change)', (t) => {
  const page = readFileSync(join(packageRoot(), 'docs', 'ops.md'), 'utf8');
  t.is(withReference(page), page);
  for (const op of FUSED_OP_TYPES) for (const a of OP_DEFINITIONS[op].attributes) t.true(page.includes(`| \`${a.name}\` |`), `${op}.${a.name}`);
});

test('the epilogue: its inputs follow the op\'s own as its attributes ask, their shapes are checked against Y, and it specialises code', (t) => {
  for (const op of FUSED_OP_TYPES) {
    const base = op === 'PixelConv' || op === 'PixelConvHead' ? { kernel_shape: [3, 3] } : {};
    const own = describeOp(op, 2, base).inputNames;
    t.false(own.some((n) => ['OS', 'OB', 'Z'].includes(n)), op);
    t.deepEqual(describeOp(op, 2, { ...base, affine: 1 }).inputNames, [...own, 'OS', 'OB'], op);
    t.deepEqual(describeOp(op, 2, { ...base, residual: 1 }).inputNames, [...own, 'Z'], op);
    t.deepEqual(describeOp(op, 2, { ...base, affine: 1, residual: 1, activation: 3 }).epilogue, { affine: true, residual: true, activation: 'silu', min: -F32_MAX, max: F32_MAX }, op);
    t.not(specializationKey(describeOp(op, 2, { ...base, activation: 1 })), specializationKey(describeOp(op, 2, { ...base, activation: 2 })), op);
  }
  const mix = (raw: Record<string, number>) => describeOp('MixtureConv', 2, { pads: [1, 1, 1, 1], ...raw });
  const own = [[2, 8, 5, 7], [2, 3], [3, 6, 8, 3, 3], [3, 6]];
  t.deepEqual(outputShape(mix({ affine: 1, residual: 1 }), [...own, [6], [6], [2, 6, 5, 7]]), [2, 6, 5, 7]);
  t.regex(outputShape(mix({ affine: 1 }), [...own, [5], [6]]) as string, /OS has 5 values, expected one per output channel \(6\)/);
  t.regex(outputShape(mix({ residual: 1 }), [...own, [2, 6, 5, 1]]) as string, /Z has 1 along axis 3, Y 7: Z must have Y's shape/);
  t.regex(outputShape(mix({ residual: 1 }), [...own, [6]]) as string, /Z has rank 1, expected 4/);
  t.regex(outputShape(mix({ affine: 1 }), own) as string, /input OS is missing/);
  t.throws(() => resolveAttributes('MixtureConv', 2, { activation: 6 }), { message: /activation must be 0 to 5/ });
  t.throws(() => resolveAttributes('PixelConv', 2, { kernel_shape: [3, 3], affine: 2 }), { message: /affine must be 0 or 1/ });
});
