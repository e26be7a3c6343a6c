// Seeded random data and a relative-error measure for the back-end kernel tests.

/** xorshift32: a reproducible stream in [0, 1) from a seed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** A float tensor of the given dims, uniform in [lo, hi). */
export function randomTensor(dims: number[], r: () => number, lo = -1, hi = 1): { dims: number[]; data: Float32Array } {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * r();
  return { dims, data };
}

/** ‖a − b‖ / ‖b‖ (Infinity when the lengths differ). */
export function relL2(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}
