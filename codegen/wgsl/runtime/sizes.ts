// The sizes of one run from the feeds' dims: checked against the op (each input named in the error), the output
// dims from the op's own shape function (ops/), and what the kernels derive from them.
import { epilogueOf, outputShape, type OpDesc } from '../../../ops/index.js';
import type { NodePlan } from './plan.js';
import { prod } from './util.js';

export interface Sizes {
  N: number;
  C: number;
  M: number;
  G: number;
  Cg: number;
  Mg: number;
  E: number;
  D: number[];
  O: number[];
  K: number[];
  /** PixelConv, PixelConvHead: base output size */
  Ob?: number[];
  biasPerSample: boolean;
  outDims: number[];
}

/**
 * The op's output dims (ops/ shape function) for these dims of its own inputs, in the op's input order; the
 * epilogue's inputs (after them) are checked with the dims given (`all`).
 */
function opOutput(plan: NodePlan, all: Record<string, number[]>, dims: (readonly (number | undefined)[])[]): number[] {
  const desc: OpDesc = { op: plan.op, attrs: plan.attrs, values: plan.values, epilogue: epilogueOf(plan.values), inputNames: plan.opInputs };
  const y = outputShape(desc, [...dims, ...plan.opInputs.slice(dims.length).map((n) => all[n] ?? [])]);
  if (typeof y === 'string') fail(plan, /empty/.test(y) ? `empty output: ${y}` : y);
  return y as number[];
}

function fail(plan: NodePlan, msg: string): never {
  throw new Error(`dynconv ${plan.op} node ${JSON.stringify(plan.nodeName)}: ${msg}`);
}

function eqDims(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function computeSizes(plan: NodePlan, dims: Record<string, number[]>): Sizes {
  const a = plan.attrs;
  const r = a.rank;
  const X = dims.X;
  const chk = (name: string, cond: boolean, what: string) => {
    if (!cond) fail(plan, `input ${name} has shape [${dims[name]}]: ${what}`);
  };
  chk('X', X.length === r + 2, `expected rank ${r + 2}`);
  const N = X[0], C = X[1], D = X.slice(2);
  const grp = a.group;
  let M = 0, Cg = 0, Mg = 0, E = 1, K: number[] = [], biasPerSample = false;
  if (plan.op === 'PixelConvHead') {
    // E carries the head's input channels Cf; the taps' positions are F's, checked by the op's shape function.
    const ks = plan.kernelShape!;
    const up = plan.upsample ?? 1;
    const HW = dims.HW, F = dims.F;
    chk('HW', HW.length === 2 && HW[0] >= 1 && HW[0] % prod(ks) === 0, `expected [G * ${prod(ks)}, Cf]`);
    const G = HW[0] / prod(ks);
    chk('HW', C % G === 0, 'G must divide C');
    chk('HB', dims.HB.length === 1 && dims.HB[0] === HW[0], `expected [${HW[0]}]`);
    const O = opOutput(plan, dims, [X, [N, HW[1], ...D.map(() => undefined)], HW, dims.HB]).slice(2);
    chk('F', F.length === r + 2 && F[0] === N && F[1] === HW[1] && eqDims(F.slice(2), O), `expected [${[N, HW[1], ...O]}]`);
    return { N, C, M: C, G, Cg: C / G, Mg: C / G, E: HW[1], D, O, K: ks, Ob: O.map((o) => o / up), biasPerSample: false, outDims: [N, C, ...O] };
  }
  if (plan.op === 'PixelConv') {
    const Kd = dims.K;
    const ks = plan.kernelShape!;
    const up = plan.upsample ?? 1;
    // kernel_layout 1, 2: K [N, G * KK * up^r, *O / up], the up-sampling phases in its channel axis
    const phases = !!plan.values.kernel_layout;
    const per = prod(ks) * up ** r;
    if (phases) chk('K', Kd.length === r + 2 && Kd[0] === N && Kd[1] >= 1 && Kd[1] % per === 0, `expected [N, G * ${per}, *O / ${up}]`);
    else chk('K', Kd.length === r + 3 && Kd[0] === N && Kd[2] === prod(ks), `expected [N, G, ${prod(ks)}, *O]`);
    const G = phases ? Kd[1] / per : Kd[1];
    chk('K', G >= 1 && C % G === 0, 'G must divide C');
    // K's own positions left out: the op's shape function gives the positions it must have
    const O = opOutput(plan, dims, [X, phases ? [N, Kd[1], ...D.map(() => undefined)] : [N, G, prod(ks), ...D.map(() => undefined)]]).slice(2);
    const Ob = O.map((o) => o / up);
    chk('K', eqDims(phases ? Kd.slice(2) : Kd.slice(3), phases ? Ob : O), `spatial size must be [${phases ? Ob : O}]`);
    return { N, C, M: C, G, Cg: C / G, Mg: C / G, E: 1, D, O, K: ks, Ob, biasPerSample: false, outDims: [N, C, ...O] };
  }
  const Wd = dims.W;
  const B = dims.B;
  const lay = plan.op === 'DynamicConv' ? Wd.slice(1) : plan.op === 'MixtureConv' ? Wd.slice(1) : Wd;
  chk('W', lay.length === r + 2, `expected a weight of rank ${r + 2}${plan.op === 'ModulatedConv' ? '' : ' after the leading axis'}`);
  K = lay.slice(2);
  if (!a.transpose) {
    M = lay[0];
    Cg = lay[1];
    chk('W', Cg * grp === C && M % grp === 0, `C/group = ${C}/${grp} input channels and M divisible by group expected`);
    Mg = M / grp;
  } else {
    chk('W', lay[0] === C && C % grp === 0, `expected ${C} input channels on axis 0 of the transpose layout`);
    Mg = lay[1];
    M = Mg * grp;
    Cg = C / grp;
  }
  if (plan.op === 'DynamicConv') {
    chk('W', Wd[0] === N, 'batch mismatch');
    chk('B', (B.length === 2 && B[0] === N && B[1] === M) || (B.length === 1 && B[0] === M), `expected [${N}, ${M}] or [${M}]`);
    biasPerSample = B.length === 2;
  } else if (plan.op === 'MixtureConv') {
    E = Wd[0];
    chk('R', dims.R.length === 2 && dims.R[0] === N && dims.R[1] === E, `expected [${N}, ${E}]`);
    chk('B', B.length === 2 && B[0] === E && B[1] === M, `expected [${E}, ${M}]`);
  } else {
    chk('S', dims.S.length === 2 && dims.S[0] === N && dims.S[1] === C, `expected [${N}, ${C}]`);
    chk('B', B.length === 1 && B[0] === M, `expected [${M}]`);
  }
  const O = opOutput(plan, dims, plan.opInputs.map((n) => dims[n])).slice(2);
  return { N, C, M, G: grp, Cg, Mg, E, D, O, K, biasPerSample, outDims: [N, M, ...O] };
}
