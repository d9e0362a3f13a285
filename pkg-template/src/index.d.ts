// Public types of the `sandlot` package. `./api.js` is the declaration file wasm-bindgen
// generates from the Rust crate (the Sandbox class and every option/result type).
export * from './api.js';
export * from './errors.js';

/**
 * Loads the wasm. Optional: `Sandbox.create`, `connect` and `list` call it. In browsers you
 * may pass where to load the wasm from (URL, Response, bytes or a WebAssembly.Module).
 */
export declare function initialize(
  input?: string | URL | Request | Response | BufferSource | WebAssembly.Module,
): Promise<void>;
