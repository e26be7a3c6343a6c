// Tensors stored outside the model file (ONNX external data: `location`, `offset`, `length`).
// A location is trusted only when it names a file inside the model's folder: absolute paths, `..` and
// symbolic links that lead outside are refused before any byte is read.
import fs from 'node:fs';
import path from 'node:path';
import { badInput, quoteName } from '../errors.js';
import { DataType, onnx, toNumber, type TensorProto } from './proto.js';

export interface ExternalRef {
  location: string;
  offset: number;
  length: number | undefined;
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
}

/** `source` (the model file) prefixes error messages. */
export function externalRef(t: TensorProto, source?: string): ExternalRef {
  const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location');
  const where = tensorWhere(t, source);
  if (!location) throw badInput(where, 'external data has no location');
  const offset = entries.has('offset') ? Number(entries.get('offset')) : 0;
  const length = entries.has('length') ? Number(entries.get('length')) : undefined;
  if (!Number.isSafeInteger(offset) || offset < 0) throw badInput(where, `external data offset ${quoteName(entries.get('offset'))} is not a valid byte offset`);
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw badInput(where, `external data length ${quoteName(entries.get('length'))} is not a valid byte count`);
  return { location, offset, length };
}

/** Resolves a location against the model folder, refusing anything that leaves it. */
export function resolveLocation(modelDir: string, location: string, where: string): string {
  if (location.includes('\0')) throw badInput(where, 'external data location contains a NUL byte');
  if (path.isAbsolute(location) || /^[A-Za-z]:[\\/]/.test(location)) throw badInput(where, `external data location ${quoteName(location)} is absolute; only paths inside the model's folder are allowed`);
  const parts = location.split(/[\\/]+/);
  if (parts.includes('..')) throw badInput(where, `external data location ${quoteName(location)} contains '..'; only paths inside the model's folder are allowed`);
  const full = path.resolve(modelDir, location);
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch {
    throw badInput(where, `external data file ${quoteName(location)} does not exist beside the model`);
  }
  const realDir = fs.realpathSync(modelDir);
  if (real !== realDir && !real.startsWith(realDir + path.sep)) throw badInput(where, `external data location ${quoteName(location)} resolves through a symbolic link to outside the model's folder`);
  if (!fs.statSync(real).isFile()) throw badInput(where, `external data location ${quoteName(location)} is not a regular file`);
  return real;
}

/** Bytes per element of a data type, for types that raw_data stores densely (0 = not fixed). */
export function elementBytes(dataType: number): number {
  switch (dataType) {
    case DataType.FLOAT: case DataType.INT32: case DataType.UINT32: return 4;
    case DataType.DOUBLE: case DataType.INT64: case DataType.UINT64: case DataType.COMPLEX64: return 8;
    case DataType.COMPLEX128: return 16;
    case DataType.FLOAT16: case DataType.BFLOAT16: case DataType.INT16: case DataType.UINT16: return 2;
    case DataType.INT8: case DataType.UINT8: case DataType.BOOL: return 1;
    case 17: case 18: case 19: case 20: return 1; // float8 variants (IR 9)
    default: return 0; // strings, 4-bit types, unknown future types
  }
}

/** The number of elements a tensor's dims say it has; a dim that is not a size (negative) is bad input. */
export function tensorElementCount(t: TensorProto): number {
  let n = 1;
  (t.dims ?? []).forEach((d, i) => {
    const v = toNumber(d);
    if (!Number.isSafeInteger(v) || v < 0) throw badInput(`tensor ${quoteName(t.name)}`, `dimension ${i} is ${v}, which is not a size`);
    n *= v;
  });
  return n;
}

function tensorWhere(t: TensorProto, source?: string): string {
  return `${source ? `${source}: ` : ''}tensor ${quoteName(t.name)}`;
}

/** Reads a tensor's external bytes. The caller has validated locations at load time. */
export function readExternal(modelDir: string, t: TensorProto, source?: string): Uint8Array {
  const ref = externalRef(t, source);
  const where = tensorWhere(t, source);
  const file = resolveLocation(modelDir, ref.location, where);
  const size = fs.statSync(file).size;
  const eb = elementBytes(t.dataType ?? 0);
  const length = ref.length ?? (eb ? eb * tensorElementCount(t) : Math.max(0, size - ref.offset));
  if (ref.offset > size || ref.offset + length > size) throw badInput(where, `external data [${ref.offset}, ${ref.offset + length}) lies past the end of ${quoteName(ref.location)} (${size} bytes)`);
  const out = new Uint8Array(length);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, out, done, length - done, ref.offset + done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}
