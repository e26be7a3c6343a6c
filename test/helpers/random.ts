// Seeded random data and a relative-error measure for the back-end kernel tests: the validator's own
// random stream and agreement measure.
import { compareArrays } from '../../src/validate/compare.js';
import { rng } from '../../src/validate/feeds.js';

export { rng };

/** A float tensor of the given dims, uniform in [lo, hi). */
export function randomTensor(dims: number[], r: () => number, lo = -1, hi = 1): { dims: number[]; data: Float32Array } {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * r();
  return { dims, data };
}

/** ‖a − b‖ / ‖b‖ (Infinity when the lengths differ). */
export function relL2(a: Float32Array, b: Float32Array): number {
  return compareArrays('', [], a, b, 0).relL2;
}
