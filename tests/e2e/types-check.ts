// Type-level contract of the package, checked with `tsc --noEmit --strict` against the
// installed tarball. Each `@ts-expect-error` line must fail to compile; if the types ever
// loosen, tsc reports the directive as unused and the test fails.
import {
  FileNotFoundError,
  PermissionError,
  ProcessHandle,
  Sandbox,
  TerminalHandle,
  type FileEntry,
  type SandboxMetrics,
  type SystemProcess,
  type Terminal,
  type TerminalInfo,
  SandlotError,
  RateLimitError,
  verifyWebhookSignature,
  type AsyncExecution,
  type BackgroundExecution,
  type BackgroundProcess,
  type Language,
  type Process,
  type ProcessInfo,
  type ProcessStatus,
  type ProcessStream,
  type SandboxStatus,
  type StreamEvent,
  type StreamPromise,
} from 'sandlot';

declare const sandbox: Sandbox;
declare const p: ProcessInfo;

// @ts-expect-error the constructor is private: use Sandbox.create/connect
new Sandbox();

// @ts-expect-error status is a closed union
const bad: ProcessStatus = 'done';

const statuses: ProcessStatus[] = ['queued', 'running', 'completed', 'failed', 'killed', 'timeout'];
const sandboxStatuses: SandboxStatus[] = ['creating', 'running', 'paused', 'stopped', 'error', 'deleted'];

// Optional fields are optional: they must be narrowed before use.
// @ts-expect-error name may be absent
const name: string = p.name;
// @ts-expect-error exitCode is absent until the process ends
const code: number = p.exitCode;
const maybeCode: number | undefined = p.exitCode;

// Options are checked.
// @ts-expect-error timeout is a number of seconds
void sandbox.runCode('print(1)', { timeout: '5' });
// @ts-expect-error unknown option
void sandbox.runCodeBackground('print(1)', { nmae: 'typo' });
// @ts-expect-error signal must be an AbortSignal
void sandbox.listProcesses({ signal: 'stop' });
// @ts-expect-error envVars values are strings
void Sandbox.create({ envVars: { N: 1 } });
// @ts-expect-error a session needs a token
void Sandbox.connect({ sandboxId: 'x', agentUrl: 'http://h' });

// @ts-expect-error runCodeAsync needs its options (callbackUrl)
void sandbox.runCodeAsync('print(1)');
// @ts-expect-error verifyWebhookSignature needs the signature header
void verifyWebhookSignature({ secret: 's', body: 'b', timestamp: '1' });
const verified: boolean = verifyWebhookSignature({ secret: 's', body: 'b', timestamp: '1', signature: 'sha256=00' });

async function streams(): Promise<void> {
  const accepted: AsyncExecution = await sandbox.runCodeAsync('print(1)', { callbackUrl: 'http://127.0.0.1:1/hook' });
  void accepted.processId;
  for await (const event of await sandbox.streamProcess('proc_1', { since: 3 })) {
    const e: StreamEvent = event;
    // Narrowing on `type` gives each event its own fields.
    if (e.type === 'stdout') void e.data.toUpperCase();
    if (e.type === 'exit') void (e.status satisfies ProcessStatus);
    // @ts-expect-error only stdout/stderr events carry data
    if (e.type === 'exit') void e.data;
  }
}

// Results are typed.
async function results(): Promise<void> {
  const r = await sandbox.runCode('print(1)');
  const out: string = r.stdout;
  const ok: boolean = r.success;
  const bg = await sandbox.runCodeBackground('x');
  const t: number = bg.timeout;
  const list: ProcessInfo[] = await sandbox.listProcesses();
  // @ts-expect-error results are camelCase
  void list[0].process_id;
  try {
    await sandbox.kill();
  } catch (e) {
    if (e instanceof RateLimitError) {
      const after: number | undefined = e.retryAfter;
      void after;
    }
    if (e instanceof SandlotError) {
      const c: string = e.code;
      const s: number | undefined = e.status;
      void [c, s];
    }
  }
  void [out, ok, t];
}

// `language` is the union of the names the server accepts.
const languages: Language[] = ['python', 'python3', 'py', 'javascript', 'js', 'node', 'nodejs', 'bash', 'sh', 'shell'];
void sandbox.runCode('puts 1', { language: 'bash' });
// @ts-expect-error an unknown language is refused by the types (and by the server: 400)
void sandbox.runCode('puts 1', { language: 'ruby' });
// @ts-expect-error names are lowercase
void sandbox.runCodeBackground('print(1)', { language: 'Python' });
// @ts-expect-error runCodeStream takes the same names
void sandbox.runCodeStream('print(1)', { language: 'cobol' });

// Stream calls are awaitable and directly iterable.
async function directStreams(): Promise<void> {
  for await (const event of sandbox.runCodeStream('print(1)', { lines: true })) {
    const e: StreamEvent = event;
    if (e.type === 'stdout') void e.data;
  }
  for await (const event of sandbox.streamProcess('proc_1', { since: 2 })) void (event satisfies StreamEvent);
  const call: StreamPromise<StreamEvent, ProcessStream> = sandbox.streamProcess('proc_1');
  const stream: ProcessStream = await call;
  await stream.close();
  const [a, b] = await Promise.all([sandbox.runCodeStream('print(1)'), sandbox.streamProcess('p')]);
  void [a.close(), b.close()];
  // @ts-expect-error awaiting gives the stream, not an event
  const notAnEvent: StreamEvent = await sandbox.runCodeStream('print(1)');
  void notAnEvent;
}

// Process records are handles; their data is unchanged.
async function handles(): Promise<void> {
  const bg: BackgroundProcess = await sandbox.runCodeBackground('print(1)', { name: 'job' });
  const asData: BackgroundExecution = bg;
  const id: string = bg.processId;
  const t: number = bg.timeout;
  const done = await bg.wait({ timeout: 30, signal: AbortSignal.timeout(60_000) });
  const exit: number | undefined = done.exitCode;
  const stdout: string = done.stdout;
  const still: number = done.timeout; // a background handle keeps its number timeout
  const killed = await bg.kill();
  const status: ProcessStatus = killed.status;
  for await (const e of bg.stream({ since: 0, lines: true })) void (e satisfies StreamEvent);
  const fresh = await bg.refresh();
  void fresh.stderrBytes;
  const list: Process[] = await sandbox.listProcesses({ status: ['running', 'queued'], name: 'job', output: false });
  const one: Process = await sandbox.getProcess(id);
  const info: ProcessInfo = one;
  const waited: Process = await sandbox.waitForProcess(id, { timeout: 5, interval: 0.1 });
  if (one instanceof ProcessHandle) void one.refresh();
  await list[0]?.kill();
  void [asData, t, exit, stdout, still, status, info, waited];
  // @ts-expect-error a handle is not built by hand
  new ProcessHandle();
  // @ts-expect-error wait's timeout is in seconds, a number
  void bg.wait({ timeout: '5s' });
  // @ts-expect-error listProcesses filters on known statuses only
  void sandbox.listProcesses({ status: 'done' });
  // @ts-expect-error output is a boolean
  void sandbox.listProcesses({ output: 'no' });
}

// One time unit: seconds. The millisecond spellings are deprecated but still accepted.
async function units(): Promise<void> {
  await sandbox.waitForProcess('p', { timeout: 60, interval: 0.5 });
  await sandbox.waitForProcess('p', { timeoutMs: 60_000, intervalMs: 500 });
  // @ts-expect-error there is no timeoutSeconds here: `timeout` is already seconds
  await sandbox.waitForProcess('p', { timeoutSeconds: 60 });
}

// Files, terminals, metrics: each format's result type, typed events, typed handles.
async function filesAndTerminals(): Promise<void> {
  const text: string = await sandbox.files.read('/workspace/a.txt');
  const bytes: Uint8Array = await sandbox.files.read('/workspace/a.bin', { format: 'bytes' });
  const body: ReadableStream<Uint8Array> = await sandbox.files.read('/workspace/a.bin', { format: 'stream' });
  await sandbox.files.write('/workspace/b', new Blob(['x']), { mode: '0644', overwrite: false });
  await sandbox.files.write('/workspace/c', body);
  const entries: FileEntry[] = await sandbox.files.list();
  const dir: boolean = entries[0].isDir;
  const downloaded: Uint8Array = await sandbox.files.download('/workspace/a.bin');
  const saved: void = await sandbox.files.download('/workspace/a.bin', './a.bin');
  for await (const e of sandbox.files.watch('/workspace', { recursive: true })) {
    if (e.type === 'change') void (e.event satisfies 'created' | 'modified' | 'deleted' | 'renamed');
  }
  const term: Terminal = await sandbox.terminal.create({ cols: 100, rows: 30, env: { A: '1' } });
  await term.write('ls\n');
  const resized: TerminalInfo = await term.resize(120, 40);
  for await (const e of term) if (e.type === 'exit') void (e.code satisfies number | null);
  const code: number | null = await term.wait();
  const metrics: SandboxMetrics = await sandbox.getMetrics();
  const used: number = metrics.system.memory.usedMb;
  const procs: SystemProcess[] = await sandbox.listSystemProcesses();
  void [text, bytes, dir, downloaded, saved, resized, code, used, procs, term instanceof TerminalHandle];
  try {
    await sandbox.files.read('/etc/passwd');
  } catch (e) {
    if (e instanceof FileNotFoundError || e instanceof PermissionError) void e.code;
  }
  // @ts-expect-error there is no 'json' format
  void sandbox.files.read('/x', { format: 'json' });
  // @ts-expect-error write takes data, not a number
  void sandbox.files.write('/x', 42);
  // @ts-expect-error resize takes two numbers
  void term.resize('120x40');
}

void [bad, statuses, sandboxStatuses, name, code, maybeCode, results, verified, streams, languages, directStreams, handles, units, filesAndTerminals];
