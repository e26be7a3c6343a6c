// The ONNX Runtime custom-op back end of dynconv.
export { buildOrtLibrary, emitOrtLibrary, ORT_LIBRARY_NAME, ORT_MANIFEST_NAME, type OrtLibraryManifest } from './emit.js';
export {
  decodeTensorFile,
  encodeTensorFile,
  ensureOrtRunner,
  OrtRunError,
  runWithOrtLibrary,
  type FloatTensor,
  type RunWithOrtOptions,
  type RunWithOrtResult,
} from './runner.js';
export { OrtHeadersMissingError, ortHeadersPresent, ortIncludeDir, ortSharedLibrary, requireOrtHeaders } from './paths.js';
