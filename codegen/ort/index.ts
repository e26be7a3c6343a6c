// The ONNX Runtime custom-op back end of dynconv.
export { hostArch, ORT_ARCHES, ortToolchain, parseOrtArch, type OrtArch, type OrtToolchain } from './arch.js';
export { buildOrtLibrary, emitOrtLibrary, ORT_LIBRARY_NAME, ORT_MANIFEST_NAME, type EmitOrtOptions, type OrtLibraryManifest } from './emit.js';
export { OrtHeadersMissingError, ortHeadersPresent, ortIncludeDir, ortSharedLibrary, requireOrtHeaders } from './paths.js';
