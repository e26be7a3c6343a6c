// Loading and saving ONNX models: files or bytes, external data in and out, nothing lost on the way.
import fs from 'node:fs';
import path from 'node:path';
import { badInput, DynconvError, quoteName } from '../errors.js';
import { writeFilesAtomically, type PendingFile } from '../util/atomic-write.js';
import { elementBytes, externalRef, isExternal, readExternal, resolveLocation, tensorElementCount } from './external-data.js';
import { decodeModel, encodeModel, isShared, modelWriter, onnx, ownCopy, writeModelTo, type ModelWriter, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from './proto.js';

export interface LoadedModel {
  proto: ModelProto;
  /** The file it came from; undefined when loaded from bytes. */
  path?: string;
  /** Folder that external data locations are relative to. */
  dir: string;
}

/**
 * Calls fn on every TensorProto in the model: initializers, constants in attributes, subgraphs, functions.
 * `skipShared`: not in the function bodies dynconv shares between models (built in memory: no external data).
 */
export function forEachTensor(model: ModelProto, fn: (t: TensorProto) => void, opts: { skipShared?: boolean } = {}): void {
  const visitNodes = (nodes: NodeProto[] | null | undefined) => {
    for (const n of nodes ?? []) {
      for (const a of n.attribute ?? []) {
        if (a.t) fn(a.t);
        for (const t of a.tensors ?? []) fn(t);
        if (a.sparseTensor) { if (a.sparseTensor.values) fn(a.sparseTensor.values); if (a.sparseTensor.indices) fn(a.sparseTensor.indices); }
        for (const s of a.sparseTensors ?? []) { if (s.values) fn(s.values); if (s.indices) fn(s.indices); }
        if (a.g) visitGraph(a.g);
        for (const g of a.graphs ?? []) visitGraph(g);
      }
    }
  };
  const visitGraph = (g: GraphProto) => {
    for (const t of g.initializer ?? []) fn(t);
    for (const s of g.sparseInitializer ?? []) { if (s.values) fn(s.values); if (s.indices) fn(s.indices); }
    visitNodes(g.node);
  };
  if (model.graph) visitGraph(model.graph);
  for (const f of model.functions ?? []) if (!(opts.skipShared && isShared(f))) visitNodes(f.node);
}

function describeDecodeFailure(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/index out of range/.test(msg)) return 'truncated or corrupt protobuf (a field runs past the end of the data)';
  if (/invalid wire type/.test(msg)) return `corrupt protobuf (${msg})`;
  return `not a valid ONNX protobuf (${msg})`;
}

/** Decodes model bytes; `where` names the source in errors. */
export function loadModelFromBytes(bytes: Uint8Array, where = '<bytes>', dir = process.cwd()): LoadedModel {
  if (bytes.length === 0) throw badInput(where, 'the file is empty');
  let proto: ModelProto;
  try {
    proto = decodeModel(bytes);
  } catch (e) {
    throw badInput(where, describeDecodeFailure(e));
  }
  if (!proto.graph) throw badInput(where, 'not an ONNX model: it has no graph (is this really a .onnx file?)');
  if ((proto.opsetImport ?? []).length === 0 && Number(proto.irVersion ?? 0) === 0) throw badInput(where, 'not an ONNX model: no IR version and no opset imports');
  const loaded: LoadedModel = { proto, dir };
  // Refuse escaping external data up front, before any command reads a byte of it.
  forEachTensor(proto, (t) => {
    if (!isExternal(t)) return;
    const ref = externalRef(t, where);
    resolveLocation(dir, ref.location, `${where}: tensor ${quoteName(t.name)}`);
  });
  return loaded;
}

export function loadModel(file: string): LoadedModel {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw badInput(file, 'no such file');
  }
  if (stat.isDirectory()) throw badInput(file, 'is a directory, not an ONNX model file');
  if (!stat.isFile()) throw badInput(file, 'is not a regular file');
  if (stat.size >= 2 ** 31) throw badInput(file, 'is larger than 2 GiB, which a single ONNX protobuf cannot be; large models keep their weights in external data');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw badInput(file, `cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  const loaded = loadModelFromBytes(bytes, file, path.dirname(path.resolve(file)));
  loaded.path = file;
  return loaded;
}

/** The bytes of a tensor's data, wherever they are stored (inline raw_data or external). Typed fields give undefined. */
export function tensorRawBytes(model: LoadedModel, t: TensorProto): Uint8Array | undefined {
  if (isExternal(t)) return readExternal(model.dir, t, model.path);
  if (t.rawData && t.rawData.length) return t.rawData;
  return undefined;
}

export type ExternalDataMode =
  | { kind: 'keep' }
  | { kind: 'inline' }
  /** Tensors of at least `threshold` bytes go to the side file `location` (relative to the model). */
  | { kind: 'external'; threshold: number; location: string };

export interface SaveOptions {
  externalData?: ExternalDataMode;
  /** Told when the model had to move tensors to external data to stay under protobuf's 2 GiB. */
  onWarning?: (message: string) => void;
}

const PROTOBUF_LIMIT = 2 ** 31 - 1;
const EXTERNAL_ALIGNMENT = 64;

/** The storage fields of a tensor as they were, own property or not, so that saving leaves no trace. */
interface TensorState {
  t: TensorProto;
  own: boolean[];
  values: unknown[];
}
const STORAGE_FIELDS = ['rawData', 'dataLocation', 'externalData'] as const;

function snapshot(t: TensorProto): TensorState {
  return { t, own: STORAGE_FIELDS.map((k) => Object.prototype.hasOwnProperty.call(t, k)), values: STORAGE_FIELDS.map((k) => t[k]) };
}

// A decoded message reads unset fields from its prototype's defaults; assigning them would make them own
// properties, which the encoder then writes (an empty raw_data beside float_data, data_location 0).
function restoreTensor(s: TensorState): void {
  const t = s.t as Record<string, unknown>;
  STORAGE_FIELDS.forEach((k, i) => {
    if (s.own[i]) t[k] = s.values[i];
    else delete t[k];
  });
}

function checkedOutputLocation(outDir: string, location: string): string {
  if (path.isAbsolute(location) || location.split(/[\\/]+/).includes('..')) throw badInput(location, 'external data location must be a relative path inside the output folder');
  return path.resolve(outDir, location);
}

/**
 * Saves a model to a file, with its external data beside it. Every file is written whole or not at all.
 * Returns the files written (absolute paths).
 * `keep` copies the side files of the source model (same names, same offsets) unless source and target
 * folders are the same.
 */
export function saveModel(model: LoadedModel, file: string, options: SaveOptions = {}): string[] {
  const outDir = path.dirname(path.resolve(file));
  let mode = options.externalData ?? { kind: 'keep' };
  const tensors: TensorProto[] = [];
  let saved: TensorState[] = [];
  const pending: PendingFile[] = [];
  const functions = model.proto.functions;
  // The model is encoded once (the writer knows its length before any byte is copied); only a keep-layout
  // model found to be over 2 GiB is encoded again, after its tensors moved out.
  let writer: ModelWriter | undefined;
  try {
    if (mode.kind === 'keep') {
      writer = modelWriter(model.proto);
      if (writer.len > PROTOBUF_LIMIT) {
        writer = undefined;
        const location = `${path.basename(file)}.data`;
        options.onWarning?.(`the model is over 2 GiB inline; tensors of 1 KiB and more are written to ${location}`);
        mode = { kind: 'external', threshold: 1024, location };
      }
    }
    if (mode.kind !== 'keep') {
      // The modes that rewrite tensors (and put them back afterwards) rewrite those of shared function bodies
      // too: for this save the model calls copies of its own.
      if (functions?.some(isShared)) model.proto.functions = functions.map((f) => (isShared(f) ? ownCopy(onnx.FunctionProto, f) : f));
      forEachTensor(model.proto, (t) => tensors.push(t));
      saved = tensors.map(snapshot);
    } else {
      forEachTensor(model.proto, (t) => { if (isExternal(t)) tensors.push(t); }, { skipShared: true });
    }
    if (mode.kind === 'keep') {
      const locations = new Set<string>();
      for (const t of tensors) locations.add(externalRef(t).location);
      // (the folders are compared only when there are side files to copy: resolving them costs a stat per path part)
      const sameDir = locations.size === 0 || (fs.existsSync(outDir) && fs.realpathSync(outDir) === fs.realpathSync(model.dir));
      if (!sameDir) {
        for (const location of locations) {
          const source = resolveLocation(model.dir, location, `tensor data ${quoteName(location)}`);
          pending.push({ target: checkedOutputLocation(outDir, location), write: (tmp) => fs.copyFileSync(source, tmp) });
        }
      }
    } else if (mode.kind === 'inline') {
      for (const t of tensors) {
        if (!isExternal(t)) continue;
        t.rawData = readExternal(model.dir, t, model.path);
        t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
        t.externalData = [];
      }
    } else {
      const { threshold, location } = mode;
      const chunks: Uint8Array[] = [];
      let offset = 0;
      for (const t of tensors) {
        const bytes = isExternal(t) ? readExternal(model.dir, t, model.path) : t.rawData && t.rawData.length ? t.rawData : undefined;
        if (!bytes) continue;
        if (bytes.length < threshold) {
          if (isExternal(t)) { t.rawData = bytes; t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT; t.externalData = []; }
          continue;
        }
        const pad = (EXTERNAL_ALIGNMENT - (offset % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
        if (pad) { chunks.push(new Uint8Array(pad)); offset += pad; }
        chunks.push(bytes);
        t.rawData = new Uint8Array(0);
        t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        t.externalData = [
          onnx.StringStringEntryProto.create({ key: 'location', value: location }),
          onnx.StringStringEntryProto.create({ key: 'offset', value: String(offset) }),
          onnx.StringStringEntryProto.create({ key: 'length', value: String(bytes.length) }),
        ];
        offset += bytes.length;
      }
      pending.push({
        target: checkedOutputLocation(outDir, location),
        write: (tmp) => {
          const fd = fs.openSync(tmp, 'w');
          try { for (const c of chunks) fs.writeSync(fd, c); } finally { fs.closeSync(fd); }
        },
      });
    }
    const encoding = (writer ??= modelWriter(model.proto));
    if (encoding.len > PROTOBUF_LIMIT) throw new DynconvError(`${file}: the model would be over 2 GiB inline; save it with external data (--external-data)`);
    // Streamed to the file: the encoded model is never in memory whole beside the loaded one.
    pending.push({
      target: path.resolve(file),
      write: (tmp) => {
        const fd = fs.openSync(tmp, 'w');
        try { writeModelTo(encoding, fd); } finally { fs.closeSync(fd); }
      },
    });
    writeFilesAtomically(pending);
    return pending.map((f) => f.target);
  } finally {
    for (const s of saved) restoreTensor(s);
    if (model.proto.functions !== functions) model.proto.functions = functions;
  }
}

/** Encodes a model whose tensors are all inline (external ones are read in). */
export function saveModelToBytes(model: LoadedModel): Uint8Array {
  const restore: TensorState[] = [];
  forEachTensor(model.proto, (t) => {
    if (!isExternal(t)) return;
    restore.push(snapshot(t));
    t.rawData = readExternal(model.dir, t, model.path);
    t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    t.externalData = [];
  }, { skipShared: true });
  try {
    return encodeModel(model.proto);
  } finally {
    for (const s of restore) restoreTensor(s);
  }
}

export { elementBytes, tensorElementCount };
