// The `sandlot` commands: their options (util.parseArgs form), positional arguments,
// help texts, and the function that runs each.

import { VERSION } from './output.mjs';
import { follow, cmdCreate, cmdRun, cmdPs, cmdLogs, cmdWait, cmdPreview, cmdKill } from './processes.mjs';
import { cmdSandboxes, cmdExec, cmdFiles } from './sandboxes.mjs';

// Commands: their options (util.parseArgs form), positional arguments and help.

export const GLOBAL_OPTIONS = {
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

export const COMMANDS = {
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
    usage: 'sandlot run [--sandbox ID] [--language L] [--name N] [--env K=V]... [--timeout S] [--background | --save-results DIR] FILE|-',
    options: {
      sandbox: { type: 'string', short: 's' },
      language: { type: 'string', short: 'l' },
      name: { type: 'string', short: 'n' },
      env: { type: 'string', short: 'e', multiple: true },
      timeout: { type: 'string' },
      workdir: { type: 'string', short: 'w' },
      template: { type: 'string', short: 't' },
      background: { type: 'boolean', short: 'b' },
      'save-results': { type: 'string' },
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
  --save-results DIR run in the language's default context (state kept between runs in
                     the same sandbox) and write its rich results to DIR: figures as
                     result-N.png (or .svg, .jpg), tables as result-N.html

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

export const MAIN_HELP = `sandlot ${VERSION}: run code in Sandlot (or HopX-compatible) sandboxes

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

export function commandHelp(name) {
  const c = COMMANDS[name];
  return `Usage: ${c.usage}\n\n${c.summary[0].toUpperCase()}${c.summary.slice(1)}.\n\n${c.help}\n\n${GLOBAL_HELP}`;
}
