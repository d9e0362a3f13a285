// `sandbox.commands`: shell commands over the process calls.

import { invalid, records } from './core.js';
import { handlePrototype } from './processes.js';

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
export class Commands {
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
