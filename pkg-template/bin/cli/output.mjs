// Errors, exit codes and terminal output of the `sandlot` command line: how a result,
// a note, a table or an error is printed (text or --json), and the run context (connection
// options, interrupts and what to clean up on them).

import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { AuthenticationError, NetworkError, NotFoundError, Sandbox, ValidationError } from 'sandlot';

export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NOT_FOUND: 3, AUTH: 4 };
/** Exit codes of a process that ended without a usable one of its own (as sandlotd reports them). */
const PROCESS_EXIT = { timeout: 124, killed: 137 };
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129, SIGPIPE: 141 };

export const VERSION = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

// ---------------------------------------------------------------------------------------
// Errors and exit codes.

/** A bad invocation: exit 2, with a pointer to the help. */
export class UsageError extends Error {
  constructor(message, command) {
    super(message);
    this.command = command;
  }
}

export function exitCodeOf(error) {
  if (error instanceof UsageError || error instanceof ValidationError) return EXIT.USAGE;
  if (error instanceof NotFoundError) return EXIT.NOT_FOUND;
  if (error instanceof AuthenticationError) return EXIT.AUTH;
  return EXIT.ERROR;
}

/** The exit code a process's final record stands for (always 0-255). */
export function processExitCode({ status, exitCode }) {
  if (Number.isInteger(exitCode) && exitCode >= 0 && exitCode <= 255) return exitCode;
  if (status === 'completed') return 0;
  return PROCESS_EXIT[status] ?? EXIT.ERROR;
}

// ---------------------------------------------------------------------------------------
// Terminal output: colours, spinner, tables, JSON.

/** Whether decorations (colours, the spinner) are wanted at all: https://no-color.org. */
const decorated = () => !process.env.NO_COLOR && process.env.TERM !== 'dumb';

function colorsFor(stream) {
  const on = Boolean(stream.isTTY) && decorated();
  const sgr = (open, close) => (text) => (on ? `\x1b[${open}m${text}\x1b[${close}m` : String(text));
  return { bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), cyan: sgr(36, 39) };
}

class Output {
  constructor(json) {
    this.json = json;
    this.c = colorsFor(process.stdout);
    this.ce = colorsFor(process.stderr);
    this.spinning = Boolean(process.stdout.isTTY && process.stderr.isTTY) && !json && decorated();
    this.timer = undefined;
    this.shown = false;
  }

  /** Writes to stdout (never in --json mode, except the one document). */
  out(text) {
    this.stopSpinner();
    if (!this.muted) process.stdout.write(text);
  }

  line(text = '') {
    this.out(`${text}\n`);
  }

  /** A diagnostic on stderr (suppressed in --json mode). */
  note(text) {
    if (this.json) return;
    this.stopSpinner();
    process.stderr.write(`${this.ce.dim('sandlot:')} ${text}\n`);
  }

  emit(document) {
    if (this.emitted || this.muted) return; // one document, whatever happens after
    this.emitted = true;
    this.stopSpinner();
    process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  }

  /** Runs `fn` with a spinner saying `text` on stderr (shown after 150 ms, TTYs only). */
  async spin(text, fn) {
    this.startSpinner(text);
    try {
      return await fn();
    } finally {
      this.stopSpinner();
    }
  }

  startSpinner(text) {
    if (!this.spinning) return;
    this.stopSpinner();
    const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
    let i = 0;
    const started = Date.now();
    this.timer = setInterval(() => {
      if (Date.now() - started < 150) return;
      this.shown = true;
      process.stderr.write(`\r\x1b[2K${this.ce.cyan(frames[i++ % frames.length])} ${text}`);
    }, 80);
    this.timer.unref();
  }

  stopSpinner() {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }

  /** Pads columns by their visible width, then colours cells through `paint(row, col, text)`. */
  table(header, rows, paint = (_r, _c, text) => text) {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
    const fmt = (cells, color) =>
      cells
        .map((cell, i) => {
          const text = i === cells.length - 1 ? String(cell) : String(cell).padEnd(widths[i]);
          return color(i, text);
        })
        .join('  ')
        .trimEnd();
    const lines = [fmt(header, (_i, t) => this.c.bold(t)), ...rows.map((r, n) => fmt(r, (i, t) => paint(n, i, t)))];
    return `${lines.join('\n')}\n`;
  }

  status(text, status = text.trim()) {
    const c = this.c;
    const paint = { running: c.cyan, queued: c.dim, creating: c.dim, completed: c.green, failed: c.red, error: c.red, killed: c.yellow, timeout: c.yellow, paused: c.yellow };
    return (paint[status] ?? ((t) => t))(text);
  }
}

function errorDocument(error) {
  if (error instanceof UsageError) return { error: { type: 'UsageError', code: 'USAGE', message: error.message } };
  const doc = { type: error?.name ?? 'Error', code: error?.code ?? 'ERROR', message: error?.message ?? String(error) };
  for (const key of ['status', 'requestId', 'retryAfter']) if (error?.[key] !== undefined) doc[key] = error[key];
  return { error: doc };
}

export function reportError(out, error) {
  if (out.json) {
    out.emit(errorDocument(error));
    return;
  }
  out.stopSpinner();
  const ce = out.ce;
  if (error instanceof UsageError) {
    const help = error.command ? `sandlot ${error.command} --help` : 'sandlot --help';
    process.stderr.write(`${ce.bold('sandlot:')} ${error.message}\nRun '${help}' for usage.\n`);
    return;
  }
  const details = [error?.code && error.code !== 'SANDLOT_ERROR' && error.code, error?.status && `HTTP ${error.status}`, error?.requestId && `request ${error.requestId}`]
    .filter(Boolean)
    .join(', ');
  let text = `${ce.bold('sandlot:')} ${ce.red('error:')} ${error?.message ?? error}${details ? ce.dim(` (${details})`) : ''}\n`;
  if (error instanceof NetworkError) text += `Is sandlotd running there? Set SANDLOT_URL or pass --url.\n`;
  if (error instanceof AuthenticationError) text += `Set SANDLOT_API_KEY or pass --api-key.\n`;
  if (process.env.SANDLOT_DEBUG && error?.stack) text += `${error.stack}\n`;
  process.stderr.write(text);
}

// ---------------------------------------------------------------------------------------
// Run context: connection options, output, interrupts and what to clean up on them.

export class Context {
  constructor(values) {
    this.conn = {};
    if (values.url !== undefined) this.conn.baseURL = values.url;
    if (values['api-key'] !== undefined) this.conn.apiKey = values['api-key'];
    this.out = new Output(Boolean(values.json));
    this.json = Boolean(values.json);
    this.controller = new AbortController();
    this.signal = this.controller.signal;
    this.interrupted = false;
    this.cleanups = [];
  }

  /** Registers `fn` to run (last registered first) if the command is interrupted. */
  onInterrupt(fn) {
    this.cleanups.push(fn);
  }

  /** Drops every registered cleanup: what they would undo is now meant to stay. */
  disarm() {
    this.cleanups.length = 0;
  }

  /** First signal: stop, clean up (at most 15 s), exit 128+n. A second one exits at once. */
  interrupt(signal) {
    const code = SIGNAL_EXIT[signal] ?? 130;
    if (this.interrupted) process.exit(code);
    this.interrupted = true;
    this.out.stopSpinner();
    // From now on the command's own results are not printed (they may be undone here).
    this.out.muted = true;
    this.controller.abort();
    const cleanups = this.cleanups.splice(0).reverse();
    if (cleanups.length) this.out.note(signal === 'SIGPIPE' ? 'output closed; cleaning up' : 'interrupted; cleaning up (again to quit at once)');
    const done = (async () => {
      for (const fn of cleanups) await Promise.resolve().then(fn).catch(() => {});
    })();
    const limit = sleep(15_000, undefined, { ref: false });
    Promise.race([done, limit]).then(() => {
      this.out.muted = false;
      if (this.json) this.out.emit({ error: { type: 'Interrupted', code: 'INTERRUPTED', message: `interrupted by ${signal}` } });
      return finish(code);
    });
  }

  connect(sandboxId) {
    return this.out.spin(`Connecting to ${sandboxId}`, () => Sandbox.connect(sandboxId, { ...this.conn, signal: this.signal }));
  }
}

/** Exits once stdout and stderr have taken everything written to them. */
export async function finish(code) {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((r) => (s.writableLength ? s.write('', r) : r()))));
  process.exit(code);
}
