// What `scan` reports about one dynamic-conv site, and how `fuse` rewrites it.
import type { FusedOpType } from '../ops/index.js';
import type { Node } from '../src/ir/graph.js';

export type Family = 'mixture' | 'direct' | 'modulated' | 'per-pixel' | 'generic';

export interface SiteParams {
  rank: number;
  kernel: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
  /** Channel groups within one sample. */
  group: number;
  transpose: boolean;
  outputPadding: number[];
  upsample?: number;
}

export interface Site {
  family: Family;
  /** The conv (or, for per-pixel sites, the node that contracts the kernel with the unfolded input). */
  anchor: Node;
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
  /** Why the site is `generic`, or why it cannot be fused. */
  explain: string[];
  notFused?: string;
  /** The fused node's attributes that its function body reads as values (see BAKED_ATTRIBUTES). */
  bodyAttrs?: Record<string, number | number[]>;
  /** Builds the fused node in the graph. Present when the site can be fused. */
  rewrite?: () => Node;
}
