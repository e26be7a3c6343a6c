// A tiny protobuf wire-format writer and reader, independent of protobufjs, for building messages that carry
// fields a schema does not know and for checking, byte for byte, what a saved file holds.

export type Bytes = Uint8Array | number[];

export const WIRE = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

export function varint(v: number | bigint): number[] {
  let n = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (n > 0x7fn) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}

export function tag(field: number, wire: number): number[] {
  return varint((BigInt(field) << 3n) | BigInt(wire));
}

export function concat(...parts: Bytes[]): Uint8Array {
  const len = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** One field, encoded. */
export const field = {
  varint: (f: number, v: number | bigint) => concat(tag(f, WIRE.VARINT), varint(v)),
  fixed64: (f: number, v: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    return concat(tag(f, WIRE.I64), b);
  },
  fixed32: (f: number, v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return concat(tag(f, WIRE.I32), b);
  },
  bytes: (f: number, v: Bytes | string) => {
    const b = typeof v === 'string' ? utf8(v) : v;
    return concat(tag(f, WIRE.LEN), varint(b.length), b);
  },
  group: (f: number, inner: Bytes) => concat(tag(f, WIRE.SGROUP), inner, tag(f, WIRE.EGROUP)),
  /** A StringStringEntryProto (key = 1, value = 2) as field f. */
  entry: (f: number, key: string, value: string) => field.bytes(f, concat(field.bytes(1, key), field.bytes(2, value))),
};

export interface RawField {
  field: number;
  wire: number;
  /** The payload: the varint's value, the fixed bytes, the length-delimited content, or a group's inside. */
  value: bigint | Uint8Array;
  /** The whole field, tag included. */
  raw: Uint8Array;
}

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('pb: varint runs past the end');
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [v, pos];
    shift += 7n;
    if (shift > 63n) throw new Error('pb: varint too long');
  }
}

function readField(buf: Uint8Array, pos: number): [RawField | { endGroup: number }, number] {
  const start = pos;
  const [t, p] = readVarint(buf, pos);
  pos = p;
  const f = Number(t >> 3n);
  const wire = Number(t & 7n);
  let value: bigint | Uint8Array;
  switch (wire) {
    case WIRE.VARINT: [value, pos] = readVarint(buf, pos); break;
    case WIRE.I64: value = buf.subarray(pos, pos + 8); pos += 8; break;
    case WIRE.I32: value = buf.subarray(pos, pos + 4); pos += 4; break;
    case WIRE.LEN: {
      const [len, q] = readVarint(buf, pos);
      value = buf.subarray(q, q + Number(len));
      pos = q + Number(len);
      break;
    }
    case WIRE.SGROUP: {
      const inner = pos;
      let innerEnd = pos;
      for (;;) {
        innerEnd = pos;
        const [r, q] = readField(buf, pos);
        pos = q;
        if ('endGroup' in r) {
          if (r.endGroup !== f) throw new Error('pb: mismatched end group');
          break;
        }
      }
      value = buf.subarray(inner, innerEnd);
      break;
    }
    case WIRE.EGROUP: return [{ endGroup: f }, pos];
    default: throw new Error(`pb: wire type ${wire}`);
  }
  if (pos > buf.length) throw new Error('pb: field runs past the end');
  return [{ field: f, wire, value, raw: buf.subarray(start, pos) }, pos];
}

/** The fields of a message, in order. */
export function parseFields(buf: Uint8Array): RawField[] {
  const out: RawField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [r, q] = readField(buf, pos);
    if ('endGroup' in r) throw new Error('pb: stray end group');
    out.push(r);
    pos = q;
  }
  return out;
}

/** The fields numbered f (in order). */
export function fieldsNumbered(buf: Uint8Array, f: number): RawField[] {
  return parseFields(buf).filter((x) => x.field === f);
}

/** The content of the length-delimited fields numbered f (sub-messages). */
export function subMessages(buf: Uint8Array, f: number): Uint8Array[] {
  return fieldsNumbered(buf, f).map((x) => x.value as Uint8Array);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
