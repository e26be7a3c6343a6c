// The coordinate walk the per-pixel element checks use (passes/pixel-phases.ts, pixel-softmax.ts): advancing one
// coordinate in place must visit what unravel gives for each flat index, and dot must be the strided flat index.
import test from 'ava';
import { dot, nextCoordinate, ravel, unravel } from '../passes/provenance.js';
import { stridesOf } from '../src/ir/strided.js';

test('nextCoordinate visits unravel(0), unravel(1), ... of every shape, and dot with row-major strides is ravel', (t) => {
  for (const dims of [[1], [7], [2, 3], [3, 1, 4], [2, 1, 1, 5], [1, 1], [4, 3, 2, 2, 3]]) {
    const c = dims.map(() => 0);
    const total = dims.reduce((p, d) => p * d, 1);
    const strides = stridesOf(dims);
    let wrong = 0;
    for (let i = 0; i < total; i++, nextCoordinate(c, dims)) {
      if (c.join() !== unravel(i, dims).join()) wrong++;
      if (dot(c, strides) !== i || ravel(c, dims) !== i) wrong++;
    }
    t.is(wrong, 0, `[${dims.join(', ')}]`);
    // past the last element the walk wraps to the first
    t.deepEqual(c, dims.map(() => 0), `[${dims.join(', ')}] wraps`);
  }
  // strided layouts: the dot product is the sum of coordinate times stride
  t.is(dot([1, 2, 3], [100, 10, 1]), 123);
  t.is(dot([2, 0, 1], [7, 0, 5]), 19);
});
