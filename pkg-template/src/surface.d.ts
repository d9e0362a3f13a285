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

/** Options every `files`, `terminal` and metrics call takes. */
export interface AgentCallOptions {
  signal?: AbortSignal;
  /**
   * Seconds the call may wait for the server's answer (default 60; 600 for uploads and
   * downloads, whose body then streams for as long as it takes).
   */
  timeout?: number;
}

/** One entry of `files.list()`. Symlinks are described, not followed. */
export interface FileEntry {
  name: string;
  path: string;
  /** Bytes. */
  size: number;
  isDir: boolean;
  isFile: boolean;
  isSymlink: boolean;
  /** RFC 3339, UTC. */
  modifiedTime: string;
  /** `ls`-style, e.g. `rw-r--r--`. */
  permissions: string;
  /** Octal, e.g. `0644`. */
  mode: string;
}

export interface ReadOptions extends AgentCallOptions {
  /** `text` (default; the file must be UTF-8, at most 16 MiB), `bytes`, or `stream`. */
  format?: 'text' | 'bytes' | 'stream';
}

export interface WriteOptions extends AgentCallOptions {
  /** Octal permission bits of a new file, e.g. `'0755'` (default `'0644'`). */
  mode?: string;
  /** `false`: refuse to replace an existing file (`code` `FILE_ALREADY_EXISTS`). */
  overwrite?: boolean;
}

export interface RenameOptions extends AgentCallOptions {
  /** Replace an existing `to` (default `false`: `FILE_ALREADY_EXISTS`). */
  overwrite?: boolean;
}

/** What `files.write` takes. */
export type FileData = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>;

/** An event of `files.watch()`. */
export type WatchEvent =
  | { type: 'change'; path: string; event: 'created' | 'modified' | 'deleted' | 'renamed'; timestamp: string }
  /** The server's report of trouble: `EVENTS_LOST`, or the end of the watch (its path went away). */
  | { type: 'error'; error: string; code: string; timestamp: string };

export interface WatchOptions {
  /** Also watch subdirectories. */
  recursive?: boolean;
  /** Ends the watch. */
  signal?: AbortSignal;
}

/** A live event stream (`files.watch`, a terminal's `output`): `close()` ends it. */
export interface EventIterator<E> extends AsyncIterableIterator<E> {
  close(): Promise<void>;
}

/**
 * `sandbox.files`: files in the sandbox (paths under `/workspace` and `/tmp`). A superset of
 * the HopX JS SDK's `Files`. A missing path is a `FileNotFoundError`; a path outside the
 * sandbox's allowed roots, or one its user may not touch, a `PermissionError`.
 */
export interface Files {
  /** A UTF-8 file as text (`format` `bytes` or `stream` for anything else, or larger). */
  read(path: string, options?: ReadOptions & { format?: 'text' }): Promise<string>;
  read(path: string, options: ReadOptions & { format: 'bytes' }): Promise<Uint8Array>;
  /** The file streamed as it is read (a web `ReadableStream` of `Uint8Array`). */
  read(path: string, options: ReadOptions & { format: 'stream' }): Promise<ReadableStream<Uint8Array>>;
  readBytes(path: string, options?: AgentCallOptions): Promise<Uint8Array>;
  /**
   * Writes a file, creating its parents. Small text and bytes go in one request; a `Blob`, a
   * `ReadableStream` or more than 1 MiB is streamed up (as `upload` does).
   */
  write(path: string, data: FileData, options?: WriteOptions): Promise<void>;
  writeBytes(path: string, data: FileData, options?: WriteOptions): Promise<void>;
  /** A directory's entries, sorted by name (default `/workspace`). */
  list(path?: string, options?: AgentCallOptions): Promise<FileEntry[]>;
  exists(path: string, options?: AgentCallOptions): Promise<boolean>;
  /** Removes a file, a symlink (not its target) or a directory with everything in it. */
  remove(path: string, options?: AgentCallOptions): Promise<void>;
  /** Makes a directory and its parents; an existing one is fine. */
  mkdir(path: string, options?: AgentCallOptions): Promise<void>;
  rename(from: string, to: string, options?: RenameOptions): Promise<void>;
  /**
   * Uploads to `remotePath`, streamed. A string `source` is a **local file path** (Node, Bun,
   * Deno; HopX's signature); otherwise the data itself.
   */
  upload(source: string | Blob | ReadableStream<Uint8Array> | Uint8Array | ArrayBuffer, remotePath: string, options?: AgentCallOptions): Promise<void>;
  /** The file's bytes. */
  download(path: string, options?: AgentCallOptions): Promise<Uint8Array>;
  /** Streams the file into `localPath` (Node, Bun, Deno). */
  download(path: string, localPath: string, options?: AgentCallOptions): Promise<void>;
  /**
   * Watches `path`: await it (it resolves once the watch is in place) or iterate it directly,
   * `for await (const e of sandbox.files.watch('/workspace'))`.
   */
  watch(path: string, options?: WatchOptions): StreamPromise<WatchEvent, EventIterator<WatchEvent>>;
}

/** A terminal's state (`terminal.create`, `list`, `connect`, and each handle's data). */
export interface TerminalInfo {
  terminalId: string;
  status: 'running' | 'exited';
  shell: string;
  cwd: string;
  cols: number;
  rows: number;
  /** Once exited: the shell's exit code (128 + signal when it was killed). */
  exitCode?: number | null;
  /** Clients following its output now. */
  attached: number;
  /** `seq` of its newest output event. */
  lastSeq: number;
  createdAt: string;
  exitedAt?: string;
}

/** An event of a terminal's output. */
export type TerminalEvent =
  | { type: 'output'; data: string; seq: number }
  /** Output `fromSeq..toSeq` left the server's replay buffer before it was read. */
  | { type: 'truncated'; fromSeq: number; toSeq: number }
  /** The shell exited; the stream ends. */
  | { type: 'exit'; code: number | null; seq: number };

export interface CreateTerminalOptions extends AgentCallOptions {
  /** Columns and rows, 1-1000 (default 80×24). */
  cols?: number;
  rows?: number;
  /** Working directory (default `/workspace`). */
  cwd?: string;
  env?: Record<string, string>;
  /** Absolute path of the shell (default `/bin/bash`). */
  shell?: string;
}

/** The methods of a terminal; its data are own properties (`TerminalInfo`). */
export declare class TerminalHandle {
  private constructor();
  /** The terminal id (`terminalId`). */
  readonly id: string;
  /** Types `data` (text, or bytes) into it. */
  write(data: string | Uint8Array, options?: AgentCallOptions): Promise<void>;
  resize(cols: number, rows: number, options?: AgentCallOptions): Promise<this & TerminalInfo>;
  /** Kills the shell and all it started; resolves once it has exited. */
  kill(options?: AgentCallOptions): Promise<this & TerminalInfo>;
  refresh(options?: AgentCallOptions): Promise<this & TerminalInfo>;
  /** Its output from the start of what the server kept (or after `since`), live, until it exits. */
  output(options?: { since?: number; signal?: AbortSignal }): StreamPromise<TerminalEvent, EventIterator<TerminalEvent>>;
  [Symbol.asyncIterator](): AsyncIterator<TerminalEvent>;
  /** Waits for the shell to exit; resolves with its exit code. */
  wait(options?: { signal?: AbortSignal }): Promise<number | null>;
}

export type Terminal = TerminalHandle & TerminalInfo;

/** `sandbox.terminal`: shells on a real pseudo-terminal, over `fetch` (no WebSocket needed). */
export interface Terminals {
  create(options?: CreateTerminalOptions): Promise<Terminal>;
  list(options?: AgentCallOptions): Promise<Terminal[]>;
  connect(terminalId: string, options?: AgentCallOptions): Promise<Terminal>;
}

/** Used and allowed, in MiB. */
export interface UsageGauge {
  usedMb: number;
  limitMb: number;
  usagePercent: number;
}

/** `sandbox.getMetrics()`: what the sandbox uses and what its agent has served. */
export interface SandboxMetrics {
  uptimeSeconds: number;
  /** Agent requests served (this server's run), and of those, failed (4xx/5xx). */
  totalRequests: number;
  totalErrors: number;
  /** Processes running now, and started in all. */
  activeExecutions: number;
  totalExecutions: number;
  /** Per route (`"POST /execute"`): requests, and mean duration in ms. */
  requestsTotal: Record<string, number>;
  avgDurationMs: Record<string, number>;
  system: {
    /** CPU seconds used, mean use in percent of the limit, the limit in cores. */
    cpu: { usageSeconds: number; usagePercent: number; cores: number };
    memory: UsageGauge;
    disk: UsageGauge;
  };
  /** Operating-system processes in the sandbox, and of those running. */
  process: { count: number; running: number };
  /** Processes the out-of-memory killer ended. */
  oomKills: number;
  /** HopX's result cache (sandlotd keeps none: zeros). */
  cache: { size: number; hits: number; misses: number; hitRate: number };
  timestamp: string;
}

/** One operating-system process in the sandbox (`listSystemProcesses`). */
export interface SystemProcess {
  /** Its pid inside the sandbox. */
  pid: number;
  name: string;
  /** `running`, `sleeping`, `disk-sleep`, `stopped`, `zombie` or `idle`. */
  status: string;
  /** CPU over its lifetime, in percent of one core. */
  cpuPercent: number;
  memoryMb: number;
  command: string;
  /** `user` (the sandbox's user) or `root`. */
  user: string;
  /** The API process it belongs to, if any. */
  processId?: string;
}

export interface Sandbox {
  /** Files in the sandbox: `sandbox.files.write('/workspace/a.txt', 'hi')`. */
  readonly files: Files;
  /** Interactive terminals: `const t = await sandbox.terminal.create({ cols: 120 })`. */
  readonly terminal: Terminals;
  /** What the sandbox uses (CPU, memory, disk, processes) and what its agent served. */
  getMetrics(options?: AgentCallOptions): Promise<SandboxMetrics>;
  /** Every operating-system process in the sandbox, not only those the API started. */
  listSystemProcesses(options?: AgentCallOptions): Promise<SystemProcess[]>;
  /** Kills the sandbox and every process in it. */
  kill(options?: CallOptions | null): Promise<void>;
  /** Pauses the sandbox (its agent stops answering until `resume()`). */
  pause(options?: CallOptions | null): Promise<void>;
  /** Resumes a paused sandbox. */
  resume(options?: CallOptions | null): Promise<void>;
  /**
   * Replaces the sandbox's egress rules (it must have been created with `internetAccess`);
   * they apply to new connections at once. Needs the API key (a control-plane call).
   * A malformed rule is a `ValidationError`.
   */
  updateNetwork(rules: NetworkRules, options?: { signal?: AbortSignal }): Promise<NetworkState>;
  /** The sandbox's internet access and egress rules (a control-plane call). */
  getNetwork(options?: { signal?: AbortSignal }): Promise<NetworkState>;
  /**
   * A URL that opens `port` of the sandbox (a server listening inside it) without other
   * credentials, until it expires: share it, or open it in a browser. `ttl` in seconds
   * (default 3600, at most what the server allows). Works with a session token too.
   */
  getPreviewUrl(port: number, options?: { ttl?: number; signal?: AbortSignal }): Promise<PreviewUrl>;
  /**
   * Where `port` of the sandbox is reached through the server, without credentials:
   * `<server>/sandboxes/<id>/ports/<port>/`. Requests need the sandbox token
   * (`Authorization: Bearer <token>`); use `getPreviewUrl` for a URL that carries its own.
   */
  getHost(port: number): string;
}

/** Egress rules: CIDRs, addresses and domain names (`*.example.org` too); allow wins. */
export interface NetworkRules {
  allowOut?: string[];
  denyOut?: string[];
}

/** `sandbox.getNetwork()` and `sandbox.updateNetwork()`. */
export interface NetworkState {
  internetAccess: boolean;
  network: { allowOut: string[]; denyOut: string[] };
}

/** `sandbox.getPreviewUrl(port)`. */
export interface PreviewUrl {
  /** Opens the port (carries a signed token). */
  url: string;
  /** The same place without credentials. */
  host: string;
  port: number;
  /** RFC 3339 time the URL stops working. */
  expiresAt: string;
}
