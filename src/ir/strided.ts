// Strided walks over row-major tensors, shared by the constant folder (broadcasting, Expand, Tile, Where) and the
// matchers' index maps: the strides of a shape, and a visit of every coordinate a row at a time with no division
// per element.

/** Row-major strides of a shape. */
export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let p = 1;
  for (let i = dims.length - 1; i >= 0; i--) { s[i] = p; p *= dims[i]; }
  return s;
}

/**
 * A walk over every coordinate c of `sizes`, in no set order, a row at a time: for each row, `bases` holds per
 * stride set dot(c, strides) at the row's first element, and `steps` the step along the row of `n` elements.
 * Unit axes are dropped, axes every stride set walks contiguously are merged, and the rows run along the longest
 * axis left, so a row is as long as it can be; nothing is divided. The caller runs the row in its own loop (a
 * callback per row would keep the arrays it writes out of registers) and calls next() for the next row.
 */
export class RowWalk {
  /** No coordinate at all (a size is 0). */
  readonly empty: boolean;
  readonly n: number;
  readonly steps: number[];
  readonly bases: number[];
  private readonly sizes: number[];
  private readonly strides: number[][];
  private readonly at: number[];

  constructor(sizes: readonly number[], strideSets: readonly (readonly number[])[]) {
    const sz: number[] = [], st: number[][] = strideSets.map(() => []);
    let empty = false;
    for (let i = 0; i < sizes.length; i++) {
      if (sizes[i] === 0) empty = true;
      if (sizes[i] <= 1) continue;
      const last = sz.length - 1;
      if (last >= 0 && strideSets.every((s, k) => st[k][last] === s[i] * sizes[i])) {
        sz[last] *= sizes[i];
        for (let k = 0; k < st.length; k++) st[k][last] = strideSets[k][i];
      } else {
        sz.push(sizes[i]);
        for (let k = 0; k < st.length; k++) st[k].push(strideSets[k][i]);
      }
    }
    this.empty = empty;
    this.bases = new Array<number>(st.length).fill(0);
    if (sz.length === 0) {
      this.n = 1;
      this.steps = this.bases.map(() => 0);
    } else {
      // the longest axis is the row; an odometer over the others
      const along = sz.indexOf(Math.max(...sz));
      this.n = sz[along];
      this.steps = st.map((s) => s[along]);
      sz.splice(along, 1);
      for (const s of st) s.splice(along, 1);
    }
    this.sizes = sz;
    this.strides = st;
    this.at = new Array<number>(sz.length).fill(0);
  }

  /** Moves `bases` to the next row; false when there is none. */
  next(): boolean {
    const { sizes, strides, at, bases } = this, sets = bases.length;
    for (let k = sizes.length - 1; k >= 0; k--) {
      for (let j = 0; j < sets; j++) bases[j] += strides[j][k];
      if (++at[k] < sizes[k]) return true;
      for (let j = 0; j < sets; j++) bases[j] -= strides[j][k] * sizes[k];
      at[k] = 0;
    }
    return false;
  }
}

/**
 * Visits every coordinate as RowWalk does, calling `row(bases, n, steps)` for each row; `row` returns false to stop
 * (everyRow then returns false).
 */
export function everyRow(sizes: readonly number[], strideSets: readonly (readonly number[])[], row: (bases: number[], n: number, steps: number[]) => boolean): boolean {
  const w = new RowWalk(sizes, strideSets);
  if (w.empty) return true;
  do if (!row(w.bases, w.n, w.steps)) return false; while (w.next());
  return true;
}

type Writable = { [i: number]: number; readonly length: number };

/**
 * out[f] = src[dot(c, srcStrides)] for every coordinate c of `sizes`, f its row-major index (out holds numel(sizes)
 * elements): a gather by strides, walked by RowWalk.
 */
export function stridedGather(src: ArrayLike<number>, sizes: readonly number[], srcStrides: readonly number[], out: Writable): void {
  const w = new RowWalk(sizes, [srcStrides, stridesOf(sizes)]);
  if (w.empty) return;
  const { n, bases, steps } = w, s = steps[0], so = steps[1];
  do for (let i = 0, f = bases[0], o = bases[1]; i < n; i++, f += s, o += so) out[o] = src[f]; while (w.next());
}
