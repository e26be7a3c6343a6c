// Numeric agreement between two runs.

export interface Agreement {
  name: string;
  dims: number[];
  maxAbs: number;
  relL2: number;
  ok: boolean;
  /** Why there is no comparison (a kernel that failed to run). */
  error?: string;
}

export function compareArrays(name: string, dims: number[], got: ArrayLike<number>, want: ArrayLike<number>, rtol: number): Agreement {
  if (got.length !== want.length) return { name, dims, maxAbs: Infinity, relL2: Infinity, ok: false };
  let maxAbs = 0, diff2 = 0, ref2 = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i] - want[i];
    if (Number.isNaN(d) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) return { name, dims, maxAbs: NaN, relL2: NaN, ok: false };
    maxAbs = Math.max(maxAbs, Math.abs(d) || 0);
    diff2 += d * d || 0;
    ref2 += want[i] * want[i] || 0;
  }
  const relL2 = Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), 1e-30);
  return { name, dims, maxAbs, relL2, ok: relL2 <= rtol || maxAbs === 0 };
}
