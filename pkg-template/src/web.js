// Entry for browsers, bundlers, Deno and workers (wasm-bindgen's `web` target).
// The wasm is fetched lazily: the first `Sandbox.create/connect/list` (or an explicit
// `initialize()`) loads it, so importing the package costs nothing until it is used.
import init, { Sandbox, registerErrorClasses } from './sandlot.js';
import * as errors from './errors.js';

export * from './errors.js';
export { Sandbox };

let ready;

/**
 * Loads the wasm. Optional: the factories call it. Pass a URL, Response, bytes or a
 * `WebAssembly.Module` to load the wasm from somewhere else than next to this file.
 */
export function initialize(input) {
  ready ??= init(input === undefined ? undefined : { module_or_path: input }).then(
    () => registerErrorClasses(errors),
    (error) => {
      ready = undefined; // let a later call try again
      throw error;
    },
  );
  return ready;
}

// The factories are the only way to get a Sandbox, so they are where the wasm gets loaded.
for (const name of ['create', 'connect', 'list']) {
  const factory = Sandbox[name];
  Object.defineProperty(Sandbox, name, {
    value: async function (...args) {
      await initialize();
      return factory.apply(this, args);
    },
    writable: true,
    configurable: true,
  });
}
