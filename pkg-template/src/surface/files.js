// `sandbox.files`: the files API (read, write, upload, download, list, watch, ...).

import { call, camel, errors, events, named, pathArg, query, toBase64 } from './core.js';
import { streaming } from './processes.js';

const FILE_ALIASES = ['isDirectory', 'modified'];

/** Bytes of `/files/write` (as base64 when binary) above which a write goes as an upload. */
const WRITE_LIMIT = 1024 * 1024;

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
export class Files {
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
