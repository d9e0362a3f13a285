// Types of the JS surface (surface.js). The build merges this file with the API declarations
// generated from the Rust crate, which name these types; the import line names what this file
// uses from them (the build drops it).
import type {
  BackgroundExecution,
  CallOptions,
  ExecutionResult,
  ProcessActionResult,
  ProcessInfo,
  ProcessStream,
  StreamEvent,
  StreamOptions,
  WaitOptions,
} from './api.js';

/**
 * What `runCodeStream`, `streamProcess` and a process handle's `stream()` return: a Promise
 * of the stream that is also an async iterable of its events. Both work:
 * `for await (const event of sandbox.runCodeStream(code))`, and
 * `const stream = await sandbox.runCodeStream(code)` (then `for await` over `stream`, or
 * `stream.close()`). A failure to open the stream rejects whichever of the two you use, and
 * is never reported as an unhandled rejection.
 */
export interface StreamPromise<E, S extends AsyncIterable<E> = AsyncIterable<E>>
  extends Promise<S>,
    AsyncIterable<E> {}

/**
 * The methods of a background process record (`runCodeBackground`, `getProcess`,
 * `listProcesses`, `waitForProcess`). The record's data are its own properties, as before;
 * the methods come from this class's prototype, so `JSON.stringify` and `Object.keys` see the
 * data only, and `instanceof ProcessHandle` holds.
 */
export declare class ProcessHandle {
  private constructor();
  readonly processId: string;
  /**
   * Waits until the process has ended (`completed`, `failed`, `killed` or `timeout`: each
   * resolves, none rejects); the handle then holds the final record, and is the result.
   * `timeout` (seconds) gives up with a `TimeoutError`, the process running on.
   */
  wait(options?: WaitOptions): Promise<this & ProcessInfo>;
  /** Kills the process (`status` becomes `killed`); resolves with the server's reply. */
  kill(options?: CallOptions): Promise<ProcessActionResult>;
  /** The process's output, live: await it for the stream, or iterate it directly. */
  stream(options?: StreamOptions): StreamPromise<StreamEvent, ProcessStream>;
  /** Reads the record again into the handle; resolves with the handle. */
  refresh(options?: CallOptions): Promise<this & ProcessInfo>;
}

/** A process record with the handle's methods: `getProcess`, `listProcesses`, `waitForProcess`. */
export type Process = ProcessHandle & ProcessInfo;

/** What `runCodeBackground` resolves to: the accepted process, with the handle's methods. */
export type BackgroundProcess = ProcessHandle & BackgroundExecution;

/**
 * `sandbox.commands` (E2B's and HopX's shape). `run(command)` runs a shell line (or, with
 * `args`, a program with exactly those arguments) and resolves with its result; a failing
 * command is a result with its `exitCode`. With `background: true` it resolves at once with a
 * process handle.
 */
/** Options of `sandbox.commands.run`. */
export interface RunCommandOptions {
  /** Start it and resolve at once with its process handle (as `runCodeBackground`). */
  background?: boolean;
  /** Arguments: `command` is then a program run with exactly these (no shell). Without them, `command` is a shell line (bash). */
  args?: string[];
  /** Working directory (default `/workspace`). */
  cwd?: string;
  env?: Record<string, string>;
  /** Run-time limit in seconds (default 30, or 300 in the background). */
  timeout?: number;
  /** A label shown in `listProcesses()` (background; default: the command line). */
  name?: string;
  /** Called with each piece of stdout, in order, while it runs; in the foreground the call resolves after the last one. */
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  /** With callbacks: whole lines instead of chunks as written. */
  lines?: boolean;
  signal?: AbortSignal;
}

/** What a command run in the foreground resolves to: `runCode`'s result. */
export type CommandResult = ExecutionResult;

export interface Commands {
  run(command: string, options: RunCommandOptions & { background: true }): Promise<BackgroundProcess>;
  run(command: string, options?: RunCommandOptions & { background?: false }): Promise<CommandResult>;
}

export interface Sandbox {
  /** Commands in the sandbox: `sandbox.commands.run('ls -la')`. */
  readonly commands: Commands;
}
