// Passes with contracts, and the pipeline that runs them. A pass edits the model in place, says which
// properties of the model it needs and which it makes true, and reports whether it changed anything
// (onnx_ir's pass infrastructure). With `verify`, the pipeline checks every property a pass ensures.
import type { Model, Node } from '../src/ir/graph.js';
import { composableReshape } from './canonicalize/compose-reshapes.js';
import { attributeFormConstant } from './canonicalize/constant-forms.js';
import { foldableNode } from './canonicalize/fold-known-values.js';
import { removableIdentity } from './canonicalize/identities.js';
import { knownCastLike } from './canonicalize/type-only-inputs.js';

/** Properties a pass can require or ensure; each has a check (PROPERTY_CHECKS). */
export type Property =
  | 'sorted'
  | 'no-dead-nodes'
  // what the canonicalisation passes make true (passes/canonicalize): each is checked with the pass's own test
  | 'no-constant-attribute-forms'
  | 'no-identities'
  | 'no-known-castlike'
  | 'known-values-folded'
  | 'reshapes-composed';

const none = (n: Node | undefined, what: string) => (n ? `${n.label} ${what}` : undefined);

export interface PassResult {
  changed: boolean;
}

export interface Pass<R extends PassResult = PassResult> {
  name: string;
  /** Every dynconv pass edits the model in place (the IR is never copied). */
  inPlace: true;
  requires: readonly Property[];
  ensures: readonly Property[];
  run(model: Model): R;
}

/** A reason the property does not hold, or undefined. */
export const PROPERTY_CHECKS: Record<Property, (m: Model) => string | undefined> = {
  sorted(m) {
    const seen = new Set<unknown>();
    for (const n of m.graph.nodes) {
      for (const v of n.inputs) if (v?.producer && v.producer.graph === m.graph && !seen.has(v.producer)) return `${n.label} reads ${v.name} before it is computed`;
      seen.add(n);
    }
    return undefined;
  },
  'no-dead-nodes'(m) {
    const dead = m.graph.nodes.find((n) => n.outputs.every((o) => o.uses.length === 0 && !o.isGraphOutput));
    return dead ? `${dead.label} computes nothing that is used` : undefined;
  },
  'no-constant-attribute-forms': (m) => none(attributeFormConstant(m), 'holds its value in a value_* attribute'),
  'no-identities': (m) => none(removableIdentity(m), 'is an Identity its readers could skip'),
  'no-known-castlike': (m) => none(knownCastLike(m), 'is a CastLike to a known element type'),
  'known-values-folded': (m) => none(foldableNode(m), 'computes only values known before the run'),
  'reshapes-composed': (m) => none(composableReshape(m), 'reshapes the output of another view op'),
};

export class PassContractError extends Error {}

export interface PipelineRun {
  changed: boolean;
  passes: { name: string; changed: boolean }[];
}

/** Runs the passes in order. With `verify`, a property a pass ensures is checked after it (and its requirements before it). */
export function runPasses(model: Model, passes: readonly Pass[], opts: { verify?: boolean } = {}): PipelineRun {
  const run: PipelineRun = { changed: false, passes: [] };
  const check = (pass: Pass, props: readonly Property[], when: string) => {
    for (const p of props) {
      const why = PROPERTY_CHECKS[p](model);
      if (why) throw new PassContractError(`pass ${pass.name}: ${p} does not hold ${when}: ${why}`);
    }
  };
  for (const pass of passes) {
    if (opts.verify) check(pass, pass.requires, 'before it');
    const r = pass.run(model);
    run.passes.push({ name: pass.name, changed: r.changed });
    run.changed ||= r.changed;
    if (opts.verify) check(pass, pass.ensures, 'after it');
  }
  return run;
}

/** Removes nodes whose outputs nobody uses, and unused initializers. */
export const sweepPass: Pass = {
  name: 'sweep',
  inPlace: true,
  requires: [],
  ensures: ['no-dead-nodes'],
  run: (model) => ({ changed: model.graph.sweepDeadNodes() > 0 }),
};

/** Orders the nodes topologically (rewrites insert nodes where they are needed, not always in order). */
export const sortPass: Pass = {
  name: 'sort',
  inPlace: true,
  requires: [],
  ensures: ['sorted'],
  run: (model) => {
    const before = [...model.graph.nodes];
    model.graph.topoSort();
    return { changed: model.graph.nodes.some((n, i) => n !== before[i]) };
  },
};
