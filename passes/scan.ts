// Finds every dynamic-conv site of a model: convs whose weight is data-dependent, and per-pixel
// unfold/multiply/reduce chains.
import { Analysis } from '../src/analysis/analyze.js';
import type { Model } from '../src/ir/graph.js';
import { canonicalize } from './canonicalize/index.js';
import { matchConvSite } from './conv-sites.js';
import { findPixelSites } from './pixel-sites.js';
import type { Site } from './site.js';

/**
 * The sites of `model`, which is first canonicalised in place (passes/canonicalize): `a` is used when that
 * changed nothing, else a fresh analysis of the canonical model.
 */
export function scanModel(model: Model, a: Analysis): Site[] {
  if (canonicalize(model)) a = new Analysis(model);
  const sites: Site[] = [];
  for (const n of model.graph.allNodes()) {
    if (n.domain !== '' || (n.opType !== 'Conv' && n.opType !== 'ConvTranspose')) continue;
    if (a.label(n.inputs[1]) !== 'data') continue;
    const site = matchConvSite(n, a);
    if (n.graph !== model.graph) {
      site.notFused = 'the conv is inside a subgraph (If/Loop/Scan body); dynconv fuses top-level sites only';
      site.rewrite = undefined;
    }
    sites.push(site);
  }
  sites.push(...findPixelSites(model, a));
  const order = new Map([...model.graph.allNodes()].map((n, i) => [n, i]));
  return sites.sort((x, y) => (order.get(x.anchor) ?? 0) - (order.get(y.anchor) ?? 0));
}
