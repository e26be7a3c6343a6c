// Narrowed roots: when one value (a Linear's output) is split into the data input and the kernel of a site
// (fairseq's in_proj: x and the weights are narrow-slices of one projection), the movement root of the data
// side is the whole projection, whose shape is not the input's. The slice every path reaches the root through
// is the input the site reads.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Value } from '../src/ir/graph.js';
import { isMovement } from './provenance.js';

const NARROWING = new Set(['Slice', 'Split']);

/**
 * The one Slice or Split output of `root` that every data-movement path from `v` back to `root` goes through;
 * undefined when some path reaches `root` otherwise, or the paths go through several.
 */
export function narrowedRoot(v: Value, root: Value, a: Analysis): Value | undefined {
  const found = new Set<Value>();
  const seen = new Set<Value>();
  const stack = [v];
  while (stack.length) {
    const cur = stack.pop()!;
    if (seen.has(cur)) continue;
    seen.add(cur);
    if (cur === root) return undefined;
    const p = cur.producer;
    if (p && p.domain === '' && NARROWING.has(p.opType) && p.inputs[0] === root) { found.add(cur); continue; }
    if (a.label(cur) !== 'data' || !isMovement(p)) continue;
    for (const i of p!.inputs) if (i) stack.push(i);
  }
  return found.size === 1 ? [...found][0] : undefined;
}
