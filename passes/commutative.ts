// Commutative operand order, in one place: rules ask for the factors of a product or both orders of a
// binary op instead of trying the permutations themselves.
import type { Node, Value } from '../src/ir/graph.js';

const COMMUTATIVE = new Set(['Add', 'Mul', 'Max', 'Min', 'Sum']);

/** The factors of a tree of Mul nodes (any association, any order). */
export function mulFactors(v: Value, limit = 16): Value[] {
  const p = v.producer;
  if (!p || p.opType !== 'Mul' || p.domain !== '' || limit <= 0) return [v];
  return [...mulFactors(p.inputs[0]!, limit - 1), ...mulFactors(p.inputs[1]!, limit - 1)];
}

/** The two operands of a binary commutative node in both orders; [] for anything else. */
export function bothOrders(n: Node | null | undefined): [Value, Value][] {
  if (!n || n.domain !== '' || !COMMUTATIVE.has(n.opType) || n.inputs.length !== 2 || !n.inputs[0] || !n.inputs[1]) return [];
  const [p, q] = [n.inputs[0], n.inputs[1]];
  return [[p, q], [q, p]];
}

/** The operand pair (first, second) of a commutative node for which `test(first)` holds. */
export function orderedBy(n: Node | null | undefined, test: (v: Value) => boolean): [Value, Value] | undefined {
  return bothOrders(n).find(([p]) => test(p));
}
