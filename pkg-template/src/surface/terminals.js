// `sandbox.terminal`: interactive shells over `fetch`.

import { call, camel, errors, events, pathArg, toBase64 } from './core.js';
import { streaming } from './processes.js';

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
export class Terminals {
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
