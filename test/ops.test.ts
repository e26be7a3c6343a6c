// The op layer (ops/): attribute resolution and checks, shape functions with symbolic dims, the specialisation key,
// and docs/ops.md generated from it.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { mulDim } from '../src/analysis/dims.js';
import { describeOp, FUSED_OP_TYPES, OP_DEFINITIONS, OpDescError, outputShape, resolveAttributes, specializationKey, SPECIALIZING_ATTRIBUTES } from '../ops/index.js';
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
