// The ONNX Runtime custom-op back end of dynconv.
export { buildOrtLibrary, emitOrtLibrary, ORT_LIBRARY_NAME, ORT_MANIFEST_NAME, type OrtLibraryManifest } from './emit.js';
export { OrtHeadersMissingError, ortHeadersPresent, ortIncludeDir, ortSharedLibrary, requireOrtHeaders } from './paths.js';
