// Symbolic dimensions: a known size, a symbol or a product of symbols and a number ("N*64"), or unknown.
import type { Dim } from '../ir/graph.js';

function factors(d: string): { k: number; syms: string[] } {
  let k = 1;
  const syms: string[] = [];
  for (const f of d.split('*')) {
    const n = Number(f);
    if (f !== '' && Number.isFinite(n) && /^-?\d+$/.test(f)) k *= n;
    else syms.push(f);
  }
  return { k, syms };
}

/**
 * Symbolic products with more factors than this are not tracked: a product only grows that way when a
 * value is multiplied by itself over and over (x*x, then (x*x)*(x*x), ...), and tracking it doubles the
 * size of the string at each step.
 */
const MAX_FACTORS = 16;

function fromFactors(k: number, syms: string[]): Dim {
  if (syms.length === 0) return k;
  if (syms.length > MAX_FACTORS) return undefined;
  const sorted = [...syms].sort();
  return k === 1 ? sorted.join('*') : [String(k), ...sorted].join('*');
}

export function mulDim(a: Dim, b: Dim): Dim {
  if (a === undefined || b === undefined) return a === 0 || b === 0 ? 0 : undefined;
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  const fa = typeof a === 'number' ? { k: a, syms: [] } : factors(a);
  const fb = typeof b === 'number' ? { k: b, syms: [] } : factors(b);
  return fromFactors(fa.k * fb.k, [...fa.syms, ...fb.syms]);
}

/** a / b when it is exact (numbers that divide, or a product containing b's symbols). */
export function divDim(a: Dim, b: Dim): Dim {
  if (a === undefined || b === undefined) return undefined;
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : undefined;
  const fa = typeof a === 'number' ? { k: a, syms: [] as string[] } : factors(a);
  const fb = typeof b === 'number' ? { k: b, syms: [] as string[] } : factors(b);
  if (fb.k === 0 || fa.k % fb.k !== 0) return undefined;
  const rest = [...fa.syms];
  for (const s of fb.syms) {
    const i = rest.indexOf(s);
    if (i < 0) return undefined;
    rest.splice(i, 1);
  }
  return fromFactors(fa.k / fb.k, rest);
}

export function productDims(dims: readonly Dim[]): Dim {
  return dims.reduce<Dim>((p, d) => mulDim(p, d), 1);
}

export function dimsEqual(a: Dim, b: Dim): boolean {
  if (a === undefined || b === undefined) return false;
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return mulDim(a, 1) === mulDim(b, 1);
}

export function shapesEqual(a: readonly Dim[] | undefined, b: readonly Dim[] | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => dimsEqual(d, b[i]));
}

export function isStatic(shape: readonly Dim[] | undefined): shape is number[] {
  return !!shape && shape.every((d) => typeof d === 'number');
}

export function formatDim(d: Dim): string {
  return d === undefined ? '?' : String(d);
}

export function formatShape(shape: readonly Dim[] | undefined): string {
  return shape ? `[${shape.map(formatDim).join(', ')}]` : '[?]';
}
