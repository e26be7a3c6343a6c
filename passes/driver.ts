// The one loop over the graph: every node is offered to the rules anchored at its op type, in benefit
// order; the first that matches describes the site (and, when rewriting, replaces it). A node some rule
// calls a site but none matches is reported with the closest rule's reason. `scan` is this driver with
// rewriting off; `fuse` runs it with rewriting on.
import { Analysis } from '../src/analysis/analyze.js';
import type { Model, Node, Value } from '../src/ir/graph.js';
import { RewriteBuilder } from './rewrite-builder.js';
import { RULES } from './rules/index.js';
import type { MatchContext, Rule } from './rules/rule.js';
import { isFusable, type Site } from './site.js';
import { MatchTracer } from './tracer.js';

/** Symbolic dims of the graph inputs get small sizes for probing: batch 2, others 12. */
function probeSize(sym: string, axis: number): number {
  return axis === 0 && /^(n|b|batch|batch_size|bs)$/i.test(sym) ? 2 : 12;
}

export function matchContext(model: Model, analysis: Analysis): MatchContext {
  const memo = new Map<string, Map<Node, unknown>>();
  let probe: Analysis | undefined;
  // A model without symbolic input dims probes at its own sizes: the analysis it has is the probe one.
  const symbolic = model.graph.inputs.some((v) => !v.initializer && v.type?.shape?.some((d) => typeof d === 'string'));
  return {
    model,
    analysis,
    probe: () => (probe ??= symbolic ? new Analysis(model, probeSize, undefined, { lazy: true, base: analysis }) : analysis),
    memo<T>(key: string, node: Node, compute: () => T): T {
      const m = memo.get(key) ?? memo.set(key, new Map()).get(key)!;
      if (!m.has(node)) m.set(node, compute());
      return m.get(node) as T;
    },
  };
}

export interface DriverOptions {
  rules?: readonly Rule<unknown>[];
  tracer?: MatchTracer;
}

/** Every site of the model, described by the rule that matched it (or the closest one), in graph order. */
export function matchSites(model: Model, analysis: Analysis, opts: DriverOptions = {}): Site[] {
  const rules = opts.rules ?? RULES;
  const tracer = opts.tracer ?? new MatchTracer();
  const ctx = matchContext(model, analysis);
  const byAnchor = new Map<string, Rule<unknown>[]>();
  for (const r of rules) for (const op of r.anchors) (byAnchor.get(op) ?? byAnchor.set(op, []).get(op)!).push(r);
  const sites: Site[] = [];
  for (const node of model.graph.allNodes()) {
    if (node.domain !== '') continue;
    const candidates = (byAnchor.get(node.opType) ?? []).filter((r) => r.isSite(node, ctx));
    if (!candidates.length) continue;
    let site: Site | undefined;
    for (const rule of candidates) {
      const m = rule.match(node, ctx);
      if (!m.ok) { tracer.record(node, rule.name, m); continue; }
      site = { ...m.facts, anchor: node, explain: [...(m.notes ?? [])], fusion: { rule, match: m.data } };
      if (m.facts.family === 'generic') site.closest = closestOf(tracer, node);
      break;
    }
    if (!site) {
      const best = tracer.closest(node)!;
      const f = best.failure;
      site = { family: 'generic', generator: [], perSample: true, perPixel: false, batch: 'unknown', ...f.facts, anchor: node, explain: [`not fused: ${f.reason}`], notFused: f.reason };
      site.closest = closestOf(tracer, node);
    }
    if (site.closest) {
      const c = site.closest;
      const who = c.tiedWith.length ? `every rule (${[c.rule, ...c.tiedWith].join(', ')}) failed` : `closest rule: ${c.rule}, failed`;
      site.explain.push(`${who} at ${c.node.label}${site.notFused === c.reason ? '' : `: ${c.reason}`}`);
    }
    if (node.graph !== model.graph) {
      site.notFused = 'the conv is inside a subgraph (If/Loop/Scan body); dynconv fuses top-level sites only';
      site.fusion = undefined;
    }
    sites.push(site);
  }
  return sites;
}

function closestOf(tracer: MatchTracer, node: Node): Site['closest'] {
  const best = tracer.closest(node);
  if (!best) return undefined;
  // Rules that all stopped at the same step for the same reason (a conv whose batch cannot be taken apart) are named together.
  const same = tracer.failures(node).filter(([, f]) => f.reason === best.failure.reason && f.node === best.failure.node).map(([r]) => r);
  return { rule: best.rule, tiedWith: same.filter((r) => r !== best.rule), reason: best.failure.reason, node: best.failure.node };
}

export interface RunOptions extends DriverOptions {
  /** Rewrite the sites (fuse); off, the driver only describes them (scan). */
  rewrite?: boolean;
  /** Before a site is rewritten: a reason to leave it, or the domain of its fused node (undefined: com.dynconv). */
  admit?: (site: Site) => { leave: string } | { domain?: string } | undefined;
}

/** The driver: matches every site, then (when asked) rewrites each fusable one the caller admits. */
export interface RulesRun {
  sites: Site[];
  rewritten: Site[];
  /** The fused node of each rewritten site. */
  nodes: Node[];
  /** Each value a rewrite replaced, and what replaced it. */
  forwarded: Map<Value, Value>;
}

export function runRules(model: Model, analysis: Analysis, opts: RunOptions = {}): RulesRun {
  const sites = matchSites(model, analysis, opts);
  const rewritten: Site[] = [];
  const nodes: Node[] = [];
  const forwarded = new Map<Value, Value>();
  if (!opts.rewrite) return { sites, rewritten, nodes, forwarded };
  // The rewrites edit the graph this lazy analysis reads: what is still to infer is inferred first, so that its
  // facts (read by the rewrites, the epilogue pass and the declared shapes) are those of the graph as matched,
  // never of a half-rewritten one, whatever the rules happened to ask while matching.
  if (sites.some(isFusable)) analysis.resolveAll();
  for (const s of sites) {
    if (!isFusable(s)) continue;
    const verdict = opts.admit?.(s);
    if (verdict && 'leave' in verdict) { s.notFused = verdict.leave; s.explain.push(`not fused: ${verdict.leave}`); continue; }
    nodes.push(rewriteSite(s, verdict?.domain, forwarded));
    rewritten.push(s);
  }
  return { sites, rewritten, nodes, forwarded };
}

/** Rewrites one matched site in place, its fused node in `domain` (default com.dynconv); returns the fused node. */
export function rewriteSite(site: Site, domain?: string, forwarded?: Map<Value, Value>): Node {
  if (!site.fusion) throw new Error('internal: rewriteSite on a site no rule matched');
  const { rule, match } = site.fusion;
  return rule.rewrite(match, new RewriteBuilder(site.anchor.graph, site.anchor, rule.name, domain, forwarded));
}
