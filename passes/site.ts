// What `scan` reports about one dynamic-conv site, and what `fuse` needs to rewrite it.
import type { ConvAttrs, FusedOpType } from '../ops/index.js';
import type { Node } from '../src/ir/graph.js';
import type { Rule } from './rules/rule.js';

export type Family = 'mixture' | 'direct' | 'modulated' | 'per-pixel' | 'generic';

/** A site's conv attributes (the op layer's ConvAttrs; `group` counts channel groups within one sample), with its kernel size. */
export interface SiteParams extends ConvAttrs {
  kernel: number[];
  upsample?: number;
}

/** What a rule learned about a site. */
export interface SiteFacts {
  family: Family;
  /** Nodes that compute the weights from activations (the generator), nearest first. */
  generator: Node[];
  params?: SiteParams;
  experts?: number;
  perSample: boolean;
  perPixel: boolean;
  /** How the batch reaches the conv: the grouped-conv trick (group = batch), batch 1, or per pixel. */
  batch: 'grouped-trick' | 'batch-1' | 'per-pixel' | 'unknown';
  /** The op it becomes, when it can be fused. */
  op?: FusedOpType;
  /** The fused node's attributes that its function body reads as values (see BAKED_ATTRIBUTES). */
  bodyAttrs?: Record<string, number | number[]>;
}

/** The rule that came closest to matching a site it did not match, and why it failed. */
export interface ClosestRule {
  rule: string;
  /** Other rules that failed at the same node for the same reason. */
  tiedWith: string[];
  reason: string;
  /** The node the match failed at. */
  node: Node;
}

export interface Site extends SiteFacts {
  /** The conv (or, for per-pixel sites, the node that contracts the kernel with the unfolded input). */
  anchor: Node;
  /** Why the site is `generic`, or why it cannot be fused. */
  explain: string[];
  notFused?: string;
  /** The rule that matched and what it matched: the driver rewrites the site with them. */
  fusion?: { rule: Rule<unknown>; match: unknown };
  /** For a site that is generic or not fused: the rule that got furthest (scan --explain). */
  closest?: ClosestRule;
}

/** Whether fuse can rewrite the site. */
export function isFusable(s: Site): boolean {
  return !!s.fusion && !s.notFused;
}
