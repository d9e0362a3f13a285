// Process handles (the records of background runs, with methods) and stream promises.

import { raw, records, SANDBOX } from './core.js';

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
    const record = await raw.waitForProcess.call(this[SANDBOX], this.processId, options);
    return Object.assign(this, records.Process(record, Object.prototype));
  }

  /** Kills the process; the handle's `status` follows. Resolves with the server's reply. */
  async kill(options) {
    const reply = records.ProcessActionResult(await raw.killProcess.call(this[SANDBOX], this.processId, options), Object.prototype);
    this.status = reply.status;
    return reply;
  }

  /** Follows the process's output live (`since`, `lines`, `signal`): a StreamPromise. */
  stream(options) {
    return this[SANDBOX].streamProcess(this.processId, options);
  }

  /** Reads the process's record again into the handle, and resolves with the handle. */
  async refresh(options) {
    const record = await raw.getProcess.call(this[SANDBOX], this.processId, options);
    return Object.assign(this, records.Process(record, Object.prototype));
  }
}

/** Per sandbox, the prototype its handles share: the methods, and the sandbox they act on. */
const prototypes = new WeakMap();

export function handlePrototype(sandbox) {
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

/** Sandbox methods that resolve to a wire process record. */
export const RECORD_CALLS = ['getProcess', 'waitForProcess'];
/** Sandbox methods that resolve to another wire reply, by the type of their result. */
export const RESULT_CALLS = { runCodeAsync: 'AsyncExecution', killProcess: 'ProcessActionResult', removeProcess: 'ProcessActionResult' };
/** Sandbox methods that open a stream; later streams (file watches, terminals) join here. */
export const STREAM_CALLS = ['runCodeStream', 'streamProcess'];
