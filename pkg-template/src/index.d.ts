// Public types of the `sandlot` package. The build merges this file with the declarations
// generated from the Rust crate (the Sandbox class and every option/result type), errors.d.ts
// and surface.d.ts into one file that every entry re-exports; the export lines are for editors.
export * from './api.js';
export * from './errors.js';
export * from './surface.js';

/**
 * Loads the wasm. Optional: `Sandbox.create`, `connect` and `list` call it. In browsers you
 * may pass where to load the wasm from (URL, Response, bytes or a WebAssembly.Module).
 */
export declare function initialize(
  input?: string | URL | Request | Response | BufferSource | WebAssembly.Module,
): Promise<void>;
