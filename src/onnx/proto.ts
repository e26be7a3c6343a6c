// The ONNX protobuf schema, made lossless.
//
// onnx-proto is generated from ONNX 1.10 (IR 8). Models from newer exporters carry fields it does not know
// (metadata_props on nodes and graphs, function value_info / attribute_proto / overload, fields not yet
// invented). protobufjs's generated decoders skip such fields. We wrap every message type's decode and
// encode so that skipped fields are kept, as raw bytes, on the message (`$unknown`) and written back
// verbatim after the known fields. Field order inside a message may change on a round trip; the content
// does not.
//
// A message that is frozen with its encoding (frozenWithBytes: dynconv's own function bodies, built once per
// process and shared by every model that calls them) is written as those bytes without being encoded again;
// ownCopy gives a copy to edit.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import onnxProto from 'onnx-proto';

const require = createRequire(import.meta.url);
// The protobufjs instance that onnx-proto's generated code uses (it has its own nested copy).
const protobuf = require(require.resolve('protobufjs/minimal', { paths: [require.resolve('onnx-proto')] }));

// A namespace alias: `onnx.ModelProto` is both the class and the type, as in onnx-proto itself.
export import onnx = onnxProto.onnx;
export type Long = { low: number; high: number; unsigned: boolean; toNumber(): number; toString(): string };
export const LongClass: { fromNumber(n: number): Long; isLong(x: unknown): boolean } = protobuf.util.Long;

/** Raw bytes of fields the schema does not know, in the order they were read. */
export const UNKNOWN = '$unknown';
export interface WithUnknown {
  $unknown?: Uint8Array[];
}

let collecting: Uint8Array[] | null = null;
let lastVarintStart = 0;

function installUnknownFieldHooks(): void {
  const Reader = protobuf.Reader;
  if (Reader.prototype.__dynconvHooked) return;
  Reader.prototype.__dynconvHooked = true;
  const uint32 = Reader.prototype.uint32;
  const skipType = Reader.prototype.skipType;
  // Generated decoders read a field's tag with uint32() and, for an unknown field, call skipType() right after.
  Reader.prototype.uint32 = function (this: { pos: number }) {
    lastVarintStart = this.pos;
    return uint32.call(this);
  };
  // skipType calls itself for the fields inside a group (wire type 3); only the outermost call is a field
  // the decoder skipped, so only it is kept (protobufjs 6 passes no depth on that recursion).
  let skipping = false;
  Reader.prototype.skipType = function (this: { pos: number; buf: Uint8Array }, wireType: number, depth?: number) {
    if (skipping || depth !== undefined) return skipType.call(this, wireType, depth);
    const start = lastVarintStart;
    skipping = true;
    try {
      skipType.call(this, wireType);
    } finally {
      skipping = false;
    }
    (collecting ??= []).push(this.buf.subarray(start, this.pos));
    return this;
  };

  const writeRaw = (val: Uint8Array, buf: Uint8Array, pos: number) => buf.set(val, pos);
  const visit = (ns: object) => {
    for (const value of Object.values(ns)) {
      if (typeof value !== 'function') continue;
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const type = value as any;
      if (typeof type.decode !== 'function' || typeof type.encode !== 'function') continue;
      const decode = type.decode;
      const encode = type.encode;
      type.decode = function (reader: unknown, length?: number) {
        const outer = collecting;
        collecting = null;
        try {
          const message = decode.call(this, reader, length) as WithUnknown;
          if (collecting) message.$unknown = collecting;
          return message;
        } finally {
          collecting = outer;
        }
      };
      type.encode = function (message: WithUnknown & WithBytes, writer?: unknown) {
        const bytes = message[ENCODED];
        if (bytes) {
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const w: any = writer ?? protobuf.Writer.create();
          if (bytes.length) w._push(writeRaw, bytes.length, bytes);
          return w;
        }
        const w = encode.call(this, message, writer);
        const extra = message.$unknown;
        if (extra) for (const chunk of extra) w._push(writeRaw, chunk.length, chunk);
        return w;
      };
      visit(type); // nested types (TensorProto.Segment, TypeProto.Tensor, ...)
    }
  };
  visit(onnx);
}
installUnknownFieldHooks();

/** The encoding of a message frozen by frozenWithBytes (deeply: it cannot change, so neither can its bytes). */
const ENCODED = Symbol('dynconv.encoded');
interface WithBytes {
  [ENCODED]?: Uint8Array;
}

function deepFreeze(v: unknown): void {
  // byte arrays cannot be frozen; nothing writes into a tensor's bytes
  if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v) || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v)) deepFreeze(x);
}

/**
 * The message deeply frozen, with its encoding: every later encode writes those bytes as they are. For a message
 * shared by many models (a function body); the message itself is returned.
 */
export function frozenWithBytes<T extends object>(type: { encode(m: T): { finish(): Uint8Array } }, message: T): T {
  const bytes = type.encode(message).finish();
  // not enumerable: the bytes are no field, and copies ({ ...message }) and deep comparisons must not see them
  Object.defineProperty(message, ENCODED, { value: bytes });
  deepFreeze(message);
  return message;
}

/** Whether the message was frozen with its bytes (frozenWithBytes). */
export function isShared(message: object): boolean {
  return (message as WithBytes)[ENCODED] !== undefined;
}

/** A copy of a frozen message that can be edited (decoded from its bytes). */
export function ownCopy<T extends object>(type: { decode(bytes: Uint8Array): T }, message: T): T {
  const bytes = (message as WithBytes)[ENCODED];
  if (!bytes) throw new Error('internal: ownCopy of a message that was not frozen with its bytes');
  return type.decode(bytes);
}

export function decodeModel(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function encodeModel(model: onnxProto.onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Size in bytes a message will take when encoded, without allocating it. */
export function encodedLength(model: onnxProto.onnx.IModelProto): number {
  return onnx.ModelProto.encode(model).len;
}

/** A model encoding in progress: its length is known, its bytes are allocated and copied by finish(). */
export interface ModelWriter {
  readonly len: number;
  finish(): Uint8Array;
}

export function modelWriter(model: onnxProto.onnx.IModelProto): ModelWriter {
  return onnx.ModelProto.encode(model);
}

/** One queued write of a protobufjs Writer (its internal linked list, stable across protobufjs 6). */
interface WriterOp {
  fn: (val: unknown, buf: Uint8Array, pos: number) => void;
  len: number;
  val: unknown;
  next: WriterOp | null;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Writes an encoding to a file without ever holding all of it: small fields are gathered in a chunk, large
 * byte fields (weights) go to the file straight from the tensors. The bytes are those finish() would give.
 */
export function writeModelTo(writer: ModelWriter, fd: number, chunkSize = 1 << 20): void {
  const head = (writer as unknown as { head?: WriterOp }).head;
  if (!head || typeof head.fn !== 'function' || !('next' in head)) {
    writeAll(fd, writer.finish()); // not the protobufjs writer this was written for: the plain way
    return;
  }
  chunkSize = Math.max(1, Math.min(chunkSize, writer.len)); // a small model needs no 1 MiB buffer
  const chunk: Uint8Array = protobuf.util.Buffer ? protobuf.util.Buffer.allocUnsafe(chunkSize) : new Uint8Array(chunkSize);
  let pos = 0;
  let written = 0;
  const flush = () => {
    writeAll(fd, chunk.subarray(0, pos));
    written += pos;
    pos = 0;
  };
  for (let op = head.next; op; op = op.next) {
    if (op.len > chunkSize - pos) {
      flush();
      if (op.len > chunkSize) {
        if (op.val instanceof Uint8Array && op.val.length === op.len) writeAll(fd, op.val); // a bytes field, as is
        else {
          const big: Uint8Array = protobuf.util.Buffer ? protobuf.util.Buffer.allocUnsafe(op.len) : new Uint8Array(op.len);
          op.fn(op.val, big, 0);
          writeAll(fd, big);
        }
        written += op.len;
        continue;
      }
    }
    op.fn(op.val, chunk, pos);
    pos += op.len;
  }
  flush();
  if (written !== writer.len) throw new Error(`internal: streamed ${written} bytes of a ${writer.len}-byte encoding`);
}

export function toNumber(v: number | Long | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function toLong(n: number): Long {
  return LongClass.fromNumber(n);
}

export const DataType = onnx.TensorProto.DataType;
export const AttrType = onnx.AttributeProto.AttributeType;

export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type FunctionProto = onnxProto.onnx.IFunctionProto;
export type TypeProto = onnxProto.onnx.ITypeProto;
