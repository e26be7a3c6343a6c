// Consistency checks for the IR: producers, uses and value tables agree with each other.
import type { Graph, Node, Value } from '../../src/ir/graph.js';

/** Everything wrong with the graph's bookkeeping (empty when consistent), subgraphs included. */
export function inconsistencies(g: Graph, where = 'graph'): string[] {
  const out: string[] = [];
  const nodes = new Set(g.nodes);
  const all = new Set<Node>(g.allNodes());
  const describe = (n: Node) => `${n.opType} ${n.name}`;
  for (const n of g.nodes) {
    if (n.graph !== g) out.push(`${where}: ${describe(n)} thinks it is in another graph`);
    n.inputs.forEach((v, i) => {
      if (!v) return;
      const hits = v.uses.filter((u) => u.node === n && u.index === i).length;
      if (hits !== 1) out.push(`${where}: ${describe(n)} input ${i} (${v.name}) is listed ${hits} times in its uses`);
      if (g.lookup(v.name) !== v) out.push(`${where}: ${describe(n)} input ${i} (${v.name}) is not reachable by name`);
    });
    n.outputs.forEach((v) => {
      if (v.producer !== n) out.push(`${where}: ${v.name} does not name ${describe(n)} as producer`);
      if (g.values.get(v.name) !== v) out.push(`${where}: output ${v.name} of ${describe(n)} is not in the value table`);
    });
    for (const v of n.outerUses) {
      if (!v.uses.some((u) => u.node === n && u.index === -1)) out.push(`${where}: ${describe(n)} reads ${v.name} from a subgraph but the use is not recorded`);
      const inner = n.subgraphs.some((sg) => [...sg.allNodes()].some((m) => m.inputs.includes(v)));
      if (!inner) out.push(`${where}: ${describe(n)} lists ${v.name} as an outer use, but no node of its subgraphs reads it`);
    }
    n.subgraphs.forEach((sg, k) => out.push(...inconsistencies(sg, `${where}/${describe(n)}#${k}`)));
  }
  for (const [name, v] of g.values) {
    if (v.name !== name) out.push(`${where}: value table maps ${name} to a value named ${v.name}`);
    if (v.producer && !nodes.has(v.producer)) out.push(`${where}: ${name} is produced by a node not in the graph`);
    for (const u of v.uses) {
      if (u.index >= 0 && u.node.inputs[u.index] !== v) out.push(`${where}: ${name} lists a use by ${describe(u.node)} input ${u.index}, which reads something else`);
      if (u.index === -1 && !u.node.outerUses.includes(v)) out.push(`${where}: ${name} lists a subgraph use by ${describe(u.node)}, which does not know it`);
      if (!all.has(u.node) && !isInScope(u.node, g)) out.push(`${where}: ${name} is used by ${describe(u.node)}, which is not in the graph`);
    }
  }
  for (const v of [...g.inputs, ...g.outputs, ...g.initializers]) if (g.lookup(v.name) !== v) out.push(`${where}: graph input/output/initializer ${v.name} not in the value table`);
  return out;
}

/** A use from a node of an enclosing or enclosed graph still in the model. */
function isInScope(n: Node, g: Graph): boolean {
  let root: Graph = g;
  while (root.parent) root = root.parent;
  for (const m of root.allNodes()) if (m === n) return true;
  return false;
}

/** Every value a node reads: its inputs and, whatever outerUses says, the inputs of its subgraphs' nodes. */
export function reads(n: Node): (Value | null)[] {
  return [...n.inputs, ...n.subgraphs.flatMap((sg) => [...sg.allNodes()].flatMap((m) => m.inputs))];
}

/** Producer-before-reader holds for the values of this graph (reads from inside subgraphs included). */
export function isTopological(g: Graph): boolean {
  const seen = new Set<Node>();
  for (const n of g.nodes) {
    for (const v of reads(n)) {
      if (v && v.graph === g && v.producer && !seen.has(v.producer)) return false;
    }
    seen.add(n);
  }
  return true;
}

export function names(vs: (Value | null)[]): string[] {
  return vs.map((v) => v?.name ?? '');
}
