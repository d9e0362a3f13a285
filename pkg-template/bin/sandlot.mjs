#!/usr/bin/env node
// `sandlot`: the command line of the Sandlot SDK (the package's `bin`). It is a thin layer
// over the package's own public API (`import ... from 'sandlot'`), with no dependency:
// arguments are read by Node's `util.parseArgs`. This file reads the command line and
// dispatches; `cli/` holds the commands (commands.mjs: their table and help; processes.mjs,
// sandboxes.mjs: what they do), the output (output.mjs) and argument helpers (values.mjs).
//
// Output rules: results on stdout, diagnostics on stderr; `--json` prints exactly one JSON
// document on stdout (a result, or `{ "error": { ... } }`) and nothing else there; colours
// only when the stream is a TTY and NO_COLOR is unset, the spinner (on stderr) only when
// stdout and stderr are TTYs and NO_COLOR is unset. Exit codes: see EXIT and the main help.

import { parseArgs } from 'node:util';

import { COMMANDS, GLOBAL_OPTIONS, MAIN_HELP, commandHelp } from './cli/commands.mjs';
import { Context, EXIT, UsageError, VERSION, exitCodeOf, finish, reportError } from './cli/output.mjs';

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
