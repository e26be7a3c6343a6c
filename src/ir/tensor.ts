// Constant tensors as numbers. Float32 stays Float32Array (so folding is exact); every other numeric type is
// held as Float64Array (int64 beyond 2^53 loses precision, which only matters for the INT64_MAX sentinel
// of Slice, and is harmless there).
import { badInput, quoteName } from '../errors.js';
import { tensorElementCount } from '../onnx/external-data.js';
import { DataType, onnx, toNumber, type TensorProto } from '../onnx/proto.js';

export type TensorData = Float32Array | Float64Array;

export interface Tensor {
  dtype: number;
  dims: number[];
  data: TensorData;
}

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/**
 * The elements of a tensor's data (or any list of numbers) as a plain array. A loop: Array.from of a typed array
 * goes through the iterator protocol, about 30 times slower on the handful of elements a shape or an axis list has,
 * and the analysis reads such lists for every node.
 */
export function toNumberArray(data: ArrayLike<number>): number[] {
  const out = new Array<number>(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i];
  return out;
}

export function makeTensor(dtype: number, dims: number[], values: ArrayLike<number>): Tensor {
  // (the constructors copy an array or typed array as from() does, without its iterator protocol)
  const data = dtype === DataType.FLOAT ? new Float32Array(values) : new Float64Array(values);
  return { dtype, dims, data };
}

function decodeHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A float as IEEE half bits (round to nearest even; out of range to infinity). */
function encodeHalf(x: number): number {
  const f32 = new Float32Array([x]);
  const b = new Uint32Array(f32.buffer)[0];
  const sign = (b >>> 16) & 0x8000, exp = (b >>> 23) & 0xff, mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = (mant | 0x800000) >> (1 - e);
    return sign | ((m + 0x1000 + ((m >> 13) & 1) - 1) >> 13);
  }
  const h = sign | (e << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  return rest > 0x1000 || (rest === 0x1000 && h & 1) ? h + 1 : h;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decodes a TensorProto whose bytes are given (raw or typed fields). Returns undefined for types we do not fold. */
export function decodeTensor(t: TensorProto, raw: Uint8Array | undefined): Tensor | undefined {
  const dims = (t.dims ?? []).map(toNumber);
  const n = tensorElementCount(t);
  const dtype = t.dataType ?? 0;
  const where = () => `tensor ${quoteName(t.name)}`; // only for errors: names are quoted when one is thrown
  if (raw && raw.length) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    let out!: Float32Array | Float64Array;
    // The size is checked against the bytes there are before anything is allocated from the dims.
    const need = (bytes: number) => {
      if (raw.length < n * bytes) throw badInput(where(), `raw_data holds ${raw.length} bytes, but ${n} elements of this type need ${n * bytes}`);
      out = dtype === DataType.FLOAT ? new Float32Array(n) : new Float64Array(n);
    };
    switch (dtype) {
      case DataType.FLOAT:
        need(4);
        // little-endian bytes as they are (weight banks are large): a copy, not a read per element
        if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(raw.subarray(0, n * 4));
        else for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
        break;
      case DataType.DOUBLE: need(8); for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true); break;
      // the two 32-bit words combined: one rounding of the exact value, as Number(BigInt) does, without a BigInt per element
      case DataType.INT64: need(8); for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 8 + 4, true) * 4294967296 + view.getUint32(i * 8, true); break;
      case DataType.UINT64: need(8); for (let i = 0; i < n; i++) out[i] = Number(view.getBigUint64(i * 8, true)); break;
      case DataType.INT32: need(4); for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true); break;
      case DataType.UINT32: need(4); for (let i = 0; i < n; i++) out[i] = view.getUint32(i * 4, true); break;
      case DataType.INT16: need(2); for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true); break;
      case DataType.UINT16: need(2); for (let i = 0; i < n; i++) out[i] = view.getUint16(i * 2, true); break;
      case DataType.FLOAT16: need(2); for (let i = 0; i < n; i++) out[i] = decodeHalf(view.getUint16(i * 2, true)); break;
      case DataType.INT8: need(1); for (let i = 0; i < n; i++) out[i] = view.getInt8(i); break;
      case DataType.UINT8: case DataType.BOOL: need(1); for (let i = 0; i < n; i++) out[i] = view.getUint8(i); break;
      default: return undefined;
    }
    return { dtype, dims, data: out };
  }
  let values: ArrayLike<number | { toNumber(): number }> | undefined;
  switch (dtype) {
    case DataType.FLOAT: values = t.floatData ?? []; break;
    case DataType.DOUBLE: values = t.doubleData ?? []; break;
    case DataType.INT64: values = t.int64Data ?? []; break;
    case DataType.UINT64: case DataType.UINT32: values = t.uint64Data ?? []; break;
    case DataType.INT32: case DataType.INT16: case DataType.INT8: case DataType.UINT16: case DataType.UINT8: case DataType.BOOL: values = t.int32Data ?? []; break;
    case DataType.FLOAT16: values = Array.from(t.int32Data ?? [], (h) => decodeHalf(h)); break;
    default: return undefined;
  }
  if (values.length !== n) {
    if (n !== 0 || values.length !== 0) throw badInput(where(), `holds ${values.length} values, but its dims ${JSON.stringify(dims)} need ${n}`);
  }
  const out = dtype === DataType.FLOAT ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = toNumber(values[i] as number);
  return { dtype, dims, data: out };
}

const ENCODABLE = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.INT64, DataType.INT32, DataType.BOOL, DataType.UINT8, DataType.INT8, DataType.UINT64, DataType.UINT32, DataType.INT16, DataType.UINT16, DataType.FLOAT16]);
const FLOATING = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16]);

/**
 * Whether encodeTensor can write the tensor as a literal: a type it writes, dims that are sizes, and integer
 * values for an integer type (a value folded from a corrupt model can be none of these).
 */
export function isEncodable(t: Tensor): boolean {
  if (!ENCODABLE.has(t.dtype) || !t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) return false;
  if (FLOATING.has(t.dtype)) return true;
  for (let i = 0; i < t.data.length; i++) if (!Number.isInteger(t.data[i])) return false;
  return true;
}

/** Encodes a tensor as a TensorProto with raw_data. */
export function encodeTensor(t: Tensor, name: string): TensorProto {
  const n = t.data.length;
  let bytes: Uint8Array;
  const dv = (size: number) => { bytes = new Uint8Array(n * size); return new DataView(bytes.buffer); };
  switch (t.dtype) {
    case DataType.FLOAT: {
      if (LITTLE_ENDIAN) {
        // rounded to float32 as setFloat32 does, then the bytes copied as they are (expert banks are large)
        const f = t.data instanceof Float32Array ? t.data : new Float32Array(t.data);
        bytes = new Uint8Array(f.buffer, f.byteOffset, n * 4).slice();
        break;
      }
      const v = dv(4);
      for (let i = 0; i < n; i++) v.setFloat32(i * 4, t.data[i], true);
      break;
    }
    case DataType.DOUBLE: { const v = dv(8); for (let i = 0; i < n; i++) v.setFloat64(i * 8, t.data[i], true); break; }
    case DataType.INT64: {
      const v = dv(8);
      for (let i = 0; i < n; i++) {
        const x = Math.trunc(Math.max(-9223372036854775808, Math.min(9223372036854775807, t.data[i])));
        // a safe integer as two 32-bit words (no BigInt per element: index grids have many), others through BigInt
        if (Number.isSafeInteger(x)) { const hi = Math.floor(x / 4294967296); v.setUint32(i * 8, x - hi * 4294967296, true); v.setInt32(i * 8 + 4, hi, true); }
        else v.setBigInt64(i * 8, BigInt(x), true);
      }
      break;
    }
    case DataType.INT32: { const v = dv(4); for (let i = 0; i < n; i++) v.setInt32(i * 4, t.data[i], true); break; }
    case DataType.BOOL: case DataType.UINT8: { const v = dv(1); for (let i = 0; i < n; i++) v.setUint8(i, t.data[i]); break; }
    case DataType.INT8: { const v = dv(1); for (let i = 0; i < n; i++) v.setInt8(i, t.data[i]); break; }
    // Every other type decodeTensor reads can be written back too (a model's constant of any of them may
    // pass through a rewrite).
    case DataType.UINT64: { const v = dv(8); for (let i = 0; i < n; i++) v.setBigUint64(i * 8, BigInt(Math.trunc(Math.max(0, Math.min(18446744073709551615, t.data[i])))), true); break; }
    case DataType.UINT32: { const v = dv(4); for (let i = 0; i < n; i++) v.setUint32(i * 4, t.data[i], true); break; }
    case DataType.INT16: { const v = dv(2); for (let i = 0; i < n; i++) v.setInt16(i * 2, t.data[i], true); break; }
    case DataType.UINT16: { const v = dv(2); for (let i = 0; i < n; i++) v.setUint16(i * 2, t.data[i], true); break; }
    case DataType.FLOAT16: { const v = dv(2); for (let i = 0; i < n; i++) v.setUint16(i * 2, encodeHalf(t.data[i]), true); break; }
    default: throw new Error(`encodeTensor: data type ${t.dtype} is not supported`);
  }
  return onnx.TensorProto.create({ name, dims: t.dims, dataType: t.dtype, rawData: bytes! });
}

export function scalarTensor(dtype: number, value: number): Tensor {
  return makeTensor(dtype, [], [value]);
}
