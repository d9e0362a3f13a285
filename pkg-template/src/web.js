// Entry for browsers, bundlers, Deno and workers (wasm-bindgen's `web` target).
// The wasm is fetched lazily: the first `Sandbox.create/connect/list` (or an explicit
// `initialize()`) loads it, so importing the package costs nothing until it is used.
// The `export {} from` lines are filled in by the build (scripts/assemble-sdk.mjs) with
// every public name of the module they name.
import init, * as glue from './sandlot.js';
import * as errors from './errors.js';
import { extend } from './surface.js';

export * from './errors.js';
export {} from './sandlot.js';
export {} from './surface.js';

extend(glue.Sandbox, errors);

let ready;
let loaded = false;

/**
 * Loads the wasm. Optional: the factories call it. Pass a URL, Response, bytes or a
 * `WebAssembly.Module` to load the wasm from somewhere else than next to this file.
 */
export function initialize(input) {
  ready ??= init(input === undefined ? undefined : { module_or_path: input }).then(
    () => {
      glue.registerErrorClasses(errors);
      loaded = true;
    },
    (error) => {
      ready = undefined; // let a later call try again
      throw error;
    },
  );
  return ready;
}

// The factories are the only way to get a Sandbox, so they are where the wasm gets loaded.
for (const name of ['create', 'connect', 'list']) {
  const factory = glue.Sandbox[name];
  Object.defineProperty(glue.Sandbox, name, {
    value: async function (...args) {
      await initialize();
      return factory.apply(this, args);
    },
    writable: true,
    configurable: true,
  });
}

/**
 * Checks an async-execution callback's signature. Synchronous, so in this (browser) entry the
 * wasm must be loaded first: `await initialize()`.
 */
export function verifyWebhookSignature(options) {
  if (!loaded) {
    throw new errors.SandlotError('call `await initialize()` before verifyWebhookSignature', { code: 'NOT_INITIALIZED' });
  }
  return glue.verifyWebhookSignature(options);
}
