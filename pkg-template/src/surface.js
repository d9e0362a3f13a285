// The JS surface over the wasm classes, in the spirit of a thin wrapper that adds handles and
// iterators without moving logic out of Rust:
//   - process records (runCodeBackground, getProcess, listProcesses, waitForProcess) become
//     process handles: their data stays as own properties, and methods come from one shared
//     prototype, so a list of a thousand records costs one prototype link per record. The
//     wasm hands the records of all four over as parsed wire replies (snake_case), and
//     `records.Process` (`records.BackgroundExecution`), which the build generates from the
//     Rust table `PROCESS_RECORD` (src/types/process.rs), maps each in one pass onto its handle;
//   - the results of runCode, runCodeAsync, killProcess and removeProcess are mapped alike
//     (`records.ExecutionResult`, ... : src/types/record.rs lists the tables);
//   - stream calls (runCodeStream, streamProcess) return a StreamPromise: await it for the
//     stream, or iterate it directly with `for await`.
// Every entry installs it once at load (`extend`). This file is the single source: the build
// derives the CommonJS copy from it.

/** Where a process handle's prototype keeps its sandbox. */
const SANDBOX = Symbol('sandlot.sandbox');

/** The wasm methods before `extend` wrapped them: handles call these, not the wrappers. */
const raw = {};

/** The package's error classes (given to `extend`). */
let errors;

/** A wire record the mapper cannot read: the server's fault, as the wasm reports it. */
function unreadable(expected) {
  return new errors.SandlotError(`unexpected reply from the server: expected ${expected}`, { code: 'INVALID_RESPONSE' });
}

// `records.X(wire, proto)`: a parsed wire reply → a record of type X on `proto`, one function
// per Rust table (src/types/record.rs). The build replaces the next line with them.
const records = undefined; // @generated records

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

/** Sandbox methods that resolve to a wire process record. */
const RECORD_CALLS = ['getProcess', 'waitForProcess'];
/** Sandbox methods that resolve to another wire reply, by the type of their result. */
const RESULT_CALLS = { runCode: 'ExecutionResult', runCodeAsync: 'AsyncExecution', killProcess: 'ProcessActionResult', removeProcess: 'ProcessActionResult' };
/** Sandbox methods that open a stream; later streams (file watches, terminals) join here. */
const STREAM_CALLS = ['runCodeStream', 'streamProcess'];

/** A refused argument, as the wasm side reports one. */
function invalid(message) {
  return new errors.ValidationError(message, { code: 'INVALID_ARGUMENT' });
}

/** `/commands/run`'s run-time limit when none is given (seconds). */
const COMMAND_TIMEOUT = 30;

/**
 * `sandbox.commands` (E2B's and HopX's shape): `run(command, options)` resolves with
 * `runCode`'s result, or at once with a process handle when `background` is set. Plain
 * plumbing over the wasm's one agent call and the process calls, so it costs the .wasm
 * nothing.
 */
class Commands {
  #sandbox;
  constructor(sandbox) {
    this.#sandbox = sandbox;
  }

  async run(command, options = {}) {
    const sandbox = this.#sandbox;
    if (typeof command !== 'string' || !command.trim()) throw invalid('command must be a non-empty string');
    const { background = false, args, cwd, env, timeout, name, onStdout, onStderr, lines, signal } = options ?? {};
    for (const [key, f] of [['onStdout', onStdout], ['onStderr', onStderr]]) {
      if (f !== undefined && typeof f !== 'function') throw invalid(`${key} must be a function`);
    }
    if (args !== undefined && !(Array.isArray(args) && args.every((a) => typeof a === 'string'))) {
      throw invalid('args must be an array of strings');
    }
    const follow = Boolean(onStdout || onStderr);
    const limit = timeout ?? (background ? undefined : COMMAND_TIMEOUT);
    const body = { command, args, workdir: cwd, env, timeout: limit, name };
    if (!background && !follow) {
      const reply = await sandbox.__agentCall('POST', '/commands/run', body, limit, signal);
      return records.ExecutionResult(reply, Object.prototype);
    }
    const reply = await sandbox.__agentCall('POST', '/commands/background', body, undefined, signal);
    const handle = records.BackgroundExecution(reply, handlePrototype(sandbox));
    const deliver = follow ? followOutput(handle, { onStdout, onStderr, lines, signal }) : Promise.resolve();
    if (background) return handle;
    await deliver;
    const done = await handle.wait({ signal });
    return {
      stdout: done.stdout,
      stderr: done.stderr,
      exitCode: done.exitCode ?? -1,
      executionTime: done.executionTime ?? 0,
      success: done.exitCode === 0,
      status: done.status,
      ...(done.stdoutTruncated && { stdoutTruncated: true }),
      ...(done.stderrTruncated && { stderrTruncated: true }),
      ...(done.error !== undefined && { error: done.error }),
      ...(done.oomKilled && { oomKilled: true }),
    };
  }
}

/**
 * Hands a process's output to callbacks in order until it ends (or `signal` fires). A callback
 * that throws is reported once with `console.error`, and the rest is still delivered.
 */
async function followOutput(handle, { onStdout, onStderr, lines, signal }) {
  let threw = false;
  try {
    for await (const event of handle.stream({ lines, signal })) {
      const f = event.type === 'stdout' ? onStdout : event.type === 'stderr' ? onStderr : undefined;
      try {
        f?.(event.data);
      } catch (e) {
        if (!threw) console.error(`sandlot: an output callback of process ${handle.processId} threw (reported once):`, e);
        threw = true;
      }
    }
  } catch (e) {
    if (!signal?.aborted) console.error(`sandlot: lost the output stream of process ${handle.processId}:`, e);
  }
}

/**
 * Gives the wasm `Sandbox` class its JS surface. Called once per loaded glue, with the
 * package's error classes.
 */
export function extend(Sandbox, errorClasses) {
  errors = errorClasses;
  const proto = Sandbox.prototype;
  Object.defineProperty(proto, 'commands', {
    get() {
      return new Commands(this);
    },
    configurable: true,
  });
  for (const name of [...RECORD_CALLS, ...STREAM_CALLS, ...Object.keys(RESULT_CALLS), 'runCodeBackground', 'listProcesses']) {
    raw[name] = proto[name];
  }
  const define = (name, value) => Object.defineProperty(proto, name, { value, writable: true, configurable: true });
  for (const name of RECORD_CALLS) {
    define(name, async function (...args) {
      return records.Process(await raw[name].apply(this, args), handlePrototype(this));
    });
  }
  for (const [name, type] of Object.entries(RESULT_CALLS)) {
    const map = records[type];
    define(name, async function (...args) {
      return map(await raw[name].apply(this, args), Object.prototype);
    });
  }
  define('runCodeBackground', async function (...args) {
    return records.BackgroundExecution(await raw.runCodeBackground.apply(this, args), handlePrototype(this));
  });
  define('listProcesses', async function (...args) {
    const list = await raw.listProcesses.apply(this, args);
    const proto = handlePrototype(this);
    for (let i = 0; i < list.length; i++) list[i] = records.Process(list[i], proto);
    return list;
  });
  for (const name of STREAM_CALLS) {
    define(name, function (...args) {
      return streaming(() => raw[name].apply(this, args));
    });
  }
}
