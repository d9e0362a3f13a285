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
/** What a synchronous run's HTTP call waits beyond its run-time limit (seconds). */
const HTTP_GRACE = 30;

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
      const reply = await sandbox.agentFetch('POST', '/commands/run', { json: body, signal, timeout: (limit + HTTP_GRACE) * 1000 });
      return records.ExecutionResult(reply, Object.prototype);
    }
    const reply = await sandbox.agentFetch('POST', '/commands/background', { json: body, signal });
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

// ---------------------------------------------------------------------------------------
// Files, terminals, metrics: namespaces over the wasm's generic agent call (`agentFetch`),
// which also opens event feeds, which own the token, time budgets, signals, retries, typed errors
// and streams. Here: routes, queries, bodies, and the camelCase names of the replies.

/** `snake_case` keys to camelCase, deeply; keys that are not identifiers (routes) stay. */
function camel(value) {
  if (Array.isArray(value)) return value.map(camel);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    out[/^[a-z0-9_]+$/.test(key) ? key.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase()) : key] = camel(v);
  }
  return out;
}

/** `camel`, without the wire's second spellings of the same fact. */
function named(value, aliases) {
  const out = camel(value);
  for (const key of aliases) delete out[key];
  return out;
}

const FILE_ALIASES = ['isDirectory', 'modified'];
const query = (params) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');

function pathArg(path, name = 'path') {
  if (typeof path !== 'string' || path === '') throw new errors.ValidationError(`${name} must be a non-empty string`, { code: 'INVALID_ARGUMENT' });
  return path;
}

const call = (sandbox, method, route, options, extra) =>
  sandbox.agentFetch(method, route, { signal: options?.signal, timeout: options?.timeout === undefined ? undefined : options.timeout * 1000, ...extra });

/** Bytes of `/files/write` (as base64 when binary) above which a write goes as an upload. */
const WRITE_LIMIT = 1024 * 1024;

function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

const isNode = () => typeof globalThis.process?.versions?.node === 'string';
/** Whether `fetch` sends a `ReadableStream` body as it is read (Chromium only does over HTTP/2). */
const streamsRequests = () => isNode() || typeof globalThis.Deno === 'object';

/** Node's `fs` (Node, Bun, Deno), reached without an import so other runtimes load this file. */
function nodeFs(what) {
  const fs = globalThis.process?.getBuiltinModule?.('node:fs');
  if (!fs) throw new errors.ValidationError(`${what} needs a local file system (Node, Bun or Deno)`, { code: 'INVALID_ARGUMENT' });
  return fs;
}

/**
 * A multipart body for `/files/upload`: the `path` field, then the `file` part, so the server
 * streams it straight to its place. A `ReadableStream` is sent as it is read where `fetch`
 * can; elsewhere (browsers over HTTP/1.1, workerd) it is gathered into a Blob first.
 */
async function uploadBody(path, data) {
  if (data instanceof ReadableStream && streamsRequests()) {
    const boundary = `sandlot-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
    const head = new TextEncoder().encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n${path}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = new TextEncoder().encode(`\r\n--${boundary}--\r\n`);
    const reader = data.getReader();
    let stage = 0;
    const body = new ReadableStream({
      async pull(controller) {
        if (stage === 0) {
          stage = 1;
          return controller.enqueue(head);
        }
        if (stage === 1) {
          const { value, done } = await reader.read();
          if (!done) return controller.enqueue(typeof value === 'string' ? new TextEncoder().encode(value) : value);
          stage = 2;
          controller.enqueue(tail);
          return controller.close();
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return { body, contentType: `multipart/form-data; boundary=${boundary}` };
  }
  const blob = data instanceof Blob ? data : data instanceof ReadableStream ? await new Response(data).blob() : new Blob([data]);
  const form = new FormData();
  form.append('path', path);
  form.append('file', blob, 'upload');
  return { body: form };
}

/**
 * `sandbox.files`: the sandbox's files (paths under `/workspace` and `/tmp`). A superset of
 * the HopX JS SDK's `Files` (`read`, `readBytes`, `write`, `writeBytes`, `list`, `exists`,
 * `remove`, `mkdir`, `upload`, `download`), plus `rename` and `watch`. Every method takes
 * `{ signal, timeout }` (seconds) in its options.
 */
class Files {
  #sandbox;
  constructor(sandbox) {
    this.#sandbox = sandbox;
  }

  /** Reads a file: `format` `text` (default), `bytes` (`Uint8Array`) or `stream` (a `ReadableStream`). */
  async read(path, options) {
    const format = options?.format ?? 'text';
    const q = query({ path: pathArg(path) });
    if (format === 'text') return (await call(this.#sandbox, 'GET', `/files/read?${q}`, options)).content;
    if (format !== 'bytes' && format !== 'stream') throw new errors.ValidationError(`format must be 'text', 'bytes' or 'stream', not ${format}`, { code: 'INVALID_ARGUMENT' });
    return call(this.#sandbox, 'GET', `/files/download?${q}`, options, { read: format });
  }

  /** The file's bytes (HopX's name; `read(path, { format: 'bytes' })`). */
  readBytes(path, options) {
    return this.read(path, { ...options, format: 'bytes' });
  }

  /**
   * Writes a file (parents are created): `data` a string, `Uint8Array`/`ArrayBuffer`, `Blob` or
   * `ReadableStream`. Small text and bytes go in one JSON request (`mode`, `overwrite: false`
   * apply there); Blobs, streams and anything over 1 MiB stream up as an upload.
   */
  async write(path, data, options) {
    pathArg(path);
    if (data instanceof ArrayBuffer) data = new Uint8Array(data);
    else if (ArrayBuffer.isView(data) && !(data instanceof Uint8Array)) data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let json;
    if (typeof data === 'string') {
      const bytes = new TextEncoder().encode(data);
      if (bytes.length <= WRITE_LIMIT) json = { path, content: data };
      else data = bytes;
    } else if (data instanceof Uint8Array) {
      if (data.length <= WRITE_LIMIT) json = { path, content: toBase64(data), encoding: 'base64' };
    } else if (!(data instanceof Blob) && !(data instanceof ReadableStream)) {
      throw new errors.ValidationError('data must be a string, Uint8Array, ArrayBuffer, Blob or ReadableStream', { code: 'INVALID_ARGUMENT' });
    }
    if (json) {
      if (options?.mode !== undefined) json.mode = options.mode;
      if (options?.overwrite !== undefined) json.overwrite = options.overwrite;
      await call(this.#sandbox, 'POST', '/files/write', options, { json });
      return;
    }
    if (options?.overwrite === false && (await this.exists(path, options))) {
      throw new errors.SandlotError(`${path} already exists`, { code: 'FILE_ALREADY_EXISTS', status: 409 });
    }
    await call(this.#sandbox, 'POST', '/files/upload', options, await uploadBody(path, data));
  }

  /** `write` (HopX's name for bytes). */
  writeBytes(path, data, options) {
    return this.write(path, data, options);
  }

  /** A directory's entries, sorted by name: `{ name, path, size, isDir, isFile, isSymlink, modifiedTime, permissions, mode }`. */
  async list(path = '/workspace', options) {
    const reply = await call(this.#sandbox, 'GET', `/files/list?${query({ path: pathArg(path) })}`, options);
    return reply.files.map((f) => named(f, FILE_ALIASES));
  }

  async exists(path, options) {
    return (await call(this.#sandbox, 'GET', `/files/exists?${query({ path: pathArg(path) })}`, options)).exists;
  }

  /** Removes a file, a symlink, or a directory with everything in it. */
  async remove(path, options) {
    await call(this.#sandbox, 'DELETE', `/files/remove?${query({ path: pathArg(path) })}`, options);
  }

  /** Makes a directory and its parents (an existing one is fine). */
  async mkdir(path, options) {
    await call(this.#sandbox, 'POST', '/files/mkdir', options, { json: { path: pathArg(path) }, idempotent: true });
  }

  /** Moves `from` to `to` (parents created); an existing `to` needs `overwrite: true`. */
  async rename(from, to, options) {
    const json = { from: pathArg(from, 'from'), to: pathArg(to, 'to') };
    if (options?.overwrite !== undefined) json.overwrite = options.overwrite;
    await call(this.#sandbox, 'POST', '/files/rename', options, { json });
  }

  /**
   * Uploads to `remotePath`, streamed: `source` a local file path (Node, Bun, Deno: read from
   * disk as it is sent), or a `Blob`, `ReadableStream`, `Uint8Array` or string.
   */
  async upload(source, remotePath, options) {
    pathArg(remotePath, 'remotePath');
    let data = source;
    if (typeof source === 'string') {
      const fs = nodeFs('upload from a local path');
      data = fs.openAsBlob ? await fs.openAsBlob(source) : new Blob([fs.readFileSync(source)]);
    } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      data = new Blob([source]);
    }
    await call(this.#sandbox, 'POST', '/files/upload', options, await uploadBody(remotePath, data));
  }

  /**
   * Downloads a file: resolves with its bytes (`Uint8Array`), or, given `localPath` (Node,
   * Bun, Deno), streams it to that file and resolves with nothing.
   */
  async download(path, localPath, options) {
    if (typeof localPath !== 'string') return this.read(path, { ...(localPath ?? options), format: 'bytes' });
    const fs = nodeFs('download to a local path');
    const body = await this.read(path, { ...options, format: 'stream' });
    const out = fs.createWriteStream(localPath);
    try {
      for await (const chunk of body) if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
    } finally {
      await new Promise((resolve, reject) => out.end((e) => (e ? reject(e) : resolve())));
    }
  }

  /**
   * Watches a path (`recursive` for subdirectories): a StreamPromise of change events
   * `{ type: 'change', path, event: 'created'|'modified'|'deleted'|'renamed', timestamp }`
   * (and `{ type: 'error', code, error }` when the server reports trouble, e.g. `EVENTS_LOST`).
   * It resolves once the watch is in place: changes from then on are reported.
   */
  watch(path, options) {
    return streaming(async () => {
      const q = query({ path: pathArg(path), recursive: options?.recursive ? 'true' : undefined });
      const feed = await this.#sandbox.agentFetch('GET', `/files/watch?${q}`, { read: 'feed', signal: options?.signal });
      const first = await feed.next(); // `watching`: the watch is in place
      if (!first.done && first.value?.type === 'error') {
        await feed.close();
        const { error, code } = first.value;
        const Class = { FILE_NOT_FOUND: errors.FileNotFoundError, PATH_NOT_ALLOWED: errors.PermissionError, PERMISSION_DENIED: errors.PermissionError }[code];
        throw new (Class ?? errors.SandlotError)(error, { code });
      }
      return events(feed, (e) => (e.type === 'watching' ? undefined : camel(e)));
    });
  }
}

/**
 * An async iterable over a wasm event feed, each event passed through `map` (`undefined`
 * skips it); `close()` (or leaving a `for await`) closes the connection.
 */
function events(feed, map) {
  return {
    async next() {
      for (;;) {
        const r = await feed.next();
        if (r.done) return r;
        const value = map(r.value);
        if (value !== undefined) return { value, done: false };
      }
    },
    async return(value) {
      await feed.close();
      return { value, done: true };
    },
    close: () => feed.close(),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * A terminal (a shell on a pseudo-terminal in the sandbox). Its data (`terminalId`, `status`,
 * `cols`, `rows`, `exitCode`, ...) are own properties; `output()` (or `for await` over the
 * handle) follows what it prints, resumed after a dropped connection.
 */
export class TerminalHandle {
  #sandbox;
  constructor(sandbox, info) {
    this.#sandbox = sandbox;
    Object.assign(this, info);
  }

  get id() {
    return this.terminalId;
  }

  #route(suffix = '') {
    return `/terminals/${encodeURIComponent(this.terminalId)}${suffix}`;
  }

  /** Types `data` (text, or bytes) into the terminal. */
  async write(data, options) {
    const json = typeof data === 'string' ? { data } : data instanceof Uint8Array ? { data: toBase64(data), encoding: 'base64' } : undefined;
    if (!json) throw new errors.ValidationError('data must be a string or a Uint8Array', { code: 'INVALID_ARGUMENT' });
    await call(this.#sandbox, 'POST', this.#route('/input'), options, { json });
  }

  /** Resizes it (the foreground program gets SIGWINCH); the handle's `cols`/`rows` follow. */
  async resize(cols, rows, options) {
    return Object.assign(this, camel(await call(this.#sandbox, 'POST', this.#route('/resize'), options, { json: { cols, rows } })));
  }

  /** Kills the shell and everything it started; resolves once it has exited, with the handle. */
  async kill(options) {
    return Object.assign(this, camel(await call(this.#sandbox, 'DELETE', this.#route(), options)));
  }

  /** Reads the terminal's state again into the handle. */
  async refresh(options) {
    return Object.assign(this, camel(await call(this.#sandbox, 'GET', this.#route(), options)));
  }

  /**
   * Its output, live: `{ type: 'output', data, seq }`, `{ type: 'truncated', fromSeq, toSeq }`
   * (output that left the server's replay buffer unread), and last `{ type: 'exit', code, seq }`.
   * From the start of what the server kept, or after `since`.
   */
  output(options) {
    return streaming(async () => {
      const feed = await this.#sandbox.agentFetch('GET', this.#route('/stream'), { read: 'feed', resumable: true, since: options?.since, signal: options?.signal });
      return events(feed, (e) => {
        if (e.type === 'exit') Object.assign(this, { status: 'exited', exitCode: e.code });
        return camel(e);
      });
    });
  }

  [Symbol.asyncIterator]() {
    return this.output()[Symbol.asyncIterator]();
  }

  /** Waits until the shell exits and resolves with its exit code (128 + signal when killed). */
  async wait(options) {
    for await (const e of this.output(options)) if (e.type === 'exit') return e.code;
    return (await this.refresh(options)).exitCode;
  }
}

/** `sandbox.terminal`: interactive shells over `fetch` (no WebSocket needed). */
class Terminals {
  #sandbox;
  constructor(sandbox) {
    this.#sandbox = sandbox;
  }

  /** Opens a terminal: `cols`, `rows` (default 80×24), `cwd`, `env`, `shell`. */
  async create(options = {}) {
    const { signal, timeout, ...json } = options;
    return new TerminalHandle(this.#sandbox, camel(await call(this.#sandbox, 'POST', '/terminals', { signal, timeout }, { json })));
  }

  /** The sandbox's terminals (running, and exited within the last minute). */
  async list(options) {
    const reply = await call(this.#sandbox, 'GET', '/terminals', options);
    return reply.terminals.map((t) => new TerminalHandle(this.#sandbox, camel(t)));
  }

  /** A handle on an existing terminal, by id. */
  async connect(terminalId, options) {
    const reply = await call(this.#sandbox, 'GET', `/terminals/${encodeURIComponent(pathArg(terminalId, 'terminalId'))}`, options);
    return new TerminalHandle(this.#sandbox, camel(reply));
  }
}

// Network: egress rules (control plane) and ports reached through the server.

function portArg(port) {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid('port must be an integer from 1 to 65535');
  return port;
}

function networkBody(rules, what = 'updateNetwork') {
  if (rules === null || typeof rules !== 'object') throw invalid(`${what} takes { allowOut, denyOut }`);
  const list = (key) => {
    const value = rules[key] ?? [];
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw invalid(`${key} must be an array of strings`);
    return value;
  };
  return { allow_out: list('allowOut'), deny_out: list('denyOut') };
}

const networkState = (reply) => ({
  internetAccess: reply.internet_access,
  network: { allowOut: reply.network?.allow_out ?? [], denyOut: reply.network?.deny_out ?? [] },
});

/** Caches a namespace object per sandbox (the getters return the same object every time). */
function namespace(Class) {
  const cache = new WeakMap();
  return function () {
    let ns = cache.get(this);
    if (!ns) cache.set(this, (ns = new Class(this)));
    return ns;
  };
}

/**
 * Gives the wasm `Sandbox` class its JS surface. Called once per loaded glue, with the
 * package's error classes.
 */
export function extend(Sandbox, errorClasses) {
  errors = errorClasses;
  const proto = Sandbox.prototype;
  for (const [name, Class] of [['commands', Commands], ['files', Files], ['terminal', Terminals]]) {
    Object.defineProperty(proto, name, { get: namespace(Class), configurable: true });
  }
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
  define('getMetrics', async function (options) {
    return named(await call(this, 'GET', '/metrics/snapshot', options), ['errorCount']);
  });
  // `network` at create goes to the wasm in its wire shape (checked and converted here).
  const create = Sandbox.create;
  Object.defineProperty(Sandbox, 'create', {
    value: async function (options) {
      if (options?.network != null) options = { ...options, network: networkBody(options.network, 'network') };
      return create.call(this, options);
    },
    writable: true,
    configurable: true,
  });
  // Lifecycle calls with nothing to map: the generic call (control plane) does them.
  for (const [name, method, route] of [['kill', 'DELETE', ''], ['pause', 'POST', '/pause'], ['resume', 'POST', '/resume']]) {
    define(name, async function (options) {
      await this.agentFetch(method, route, { control: true, signal: options?.signal });
    });
  }
  define('updateNetwork', async function (rules, options) {
    return networkState(await this.agentFetch('PUT', '/network', { control: true, json: networkBody(rules), idempotent: true, signal: options?.signal }));
  });
  define('getNetwork', async function (options) {
    return networkState(await this.agentFetch('GET', '/network', { control: true, signal: options?.signal }));
  });
  define('getPreviewUrl', async function (port, options) {
    const body = { port: portArg(port) };
    if (options?.ttl !== undefined) body.ttl_seconds = options.ttl;
    const { url, host, expires_at: expiresAt } = await this.agentFetch('POST', '/preview', { json: body, signal: options?.signal });
    return { url, host, port: body.port, expiresAt };
  });
  define('getHost', function (port) {
    const agent = this.agentUrl;
    if (!/\/agent\/?$/.test(agent)) throw new errors.SandlotError(`getHost needs a Sandlot server (the agent URL ${agent} does not end in /agent); use getPreviewUrl`, { code: 'UNSUPPORTED' });
    return agent.replace(/\/agent\/?$/, `/ports/${portArg(port)}/`);
  });
  define('listSystemProcesses', async function (options) {
    return camel((await call(this, 'GET', '/processes', options)).processes);
  });
}
