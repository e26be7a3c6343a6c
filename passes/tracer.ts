// Keeps, for each anchor node, each rule's furthest failure: `scan --explain` says which rule came closest
// to matching a site that is generic or not fused, and why it failed (onnxscript's MatchingTracer).
import type { Node } from '../src/ir/graph.js';
import type { Failure } from './rules/rule.js';

export class MatchTracer {
  private readonly byAnchor = new Map<Node, Map<string, Failure>>();

  record(anchor: Node, rule: string, f: Failure): void {
    const rules = this.byAnchor.get(anchor) ?? this.byAnchor.set(anchor, new Map()).get(anchor)!;
    const have = rules.get(rule);
    if (!have || f.progress > have.progress) rules.set(rule, f);
  }

  /** Every rule's furthest failure at an anchor, in the order the rules were tried. */
  failures(anchor: Node): [string, Failure][] {
    return [...(this.byAnchor.get(anchor) ?? [])];
  }

  /** The rule that got furthest at an anchor (the first tried, of those that got as far). */
  closest(anchor: Node): { rule: string; failure: Failure } | undefined {
    let best: { rule: string; failure: Failure } | undefined;
    for (const [rule, failure] of this.failures(anchor)) if (!best || failure.progress > best.failure.progress) best = { rule, failure };
    return best;
  }
}
