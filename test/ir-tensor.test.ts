// Tensor encoding: int64 elements are written and read as two 32-bit words; the result must be what a BigInt
// per element gives (exact for safe integers, one rounding for others, clamped as setBigInt64 stores them).
import test from 'ava';
import { decodeTensor, encodeTensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';

test('int64 tensors encode as BigInt64 would, and decode as Number(BigInt64) would', (t) => {
  const vals = [0, 1, -1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, -(2 ** 32) - 1, 2 ** 53 - 1, -(2 ** 53) + 1, 2 ** 53, 2 ** 60 + 2 ** 8, -(2 ** 62) - 12345, 9.3e18, -9.3e18, 1e300, -1e300, 3.7, -3.7, 123456789012];
  const p = encodeTensor({ dtype: DataType.INT64, dims: [vals.length], data: Float64Array.from(vals) }, 'x');
  const view = new DataView(p.rawData!.buffer, p.rawData!.byteOffset, p.rawData!.byteLength);
  vals.forEach((x, i) => t.is(view.getBigInt64(i * 8, true), BigInt.asIntN(64, BigInt(Math.trunc(Math.max(-9223372036854775808, Math.min(9223372036854775807, x))))), `encode ${x}`));
  // every bit pattern decodes as Number(BigInt) does (the words of random int64s, and the encoded ones above)
  const raw = new Uint8Array(8 * 4096);
  let seed = 12345;
  for (let i = 0; i < raw.length; i++) raw[i] = (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  for (const bytes of [raw, p.rawData!]) {
    const d = decodeTensor({ dataType: DataType.INT64, dims: [bytes.length / 8], name: 'r' }, bytes)!;
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let wrong = 0;
    for (let i = 0; i < bytes.length / 8; i++) if (d.data[i] !== Number(v.getBigInt64(i * 8, true))) wrong++;
    t.is(wrong, 0);
  }
});
