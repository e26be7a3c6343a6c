// What the passes after the rules know of the values around the fused nodes: the facts of the analysis the rules
// matched with, which describes the model before the rewrites (fully inferred before the first edit:
// passes/driver.ts). A value a rewrite made has the facts of the value it replaced; every fused op's output has
// the shape and type of what it stands for. No analysis of the edited graph is built for this.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value, ValueType } from '../src/ir/graph.js';

/** The fused nodes of a fuse run, the analysis its rules matched with, and the values its rewrites replaced. */
export interface FusedNodes {
  nodes: readonly Node[];
  analysis: Analysis;
  /** Each value a rewrite replaced, and what replaced it (the rules' rewrites, then the epilogue pass's). */
  forwarded: Map<Value, Value>;
}

export class Facts {
  private readonly origin = new Map<Value, Value>();
  constructor(readonly a: Analysis, forwarded: ReadonlyMap<Value, Value>) {
    for (const [old, v] of forwarded) this.origin.set(v, old);
  }
  /** The value of the analysed model whose facts v has: v itself, or what it replaced (through each rewrite). */
  private known(v: Value): Value {
    for (let i = 0; i < 1024 && !this.a.factsOf(v).type && this.origin.has(v); i++) v = this.origin.get(v)!;
    return v;
  }
  type(v: Value | null | undefined): ValueType | undefined {
    return v ? this.a.factsOf(this.known(v)).type : undefined;
  }
  shape(v: Value | null | undefined): readonly (number | string | undefined)[] | undefined {
    return this.type(v)?.shape;
  }
  elemType(v: Value): number | undefined {
    return this.type(v)?.elemType;
  }
}

export const factsOfFused = (f: FusedNodes): Facts => new Facts(f.analysis, f.forwarded);
