// The JS surface over the wasm classes, in the spirit of a thin wrapper that adds handles and
// iterators without moving logic out of Rust:
//   - process records (runCodeBackground, getProcess, listProcesses, waitForProcess) become
//     process handles: their data stays as own properties, and methods come from one shared
//     prototype, so a list of a thousand records costs one prototype link per record;
//   - stream calls (runCodeStream, streamProcess) return a StreamPromise: await it for the
//     stream, or iterate it directly with `for await`.
// Every entry installs it once at load (`extend`). This file is the single source: the build
// derives the CommonJS copy from it.

/** Where a process handle's prototype keeps its sandbox. */
const SANDBOX = Symbol('sandlot.sandbox');

/** The wasm methods before `extend` wrapped them: handles call these, not the wrappers. */
const raw = {};

/**
 * A background process. Has the record's data as its own properties (`processId`, `status`,
 * ...; `JSON.stringify` gives exactly that data) and these methods, modelled on E2B's
 * CommandHandle. Every method takes an optional `signal` in its options.
 */
export class ProcessHandle {
  /**
   * Waits until the process has ended; the handle then holds the final record, and is the
   * result. Options: `timeout` (seconds: `TimeoutError` once it passes, the process running
   * on), `interval` (seconds between looks), `signal`.
   */
  async wait(options) {
    return Object.assign(this, await raw.waitForProcess.call(this[SANDBOX], this.processId, options));
  }

  /** Kills the process; the handle's `status` follows. Resolves with the server's reply. */
  async kill(options) {
    const reply = await raw.killProcess.call(this[SANDBOX], this.processId, options);
    this.status = reply.status;
    return reply;
  }

  /** Follows the process's output live (`since`, `lines`, `signal`): a StreamPromise. */
  stream(options) {
    return this[SANDBOX].streamProcess(this.processId, options);
  }

  /** Reads the process's record again into the handle, and resolves with the handle. */
  async refresh(options) {
    return Object.assign(this, await raw.getProcess.call(this[SANDBOX], this.processId, options));
  }
}

/** Per sandbox, the prototype its handles share: the methods, and the sandbox they act on. */
const prototypes = new WeakMap();

function handlePrototype(sandbox) {
  let proto = prototypes.get(sandbox);
  if (!proto) {
    proto = Object.create(ProcessHandle.prototype, { [SANDBOX]: { value: sandbox } });
    prototypes.set(sandbox, proto);
  }
  return proto;
}

/**
 * What a stream call returns: a Promise of the stream (for `await`, `.then`, `Promise.all`)
 * that is also an async iterable of its events (for `for await` without the `await`). A
 * failure is never an unhandled rejection: it reaches whoever awaits or iterates the call.
 */
class StreamPromise extends Promise {
  // `.then` and friends return plain promises.
  static get [Symbol.species]() {
    return Promise;
  }

  [Symbol.asyncIterator]() {
    let iterator;
    const open = () => (iterator ??= this.then((stream) => stream[Symbol.asyncIterator]()));
    return {
      next: async () => (await open()).next(),
      // Leaving a `for await` early closes the stream, if it ever opened.
      return: async (value) => {
        const it = await open().catch(() => undefined);
        return it?.return ? it.return(value) : { value, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}

/**
 * Runs `open` (which returns the promise of a stream: process output today, file watches or
 * terminals tomorrow) and returns that promise as a StreamPromise. A synchronous throw of
 * `open` becomes the rejection too.
 */
export function streaming(open) {
  const call = new StreamPromise((resolve) => resolve(open()));
  call.catch(() => {}); // handled here; whoever awaits or iterates still gets the error
  return call;
}

/** Sandbox methods that resolve to a process record (or a list of them). */
const RECORD_CALLS = ['runCodeBackground', 'getProcess', 'waitForProcess'];
/** Sandbox methods that open a stream; later streams (file watches, terminals) join here. */
const STREAM_CALLS = ['runCodeStream', 'streamProcess'];

/**
 * `sandbox.commands`: `run(command, options)` resolves with a `CommandResult`, or with a
 * process handle when `background` is set (E2B's and HopX's shape).
 */
class Commands {
  #sandbox;
  constructor(sandbox) {
    this.#sandbox = sandbox;
  }

  async run(command, options) {
    const result = await this.#sandbox.runCommand(command, options);
    return options?.background ? Object.setPrototypeOf(result, handlePrototype(this.#sandbox)) : result;
  }
}

/** Gives the wasm `Sandbox` class its JS surface. Called once per loaded glue. */
export function extend(Sandbox) {
  const proto = Sandbox.prototype;
  Object.defineProperty(proto, 'commands', {
    get() {
      return new Commands(this);
    },
    configurable: true,
  });
  for (const name of [...RECORD_CALLS, ...STREAM_CALLS, 'listProcesses', 'killProcess']) {
    raw[name] = proto[name];
  }
  const define = (name, value) => Object.defineProperty(proto, name, { value, writable: true, configurable: true });
  for (const name of RECORD_CALLS) {
    define(name, async function (...args) {
      return Object.setPrototypeOf(await raw[name].apply(this, args), handlePrototype(this));
    });
  }
  define('listProcesses', async function (...args) {
    const list = await raw.listProcesses.apply(this, args);
    const proto = handlePrototype(this);
    for (const record of list) Object.setPrototypeOf(record, proto);
    return list;
  });
  for (const name of STREAM_CALLS) {
    define(name, function (...args) {
      return streaming(() => raw[name].apply(this, args));
    });
  }
}
