// What a rule is: anchors (the op types it starts from), `match`, which returns a Match or a Failure with a
// reason and the node it failed at, and `rewrite`, which builds the fused op from a match. Rules never loop
// over the graph: the driver (passes/driver.ts) does, and applies them in benefit order.
import type { Analysis } from '../../src/analysis/analyze.js';
import type { Model, Node } from '../../src/ir/graph.js';
import type { RewriteBuilder } from '../rewrite-builder.js';
import type { SiteFacts } from '../site.js';

export interface MatchContext {
  readonly model: Model;
  /** The analysis of the model as it is (symbolic dims stay symbolic). */
  readonly analysis: Analysis;
  /** The analysis at probe sizes (symbolic dims bound to small numbers), built on first use. */
  probe(): Analysis;
  /** One result per (key, node): a step several rules share (unbatching a conv) runs once. */
  memo<T>(key: string, node: Node, compute: () => T): T;
}

export interface Match<M> {
  ok: true;
  facts: SiteFacts;
  /** What the rewrite needs. */
  data: M;
  /** Notes on the site (why it is only generic, what stays in the graph). */
  notes?: string[];
}

export interface Failure {
  ok: false;
  reason: string;
  /** The node the match failed at. */
  node: Node;
  /** How far the match got (larger is further): the tracer keeps each rule's furthest failure. */
  progress: number;
  /** What the rule learned before failing: the site is reported with it. */
  facts?: Partial<SiteFacts>;
}

export type MatchResult<M> = Match<M> | Failure;

export interface Rule<M> {
  readonly name: string;
  /** Default-domain op types the rule starts from. */
  readonly anchors: readonly string[];
  /** Higher first; a rule that matches anything (a generic fallback) comes last. */
  readonly benefit: number;
  /** Whether the node is a dynamic-conv site at all (reported by scan whether it matches or not). */
  isSite(node: Node, ctx: MatchContext): boolean;
  match(node: Node, ctx: MatchContext): MatchResult<M>;
  /** Builds the fused op in place of the site; returns the fused node. */
  rewrite(data: M, b: RewriteBuilder): Node;
}

export function fail(reason: string, node: Node, progress: number, facts?: Partial<SiteFacts>): Failure {
  return { ok: false, reason, node, progress, facts };
}

export function matched<M>(facts: SiteFacts, data: M, notes?: string[]): Match<M> {
  return { ok: true, facts, data, notes };
}
