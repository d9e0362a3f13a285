#!/usr/bin/env node
// `sandlot`: the command line of the Sandlot SDK (the package's `bin`). It is a thin layer
// over the package's own public API (`import ... from 'sandlot'`), with no dependency:
// arguments are read by Node's `util.parseArgs`. One file, because npm packs a `bin` file
// whatever the package's `files` say, but not its neighbours.
//
// Output rules: results on stdout, diagnostics on stderr; `--json` prints exactly one JSON
// document on stdout (a result, or `{ "error": { ... } }`) and nothing else there; colours
// only when the stream is a TTY and NO_COLOR is unset, the spinner (on stderr) only when
// stdout and stderr are TTYs and NO_COLOR is unset. Exit codes: see EXIT and the main help.
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { AuthenticationError, NetworkError, NotFoundError, Sandbox, SandboxNotFoundError, TimeoutError, ValidationError } from 'sandlot';

const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NOT_FOUND: 3, AUTH: 4 };
/** Exit codes of a process that ended without a usable one of its own (as sandlotd reports them). */
const PROCESS_EXIT = { timeout: 124, killed: 137 };
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129, SIGPIPE: 141 };

const VERSION = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

// ---------------------------------------------------------------------------------------
// Commands: their options (util.parseArgs form), positional arguments and help.

const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
};

const GLOBAL_HELP = `Global options (any command):
  --url URL          server URL (default: $SANDLOT_URL, else http://127.0.0.1:7070)
  --api-key KEY      API key (default: $SANDLOT_API_KEY, else $HOPX_API_KEY)
  --json             print exactly one JSON document on stdout (errors too)
  -h, --help         this help`;

const COMMANDS = {
  create: {
    summary: 'create a sandbox and print its id',
    usage: 'sandlot create [--template T] [--timeout S] [--env K=V]... [--internet [--allow-out R]... [--deny-out R]...]',
    options: {
      template: { type: 'string', short: 't' },
      timeout: { type: 'string' },
      env: { type: 'string', short: 'e', multiple: true },
      internet: { type: 'boolean' },
      'allow-out': { type: 'string', multiple: true },
      'deny-out': { type: 'string', multiple: true },
    },
    args: [0, 0],
    help: `Options:
  -t, --template T   template name (default: code-interpreter: python, javascript, bash)
  --timeout S        the server kills the sandbox S seconds from now (default: no limit)
  -e, --env K=V      environment of every run in the sandbox (repeatable; K alone takes
                     K's value from this shell)
  --internet         outbound internet for the sandbox (default: the server's choice, off)
  --allow-out R      with --internet: always reachable, a CIDR or a domain (*.x.org too)
  --deny-out R       with --internet: refused unless allowed (0.0.0.0/0: all but --allow-out)

Prints the sandbox id (--json: the sandbox's info).`,
    run: cmdCreate,
  },
  run: {
    summary: 'run a file (or stdin) in a sandbox, streaming its output',
    usage: 'sandlot run [--sandbox ID] [--language L] [--name N] [--env K=V]... [--timeout S] [--background] FILE|-',
    options: {
      sandbox: { type: 'string', short: 's' },
      language: { type: 'string', short: 'l' },
      name: { type: 'string', short: 'n' },
      env: { type: 'string', short: 'e', multiple: true },
      timeout: { type: 'string' },
      workdir: { type: 'string', short: 'w' },
      template: { type: 'string', short: 't' },
      background: { type: 'boolean', short: 'b' },
    },
    args: [1, 1],
    argNames: 'FILE|-',
    help: `Options:
  -s, --sandbox ID   run in this sandbox; without it a new sandbox is created for the run
                     and killed when the run ends (also on Ctrl-C)
  -l, --language L   python, javascript or bash (default: from FILE's extension: .py,
                     .js/.mjs/.cjs, .sh/.bash; else python)
  -n, --name N       a label shown by 'sandlot ps'
  -e, --env K=V      environment of this run (repeatable; K alone takes K's value here)
  --timeout S        the process is killed after S seconds (default: 300)
  -w, --workdir DIR  working directory (default: /workspace)
  -t, --template T   template of the sandbox created without --sandbox
  -b, --background   start the process, print its id and return at once

In the foreground, stdout and stderr are streamed live to stdout and stderr, and the command
exits with the process's exit code (124 if it timed out, 137 if it was killed). Ctrl-C kills
the process (and the sandbox the command created). --json prints one document at the end:
{ sandboxId, processId, status, exitCode, executionTime, stdout, stderr, ... }.

With --background the command prints the process id. Without --sandbox it creates a sandbox
and prints "SANDBOX_ID PROCESS_ID" on one line; that sandbox is left running (the process
runs in it): remove it with 'sandlot sandboxes kill SANDBOX_ID'.`,
    run: cmdRun,
  },
  exec: {
    summary: 'run a command in a sandbox, streaming its output',
    usage: 'sandlot exec [--sandbox ID] [--cwd DIR] [--env K=V]... [--timeout S] -- COMMAND [ARG]...',
    options: {
      sandbox: { type: 'string', short: 's' },
      cwd: { type: 'string', short: 'w' },
      env: { type: 'string', short: 'e', multiple: true },
      timeout: { type: 'string' },
      template: { type: 'string', short: 't' },
    },
    args: [1, Infinity],
    argNames: 'COMMAND',
    help: `Options:
  -s, --sandbox ID   run in this sandbox; without it a new sandbox is created for the
                     command and killed when it ends (also on Ctrl-C)
  -w, --cwd DIR      working directory (default: /workspace)
  -e, --env K=V      environment of the command (repeatable; K alone takes K's value here)
  --timeout S        the command is killed after S seconds (default: 300)
  -t, --template T   template of the sandbox created without --sandbox

One word after -- is a shell line (bash: pipes, globs, variables work): sandlot exec --
'ls | wc -l'. Several words are a program and its arguments, passed as they are (no shell):
sandlot exec -- python3 -c 'print(1)'.

stdout and stderr are streamed live to stdout and stderr, and the command exits with the
command's exit code (124 if it timed out, 137 if it was killed); Ctrl-C kills it. --json
prints one document at the end: { sandboxId, processId, status, exitCode, stdout, stderr, ... }.`,
    run: cmdExec,
  },
  files: {
    summary: 'list, copy (in and out) and remove files of a sandbox',
    usage: 'sandlot files ls|cp|rm [--sandbox ID] ...',
    options: {
      sandbox: { type: 'string', short: 's' },
    },
    args: [1, Infinity],
    argNames: 'SUBCOMMAND',
    help: `Subcommands:
  ls [PATH]          a directory's entries (default /workspace): mode, size, time, name
  cp SRC DST         copy a file into or out of a sandbox; one side is local (a path, or -
                     for stdin/stdout), the other in the sandbox
  rm PATH...         remove files or directories (with everything in them)

A path in a sandbox is written sandbox:ID:/path, or, with --sandbox ID, sandbox:/path (for
ls and rm, a plain /path). Paths in a sandbox are under /workspace or /tmp.

  sandlot files cp data.csv sandbox:$SB:/workspace/data.csv
  sandlot files cp -s "$SB" sandbox:/workspace/out.png ./out.png
  sandlot files ls -s "$SB" /workspace
  sandlot files rm sandbox:$SB:/workspace/tmp

Copies stream (files of any size). --json: ls prints the entries (an array); cp prints
{ sandboxId, source, destination, bytes }; rm prints { sandboxId, removed: [...] }.`,
    run: cmdFiles,
  },
  ps: {
    summary: 'list processes (of one sandbox, or of all running sandboxes)',
    usage: 'sandlot ps [--sandbox ID] [--watch [--interval S]]',
    options: {
      sandbox: { type: 'string', short: 's' },
      watch: { type: 'boolean', short: 'w' },
      interval: { type: 'string' },
    },
    args: [0, 0],
    help: `Options:
  -s, --sandbox ID   this sandbox's processes (default: every running sandbox's, with a
                     SANDBOX column; paused sandboxes are skipped, as attaching would resume them)
  -w, --watch        redraw the table every interval until interrupted (Ctrl-C: exit 130);
                     not with --json
  --interval S       seconds between refreshes (default: 2)

Columns: process id, name, status, exit code, duration. --json: an array of process records
(without their output; see 'sandlot logs'), each with its sandboxId.`,
    run: cmdPs,
  },
  logs: {
    summary: "print a process's output (-f: follow it live)",
    usage: 'sandlot logs [-f] --sandbox ID PROCESS_ID',
    options: {
      sandbox: { type: 'string', short: 's' },
      follow: { type: 'boolean', short: 'f' },
    },
    args: [1, 1],
    argNames: 'PROCESS_ID',
    needsSandbox: true,
    help: `Options:
  -s, --sandbox ID   the process's sandbox (required)
  -f, --follow       stream the output live until the process ends (from the start of the
                     output the server kept, so nothing is missed)

The process's stdout goes to stdout and its stderr to stderr. --json: one document
{ sandboxId, processId, status, exitCode?, stdout, stderr, ... } (with -f, once it has ended).`,
    run: cmdLogs,
  },
  wait: {
    summary: 'wait for a process to end; exit with its exit code',
    usage: 'sandlot wait [--timeout S] --sandbox ID PROCESS_ID',
    options: {
      sandbox: { type: 'string', short: 's' },
      timeout: { type: 'string' },
    },
    args: [1, 1],
    argNames: 'PROCESS_ID',
    needsSandbox: true,
    help: `Options:
  -s, --sandbox ID   the process's sandbox (required)
  --timeout S        give up after S seconds (exit 1; the process runs on)

Prints the final status and exits with the process's exit code (124 if it timed out, 137 if
it was killed). --json: the process's final record, output included.`,
    run: cmdWait,
  },
  preview: {
    summary: 'print a URL that opens a port of a sandbox',
    usage: 'sandlot preview --sandbox ID [--ttl S] PORT',
    options: { sandbox: { type: 'string', short: 's' }, ttl: { type: 'string' } },
    args: [1, 1],
    argNames: 'PORT',
    needsSandbox: true,
    help: `Options:
  -s, --sandbox ID   the sandbox (required)
  --ttl S            seconds the URL works (default 3600, at most what the server allows)

Prints a URL that reaches PORT inside the sandbox (a server listening there) through sandlotd,
with a signed token in it: open it in a browser or share it until it expires. --json: the
URL, the same place without credentials (host), and when it expires.`,
    run: cmdPreview,
  },
  kill: {
    summary: 'kill a process',
    usage: 'sandlot kill --sandbox ID PROCESS_ID',
    options: { sandbox: { type: 'string', short: 's' } },
    args: [1, 1],
    argNames: 'PROCESS_ID',
    needsSandbox: true,
    help: `Options:
  -s, --sandbox ID   the process's sandbox (required)

Kills the process (and everything it started); its record stays, with status killed. A
process that has already ended is left as it is (exit 0; its status is printed).`,
    run: cmdKill,
  },
  sandboxes: {
    summary: 'list sandboxes, show one, or kill one',
    usage: 'sandlot sandboxes [ls [--status S] | info ID | kill ID]',
    options: { status: { type: 'string' } },
    args: [0, 2],
    help: `Subcommands:
  ls                 (default) a table of the sandboxes the key can see: id, status,
                     template, age, expiry; --status S: only those in state S
                     (creating, running, paused, stopped, error)
  info ID            one sandbox's details (read-only: a paused sandbox stays paused)
  kill ID            kill the sandbox and every process in it

--json: the list (an array), the sandbox's info, or { sandboxId, killed: true }.`,
    run: cmdSandboxes,
  },
};

const MAIN_HELP = `sandlot ${VERSION}: run code in Sandlot (or HopX-compatible) sandboxes

Usage: sandlot <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(12)}${c.summary}`)
  .join('\n')}
  help [CMD]  this help, or a command's (also: sandlot CMD --help)

${GLOBAL_HELP}
  --version          print the version

Exit codes:
  0    success                      3    not found (sandbox, process, template)
  1    any other error              4    authentication (missing or wrong API key)
  2    usage error (bad command, flag, value or FILE)
  130  interrupted (Ctrl-C; 143 on SIGTERM)
  run, exec and wait exit with the process's own exit code instead (124: it timed out, 137: it
  was killed), so for them 1-4 may also be the program's.

Environment: SANDLOT_URL, SANDLOT_API_KEY (else HOPX_API_KEY), NO_COLOR.

Examples:
  sandlot run script.py                      # new sandbox, live output, sandbox removed
  echo 'echo hi; exit 3' | sandlot run -l bash -
  SB=$(sandlot create --timeout 3600)
  sandlot run -s "$SB" -b -n train train.py  # prints the process id
  sandlot ps -s "$SB" --watch
  sandlot logs -f -s "$SB" PROCESS_ID
  sandlot wait -s "$SB" PROCESS_ID; echo "exit $?"
  sandlot exec -s "$SB" -- 'pip list | wc -l'
  sandlot files cp data.csv sandbox:$SB:/workspace/data.csv
  sandlot sandboxes kill "$SB"`;

function commandHelp(name) {
  const c = COMMANDS[name];
  return `Usage: ${c.usage}\n\n${c.summary[0].toUpperCase()}${c.summary.slice(1)}.\n\n${c.help}\n\n${GLOBAL_HELP}`;
}

// ---------------------------------------------------------------------------------------
// Errors and exit codes.

/** A bad invocation: exit 2, with a pointer to the help. */
class UsageError extends Error {
  constructor(message, command) {
    super(message);
    this.command = command;
  }
}

function exitCodeOf(error) {
  if (error instanceof UsageError || error instanceof ValidationError) return EXIT.USAGE;
  if (error instanceof NotFoundError) return EXIT.NOT_FOUND;
  if (error instanceof AuthenticationError) return EXIT.AUTH;
  return EXIT.ERROR;
}

/** The exit code a process's final record stands for (always 0-255). */
function processExitCode({ status, exitCode }) {
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

function reportError(out, error) {
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

class Context {
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
async function finish(code) {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((r) => (s.writableLength ? s.write('', r) : r()))));
  process.exit(code);
}

// ---------------------------------------------------------------------------------------
// Argument helpers.

function positiveInt(value, flag, command) {
  if (!/^[1-9][0-9]*$/.test(value ?? '')) throw new UsageError(`${flag} takes a positive whole number of seconds, not '${value}'`, command);
  return Number(value);
}

function positiveSeconds(value, flag, command) {
  const n = Number(value);
  if (!/^[0-9]*\.?[0-9]+$/.test(value ?? '') || !(n > 0)) throw new UsageError(`${flag} takes a positive number of seconds, not '${value}'`, command);
  return n;
}

function envVars(list, command) {
  if (!list?.length) return undefined;
  const env = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (!key) throw new UsageError(`--env takes KEY=VALUE (or KEY), not '${item}'`, command);
    if (eq < 0 && process.env[key] === undefined) throw new UsageError(`--env ${key}: ${key} is not set in this environment`, command);
    env[key] = eq < 0 ? process.env[key] : item.slice(eq + 1);
  }
  return env;
}

const LANGUAGE_BY_EXTENSION = { py: 'python', js: 'javascript', mjs: 'javascript', cjs: 'javascript', sh: 'bash', bash: 'bash' };

async function readCode(file, out) {
  if (file === '-') {
    if (process.stdin.isTTY) out.note('reading the code from stdin (end it with Ctrl-D)');
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.message}`, 'run');
  }
}

// ---------------------------------------------------------------------------------------
// Formatting.

/** Seconds, as 0.53s, 12.0s, 3m04s, 2h05m. */
function formatSeconds(s) {
  if (s === undefined || !Number.isFinite(s) || s < 0) return '-';
  if (s < 10) return `${s.toFixed(2)}s`;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function processDuration(p) {
  if (p.executionTime !== undefined) return p.executionTime;
  if (!p.startedAt) return undefined;
  const end = p.completedAt ? Date.parse(p.completedAt) : Date.now();
  return (end - Date.parse(p.startedAt)) / 1000;
}

/** "5m ago" / "in 5m" for an RFC 3339 time. */
function relative(time) {
  const ms = Date.parse(time ?? '');
  if (Number.isNaN(ms)) return '-';
  const s = (ms - Date.now()) / 1000;
  const text = formatSeconds(Math.abs(s)).replace(/\.\d+s$/, 's');
  return s < 0 ? `${text} ago` : `in ${text}`;
}

/** A process record without its output (for listings). */
function withoutOutput(p) {
  const { stdout, stderr, ...rest } = p;
  return rest;
}

// ---------------------------------------------------------------------------------------
// Following a process's output.

/**
 * Prints a process's output stream (`events`: what `streamProcess` or a process handle's
 * `stream()` returns) until the process ends: live to stdout/stderr, or collected (--json).
 * Resolves with the final state `{ status, exitCode?, executionTime?, error?, stdout, stderr,
 * droppedBytes }`; `record()` reads it should the stream end without its exit event.
 */
async function follow(ctx, events, record, { live, spinnerText }) {
  const out = ctx.out;
  const output = { stdout: '', stderr: '', droppedBytes: 0 };
  let exit;
  if (spinnerText) out.startSpinner(spinnerText);
  try {
    for await (const event of events) {
      out.stopSpinner();
      if (event.type === 'stdout' || event.type === 'stderr') {
        if (live) (event.type === 'stdout' ? process.stdout : process.stderr).write(event.data);
        else output[event.type] += event.data;
      } else if (event.type === 'truncated') {
        output.droppedBytes += event.droppedBytes;
        if (live) out.note(`${event.droppedBytes} bytes of output were dropped here (the server's output cap)`);
      } else if (event.type === 'exit') {
        exit = event;
      }
    }
  } finally {
    out.stopSpinner();
  }
  // A stream always ends with its exit event; should one not, the record has the final state.
  const final = exit ?? (await record());
  const result = {};
  for (const key of ['status', 'exitCode', 'executionTime', 'error']) if (final[key] !== undefined) result[key] = final[key];
  return Object.assign(result, output);
}

function endNote(out, processId, { status, error }) {
  if (status === 'timeout' || status === 'killed') out.note(`process ${processId} ${status === 'timeout' ? 'timed out' : 'was killed'}${error ? `: ${error}` : ''}`);
  else if (status === 'failed' && error) out.note(`process ${processId} failed: ${error}`);
}

// ---------------------------------------------------------------------------------------
// The commands.

async function cmdCreate(ctx, v) {
  // No abort signal: a create cut short on our side may still happen on the server's, and
  // then its id is needed to kill it (see onInterrupt below).
  const options = { ...ctx.conn };
  if (v.template !== undefined) options.template = v.template;
  if (v.timeout !== undefined) options.timeoutSeconds = positiveInt(v.timeout, '--timeout', 'create');
  const env = envVars(v.env, 'create');
  if (env) options.envVars = env;
  if (v.internet) options.internetAccess = true;
  if (v['allow-out'] || v['deny-out']) {
    if (!v.internet) throw new UsageError('--allow-out and --deny-out need --internet', 'create');
    options.network = { allowOut: v['allow-out'] ?? [], denyOut: v['deny-out'] ?? [] };
  }
  const creating = Sandbox.create(options);
  // Ctrl-C while the server creates it: wait for the sandbox, then kill it.
  ctx.onInterrupt(async () => (await creating.catch(() => null))?.kill());
  const sandbox = await ctx.out.spin('Creating sandbox', () => creating);
  ctx.disarm();
  if (!ctx.json) return ctx.out.line(sandbox.sandboxId);
  let info = { sandboxId: sandbox.sandboxId };
  try {
    info = await sandbox.getInfo();
  } catch {
    // The sandbox exists either way: its id is what matters.
  }
  ctx.out.emit(info);
}

async function cmdRun(ctx, v, [file]) {
  const out = ctx.out;
  if (v.template !== undefined && v.sandbox !== undefined) throw new UsageError('--template is for the sandbox run creates; not with --sandbox', 'run');
  const options = {};
  const language = v.language ?? LANGUAGE_BY_EXTENSION[/\.([^./]+)$/.exec(file)?.[1]?.toLowerCase()];
  if (language !== undefined) options.language = language;
  if (v.name !== undefined) options.name = v.name;
  if (v.timeout !== undefined) options.timeout = positiveInt(v.timeout, '--timeout', 'run');
  if (v.workdir !== undefined) options.workdir = v.workdir;
  const env = envVars(v.env, 'run');
  if (env) options.env = env;
  const code = await readCode(file, out);

  let sandbox;
  const created = v.sandbox === undefined;
  if (created) {
    const creating = Sandbox.create({ ...ctx.conn, ...(v.template !== undefined && { template: v.template }) }); // no signal: see cmdCreate
    ctx.onInterrupt(async () => (await creating.catch(() => null))?.kill());
    sandbox = await out.spin('Creating sandbox', () => creating);
  } else {
    sandbox = await ctx.connect(v.sandbox);
  }

  let keepSandbox = false;
  try {
    // No signal here: once started, the process must be known (its handle) to be killed.
    const starting = sandbox.runCodeBackground(code, options);
    if (!created) ctx.onInterrupt(async () => (await starting).kill());
    const run = await out.spin('Starting', () => starting);

    if (v.background) {
      keepSandbox = true;
      ctx.disarm();
      if (ctx.json) {
        const doc = { sandboxId: sandbox.sandboxId, processId: run.processId, executionId: run.executionId, status: run.status };
        for (const key of ['name', 'timeout', 'startedAt']) if (run[key] !== undefined) doc[key] = run[key];
        doc.sandboxCreated = created;
        return out.emit(doc);
      }
      out.line(created ? `${sandbox.sandboxId} ${run.processId}` : run.processId);
      if (created && process.stderr.isTTY) out.note(`sandbox ${sandbox.sandboxId} stays up for the process; remove it with: sandlot sandboxes kill ${sandbox.sandboxId}`);
      return EXIT.OK;
    }

    const signal = ctx.signal;
    const result = await follow(ctx, run.stream({ signal }), () => run.wait({ signal }), { live: !ctx.json, spinnerText: 'Running' });
    if (ctx.json) {
      const doc = { sandboxId: sandbox.sandboxId, processId: run.processId, executionId: run.executionId };
      if (run.name !== undefined) doc.name = run.name;
      Object.assign(doc, result, { sandboxCreated: created }); // status, exitCode, ..., stdout, stderr
      out.emit(doc);
    } else {
      endNote(out, run.processId, result);
    }
    return processExitCode(result);
  } finally {
    if (created && !keepSandbox && !ctx.interrupted) {
      await out.spin('Removing sandbox', () => sandbox.kill()).catch((e) => out.note(`could not kill sandbox ${sandbox.sandboxId}: ${e.message}`));
    }
  }
}

/** A listing leaves the output out (`output: false`: the server does not send it). */
const LIST_OPTIONS = (ctx) => ({ output: false, signal: ctx.signal });

async function processRows(ctx, sandboxId, handles) {
  if (sandboxId !== undefined) {
    handles.one ??= await ctx.connect(sandboxId);
    return (await handles.one.listProcesses(LIST_OPTIONS(ctx))).map((p) => ({ sandboxId, ...withoutOutput(p) }));
  }
  const running = await Sandbox.list({ ...ctx.conn, status: 'running', signal: ctx.signal });
  const rows = [];
  // A few sandboxes at a time; one killed meanwhile is skipped.
  const queue = [...running];
  const lists = new Map();
  const worker = async () => {
    for (let info; (info = queue.shift()); ) {
      try {
        let handle = handles.all.get(info.sandboxId);
        if (!handle) {
          handle = await Sandbox.connect(info.sandboxId, { ...ctx.conn, signal: ctx.signal });
          handles.all.set(info.sandboxId, handle);
        }
        lists.set(info.sandboxId, await handle.listProcesses(LIST_OPTIONS(ctx)));
      } catch (e) {
        if (!(e instanceof NotFoundError) && e?.code !== 'SANDBOX_NOT_RUNNING') throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, running.length) }, worker));
  for (const info of running) for (const p of lists.get(info.sandboxId) ?? []) rows.push({ sandboxId: info.sandboxId, ...withoutOutput(p) });
  return rows;
}

function processTable(out, rows, allSandboxes) {
  const header = [...(allSandboxes ? ['SANDBOX'] : []), 'PROCESS ID', 'NAME', 'STATUS', 'EXIT', 'DURATION'];
  const statusCol = allSandboxes ? 3 : 2;
  const cells = rows.map((p) => [
    ...(allSandboxes ? [p.sandboxId] : []),
    p.processId,
    p.name ?? '-',
    p.status,
    p.exitCode ?? '-',
    formatSeconds(processDuration(p)),
  ]);
  return out.table(header, cells, (n, col, text) => (col === statusCol ? out.status(text, rows[n].status) : text));
}

async function cmdPs(ctx, v) {
  const out = ctx.out;
  if (v.interval !== undefined && !v.watch) throw new UsageError('--interval goes with --watch', 'ps');
  const interval = v.interval === undefined ? 2 : positiveSeconds(v.interval, '--interval', 'ps');
  if (v.watch && ctx.json) throw new UsageError('--watch redraws a table; with --json, poll `sandlot ps --json` instead', 'ps');
  const handles = { one: undefined, all: new Map() };
  const all = v.sandbox === undefined;
  if (!v.watch) {
    const rows = await out.spin('Listing processes', () => processRows(ctx, v.sandbox, handles));
    if (ctx.json) return out.emit(rows);
    return out.out(processTable(out, rows, all));
  }
  const tty = Boolean(process.stdout.isTTY);
  for (;;) {
    let body;
    try {
      body = processTable(out, await processRows(ctx, v.sandbox, handles), all);
    } catch (e) {
      // Passing trouble (network, overload) is shown and retried; anything else ends the watch.
      if (ctx.interrupted || !(e instanceof NetworkError || e instanceof TimeoutError || e?.status === 429 || e?.status >= 500)) throw e;
      body = `${out.c.red('error:')} ${e.message}\n`;
    }
    const title = out.c.dim(`Every ${interval}s: sandlot ps${all ? '' : ` --sandbox ${v.sandbox}`}   ${new Date().toLocaleTimeString()}`);
    out.out(tty ? `\x1b[H\x1b[2J${title}\n\n${body}` : `${body}\n`);
    await sleep(interval * 1000, undefined, { signal: ctx.signal });
  }
}

async function cmdLogs(ctx, v, [processId]) {
  const out = ctx.out;
  const sandbox = await ctx.connect(v.sandbox);
  if (v.follow) {
    const signal = ctx.signal;
    const events = sandbox.streamProcess(processId, { signal });
    const result = await follow(ctx, events, () => sandbox.waitForProcess(processId, { signal }), { live: !ctx.json });
    if (ctx.json) return out.emit({ sandboxId: sandbox.sandboxId, processId, ...result });
    return EXIT.OK;
  }
  const p = await sandbox.getProcess(processId, { signal: ctx.signal });
  if (ctx.json) return out.emit({ sandboxId: sandbox.sandboxId, ...p });
  process.stdout.write(p.stdout);
  process.stderr.write(p.stderr);
  if (p.stdoutTruncated || p.stderrTruncated) out.note(`the middle of this output was dropped (the server's output cap); ${p.stdoutBytes} + ${p.stderrBytes} bytes were written`);
  if (p.outputEvicted) out.note(`the server no longer keeps this finished process's output`);
}

async function cmdWait(ctx, v, [processId]) {
  const options = { signal: ctx.signal };
  if (v.timeout !== undefined) options.timeout = positiveSeconds(v.timeout, '--timeout', 'wait');
  const sandbox = await ctx.connect(v.sandbox);
  const p = await ctx.out.spin(`Waiting for ${processId}`, () => sandbox.waitForProcess(processId, options));
  if (ctx.json) ctx.out.emit({ sandboxId: sandbox.sandboxId, ...p });
  else ctx.out.line(`${processId} ${ctx.out.status(p.status)}  exit ${p.exitCode ?? '-'}  ${formatSeconds(processDuration(p))}${p.error ? `  (${p.error})` : ''}`);
  return processExitCode(p);
}

async function cmdPreview(ctx, v, [port]) {
  const number = positiveInt(port, 'PORT', 'preview');
  if (number > 65535) throw new UsageError('PORT must be from 1 to 65535', 'preview');
  const options = { signal: ctx.signal };
  if (v.ttl !== undefined) options.ttl = positiveInt(v.ttl, '--ttl', 'preview');
  const sandbox = await ctx.connect(v.sandbox);
  const p = await sandbox.getPreviewUrl(number, options);
  if (ctx.json) return ctx.out.emit({ sandboxId: sandbox.sandboxId, ...p });
  ctx.out.line(p.url);
}

async function cmdKill(ctx, v, [processId]) {
  const sandbox = await ctx.connect(v.sandbox);
  const r = await sandbox.killProcess(processId, { signal: ctx.signal });
  if (ctx.json) return ctx.out.emit({ sandboxId: sandbox.sandboxId, ...r });
  ctx.out.line(`${processId} ${ctx.out.status(r.status)}`);
}

async function cmdSandboxes(ctx, v, args) {
  const out = ctx.out;
  const [sub = 'ls', id, ...extra] = args;
  const want = { ls: 0, list: 0, info: 1, kill: 1 }[sub];
  if (want === undefined) throw new UsageError(`unknown subcommand '${sub}' (ls, info ID, kill ID)`, 'sandboxes');
  if ((id === undefined ? 0 : 1) + extra.length !== want) throw new UsageError(want ? `sandboxes ${sub} takes one sandbox ID` : `sandboxes ${sub} takes no argument`, 'sandboxes');
  if (v.status !== undefined && want) throw new UsageError('--status goes with sandboxes ls', 'sandboxes');

  if (sub === 'kill') {
    const sandbox = await ctx.connect(id);
    await out.spin(`Killing ${id}`, () => sandbox.kill({ signal: ctx.signal }));
    if (ctx.json) return out.emit({ sandboxId: id, killed: true });
    return out.line(`${id} killed`);
  }
  const list = await out.spin('Listing sandboxes', () => Sandbox.list({ ...ctx.conn, ...(v.status !== undefined && { status: v.status }), signal: ctx.signal }));
  if (sub === 'info') {
    // From the list, not Sandbox.connect: looking must not resume a paused sandbox.
    const info = list.find((s) => s.sandboxId === id);
    if (!info) throw new SandboxNotFoundError(`sandbox ${id} not found`, { code: 'SANDBOX_NOT_FOUND' });
    if (ctx.json) return out.emit(info);
    const r = info.resources;
    const fields = [
      ['id', info.sandboxId],
      ['status', out.status(info.status)],
      ['template', [info.templateName, info.templateId && `(id ${info.templateId})`].filter(Boolean).join(' ') || '-'],
      ['region', info.region ?? '-'],
      ['resources', r ? `${r.vcpu} vCPU, ${r.memoryMb} MB memory, ${r.diskMb} MB disk` : '-'],
      ['internet', info.internetAccess ? 'yes' : 'no'],
      ['created', info.createdAt ? `${info.createdAt} (${relative(info.createdAt)})` : '-'],
      ['timeout', info.timeoutSeconds !== undefined ? `${info.timeoutSeconds}s` : 'none'],
      ['expires', info.expiresAt ? `${info.expiresAt} (${relative(info.expiresAt)})` : '-'],
      ['agent', info.publicHost ?? '-'],
    ];
    return out.out(fields.map(([k, val]) => `${out.c.bold(k.padEnd(10))}${val}\n`).join(''));
  }
  if (ctx.json) return out.emit(list);
  const rows = list.map((s) => [s.sandboxId, s.status, s.templateName ?? s.templateId ?? '-', relative(s.createdAt), s.expiresAt ? relative(s.expiresAt) : '-']);
  out.out(out.table(['SANDBOX ID', 'STATUS', 'TEMPLATE', 'CREATED', 'EXPIRES'], rows, (n, col, text) => (col === 1 ? out.status(text, list[n].status) : text)));
}

/** A sandbox created for one command (killed when it ends), or the one --sandbox names. */
async function sandboxFor(ctx, v) {
  if (v.sandbox !== undefined) return { sandbox: await ctx.connect(v.sandbox), created: false };
  const creating = Sandbox.create({ ...ctx.conn, ...(v.template !== undefined && { template: v.template }) }); // no signal: see cmdCreate
  ctx.onInterrupt(async () => (await creating.catch(() => null))?.kill());
  return { sandbox: await ctx.out.spin('Creating sandbox', () => creating), created: true };
}

async function cmdExec(ctx, v, words) {
  const out = ctx.out;
  if (v.template !== undefined && v.sandbox !== undefined) throw new UsageError('--template is for the sandbox exec creates; not with --sandbox', 'exec');
  const options = { background: true };
  if (words.length > 1) options.args = words.slice(1);
  if (v.cwd !== undefined) options.cwd = v.cwd;
  if (v.timeout !== undefined) options.timeout = positiveInt(v.timeout, '--timeout', 'exec');
  const env = envVars(v.env, 'exec');
  if (env) options.env = env;
  const { sandbox, created } = await sandboxFor(ctx, v);
  try {
    // No signal here: once started, the command must be known (its handle) to be killed.
    const starting = sandbox.commands.run(words[0], options);
    if (!created) ctx.onInterrupt(async () => (await starting).kill());
    const run = await out.spin('Starting', () => starting);
    const signal = ctx.signal;
    const result = await follow(ctx, run.stream({ signal }), () => run.wait({ signal }), { live: !ctx.json, spinnerText: 'Running' });
    if (ctx.json) out.emit({ sandboxId: sandbox.sandboxId, processId: run.processId, ...result, sandboxCreated: created });
    else endNote(out, run.processId, result);
    return processExitCode(result);
  } finally {
    if (created && !ctx.interrupted) {
      await out.spin('Removing sandbox', () => sandbox.kill()).catch((e) => out.note(`could not kill sandbox ${sandbox.sandboxId}: ${e.message}`));
    }
  }
}

/** `sandbox:ID:/path` → { id, path }; `sandbox:/path` → { path } (the --sandbox one); else undefined. */
function remotePath(arg) {
  const m = /^sandbox:(?:([^:/]+):)?(\/.*)$/.exec(arg);
  return m && { id: m[1], path: m[2] };
}

/** The sandbox and path an ls/rm argument names. */
function filesTarget(v, arg, sub) {
  const remote = remotePath(arg) ?? (arg.startsWith('/') ? { path: arg } : undefined);
  if (!remote) throw new UsageError(`'${arg}' is not a sandbox path (sandbox:ID:/path, or /path with --sandbox)`, 'files');
  const id = remote.id ?? v.sandbox;
  if (id === undefined) throw new UsageError(`files ${sub}: which sandbox? (--sandbox ID, or sandbox:ID:${remote.path})`, 'files');
  if (remote.id !== undefined && v.sandbox !== undefined && remote.id !== v.sandbox) throw new UsageError(`'${arg}' names another sandbox than --sandbox ${v.sandbox}`, 'files');
  return { id, path: remote.path };
}

async function cmdFiles(ctx, v, [sub, ...args]) {
  const out = ctx.out;
  const sandboxes = new Map();
  const open = async (id) => {
    if (!sandboxes.has(id)) sandboxes.set(id, await ctx.connect(id));
    return sandboxes.get(id);
  };
  if (sub === 'ls' || sub === 'list') {
    if (args.length > 1) throw new UsageError('files ls takes one PATH', 'files');
    const { id, path } = filesTarget(v, args[0] ?? '/workspace', 'ls');
    const entries = await out.spin(`Listing ${path}`, async () => (await open(id)).files.list(path, { signal: ctx.signal }));
    if (ctx.json) return out.emit(entries);
    const rows = entries.map((e) => [`${e.isDir ? 'd' : e.isSymlink ? 'l' : '-'}${e.permissions}`, e.size, e.modifiedTime.replace(/\.\d+Z$/, 'Z'), e.isDir ? out.c.cyan(`${e.name}/`) : e.name]);
    return out.out(rows.length ? out.table(['MODE', 'SIZE', 'MODIFIED', 'NAME'], rows) : '');
  }
  if (sub === 'rm') {
    if (!args.length) throw new UsageError('files rm takes at least one PATH', 'files');
    const targets = args.map((a) => filesTarget(v, a, 'rm'));
    if (new Set(targets.map((t) => t.id)).size > 1) throw new UsageError('files rm: every PATH in one sandbox', 'files');
    const sandbox = await open(targets[0].id);
    for (const t of targets) {
      await out.spin(`Removing ${t.path}`, () => sandbox.files.remove(t.path, { signal: ctx.signal }));
      if (!ctx.json) out.line(`removed ${t.path}`);
    }
    if (ctx.json) out.emit({ sandboxId: sandbox.sandboxId, removed: targets.map((t) => t.path) });
    return;
  }
  if (sub === 'cp') {
    if (args.length !== 2) throw new UsageError('files cp takes SRC and DST', 'files');
    const [src, dst] = args;
    const [from, to] = [remotePath(src), remotePath(dst)];
    if (!from === !to) throw new UsageError('files cp: one side in a sandbox (sandbox:ID:/path), the other local', 'files');
    const remote = from ?? to;
    const id = remote.id ?? v.sandbox;
    if (id === undefined) throw new UsageError(`files cp: which sandbox? (--sandbox ID, or sandbox:ID:${remote.path})`, 'files');
    const sandbox = await open(id);
    const signal = ctx.signal;
    let bytes;
    if (to) {
      let data;
      if (src === '-') {
        const chunks = [];
        for await (const chunk of process.stdin) chunks.push(chunk);
        data = new Blob(chunks);
      }
      else {
        try {
          if (!fs.statSync(src).isFile()) throw new UsageError(`cannot copy ${src}: not a file`, 'files');
        } catch (e) {
          if (e instanceof UsageError) throw e;
          throw new UsageError(`cannot read ${src}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, 'files');
        }
        data = await fs.openAsBlob(src); // read from disk as it is sent
      }
      bytes = data.size;
      await out.spin(`Uploading to ${to.path}`, () => sandbox.files.upload(data, to.path, { signal }));
    } else {
      const stream = await out.spin(`Downloading ${from.path}`, () => sandbox.files.read(from.path, { format: 'stream', signal }));
      const sink = dst === '-' ? process.stdout : fs.createWriteStream(fs.existsSync(dst) && fs.statSync(dst).isDirectory() ? `${dst.replace(/\/$/, '')}/${from.path.split('/').pop()}` : dst);
      bytes = 0;
      for await (const chunk of stream) {
        bytes += chunk.length;
        if (!sink.write(chunk)) await new Promise((r) => sink.once('drain', r));
      }
      if (sink !== process.stdout) await new Promise((resolve, reject) => sink.end((e) => (e ? reject(e) : resolve())));
    }
    if (ctx.json) return out.emit({ sandboxId: sandbox.sandboxId, source: src, destination: dst, bytes });
    if (dst !== '-') out.note(`copied ${bytes} bytes: ${src} -> ${dst}`);
    return;
  }
  throw new UsageError(`unknown subcommand '${sub}' (ls, cp, rm)`, 'files');
}

// ---------------------------------------------------------------------------------------
// Dispatch.

/** Splits argv into the command name and the rest (global options may come before it). */
function splitCommand(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return { name: undefined, rest: argv };
    if (a === '--url' || a === '--api-key') {
      i++;
      continue;
    }
    if (!a.startsWith('-') || a === '-') return { name: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { name: undefined, rest: argv };
}

/** Whether a flag is among the arguments before any `--`. */
function hasFlag(args, ...flags) {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => flags.includes(a));
}

function parse(args, options, command) {
  try {
    return parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (e) {
    const quoted = /'([^']*)'/.exec(e.message)?.[1] ?? '';
    const flag = /--[\w-]+/.exec(quoted)?.[0] ?? quoted;
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option '${quoted}'`, command);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      if (/argument missing/.test(e.message)) throw new UsageError(`option '${flag}' needs a value`, command);
      if (/ambiguous/.test(e.message)) throw new UsageError(`option '${flag}' needs a value (one that starts with '-' is written ${flag}=VALUE)`, command);
      if (/does not take an argument/.test(e.message)) throw new UsageError(`option '${flag}' takes no value`, command);
    }
    if (e.code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(e.message.split(/\.\s/)[0], command);
    throw e;
  }
}

async function main(argv) {
  const { name, rest } = splitCommand(argv);
  const json = hasFlag(argv, '--json');
  let ctx = new Context({ json });
  const onSignal = (signal) => ctx.interrupt(signal);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, onSignal);
  // A reader that went away (`sandlot run x | head -1`): stop like a program getting SIGPIPE.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e) => {
      if (e.code === 'EPIPE') ctx.interrupt('SIGPIPE');
      else throw e;
    });
  }

  let code;
  try {
    const command = name === 'help' ? undefined : name && COMMANDS[name];
    if (name === 'help') {
      const [topic, ...extra] = parse(rest, {}, 'help').positionals;
      if (extra.length || (topic && !COMMANDS[topic])) throw new UsageError(`no command '${extra[0] ?? topic}'`);
      process.stdout.write(`${topic ? commandHelp(topic) : MAIN_HELP}\n`);
      return finish(EXIT.OK);
    }
    if (name !== undefined && !command) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
    if (hasFlag(rest, '--help', '-h')) {
      process.stdout.write(`${command ? commandHelp(name) : MAIN_HELP}\n`);
      return finish(EXIT.OK);
    }
    if (!command) {
      const { values } = parse(rest, {}, undefined);
      if (values.version) {
        if (json) ctx.out.emit({ version: VERSION });
        else process.stdout.write(`sandlot ${VERSION}\n`);
        return finish(EXIT.OK);
      }
      throw new UsageError('no command given');
    }
    const { values, positionals } = parse(rest, command.options, name);
    if (values.version) throw new UsageError('--version goes alone: sandlot --version', name);
    ctx = new Context(values);
    const [min, max] = command.args;
    if (positionals.length < min) throw new UsageError(`missing ${command.argNames ?? 'argument'}`, name);
    if (positionals.length > max) throw new UsageError(`unexpected argument '${positionals[max]}'`, name);
    if (command.needsSandbox && values.sandbox === undefined) throw new UsageError('--sandbox ID is required', name);
    code = (await command.run(ctx, values, positionals)) ?? EXIT.OK;
  } catch (error) {
    if (ctx.interrupted) return new Promise(() => {}); // the signal handler exits
    reportError(ctx.out, error);
    code = exitCodeOf(error);
  }
  if (ctx.interrupted) return new Promise(() => {});
  return finish(code);
}

main(process.argv.slice(2));
