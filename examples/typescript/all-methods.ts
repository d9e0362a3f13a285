// Calls every method of the SDK with its types checked under `tsc --strict`: the types are
// part of the contract. Also runnable (compile with tsc, run with node) against a server.
import {
  AbortError,
  AuthenticationError,
  NetworkError,
  NotFoundError,
  ProcessNotFoundError,
  RateLimitError,
  Sandbox,
  SandboxNotFoundError,
  SandlotError,
  ServerError,
  TimeoutError,
  ValidationError,
  initialize,
  verifyWebhookSignature,
  type BackgroundExecution,
  type BackgroundProcess,
  type CodeContext,
  type FileEntry,
  type NetworkState,
  type PreviewUrl,
  type RichResult,
  type SandboxMetrics,
  type Language,
  type Process,
  type ExecutionResult,
  type ProcessInfo,
  type ProcessStatus,
  type SandboxInfo,
  type SandboxSession,
  type StreamEvent,
} from 'sandlot';

function describe(error: unknown): string {
  if (error instanceof RateLimitError) return `rate limited, retry after ${error.retryAfter ?? '?'}s`;
  if (error instanceof ProcessNotFoundError) return `no such process (${error.code})`;
  if (error instanceof SandboxNotFoundError) return `no such sandbox (${error.code})`;
  if (error instanceof NotFoundError) return `not found (${error.status})`;
  if (error instanceof AuthenticationError) return `bad credentials (${error.requestId ?? 'no request id'})`;
  if (error instanceof ValidationError) return `invalid: ${error.message}`;
  if (error instanceof TimeoutError) return 'timed out';
  if (error instanceof NetworkError) return 'server unreachable';
  if (error instanceof ServerError) return `server failed: ${error.status}`;
  if (error instanceof AbortError) return `aborted: ${String(error.cause)}`;
  if (error instanceof SandlotError) return `${error.name} ${error.code}`;
  return String(error);
}

function isFinal(status: ProcessStatus): boolean {
  return status !== 'queued' && status !== 'running';
}

async function main(): Promise<void> {
  await initialize();
  const controller = new AbortController();

  await using sandbox = await Sandbox.create({
    template: 'code-interpreter',
    timeoutSeconds: 600,
    internetAccess: false,
    envVars: { APP: 'typescript-example' },
    signal: controller.signal,
  });
  const id: string = sandbox.sandboxId;
  console.log(`sandbox ${id} at ${sandbox.agentUrl}`);

  const info: SandboxInfo = await sandbox.getInfo({ signal: controller.signal });
  console.log(`status ${info.status}, template ${info.templateName ?? info.templateId ?? '?'}`);

  const all: SandboxInfo[] = await Sandbox.list({ limit: 50 });
  console.log(`${all.length} sandbox(es) listed`);

  const run: ExecutionResult = await sandbox.runCode('import os; print(os.environ["APP"])', {
    language: 'python',
    timeout: 30,
    env: { EXTRA: '1' },
    workdir: '/workspace',
  });
  console.log(`runCode -> ${run.stdout.trim()} (exit ${run.exitCode}, ${run.executionTime}s, ok=${run.success})`);

  const language: Language = 'python';
  const bg: BackgroundProcess = await sandbox.runCodeBackground('import time; time.sleep(30)', {
    language,
    name: 'sleeper',
    env: { SEED: '42' },
    timeout: 120,
  });
  console.log(`started ${bg.name ?? 'unnamed'} ${bg.processId} / ${bg.executionId}: ${bg.status}, ${bg.timeout}s`);

  // Output callbacks: each chunk (here: each whole line) as it is written, then the exit event.
  const lines: string[] = [];
  let exitCode: number | undefined;
  let markEnded!: (status: ProcessStatus) => void;
  const watchedEnded = new Promise<ProcessStatus>((resolve) => (markEnded = resolve));
  const watched: BackgroundExecution = await sandbox.runCodeBackground(
    'import sys\nprint("watched")\nprint("warned", file=sys.stderr)',
    {
      name: 'watched',
      lines: true,
      signal: controller.signal, // aborting also stops the callbacks
      onStdout: (data: string) => lines.push(data),
      onStderr: (data) => lines.push(`stderr: ${data}`),
      onExit: (event) => {
        exitCode = event.exitCode;
        markEnded(event.status);
      },
    },
  );
  const watchedStatus: ProcessStatus = await watchedEnded;
  console.log(`callbacks of ${watched.processId}: ${lines.length} line(s), ${watchedStatus} (exit ${exitCode ?? '-'})`);

  const processes: Process[] = await sandbox.listProcesses();
  for (const p of processes) {
    console.log(`${p.processId} ${p.name ?? ''} ${p.language} ${p.status} exit=${p.exitCode ?? '-'} pid=${p.pid ?? '-'}`);
  }
  const running: Process[] = await sandbox.listProcesses({ status: ['queued', 'running'], name: 'sleeper', output: false });
  console.log(`running sleepers: ${running.length}`);
  const one: ProcessInfo = await sandbox.getProcess(bg.processId);
  console.log(`getProcess: ${one.status}, started ${one.startedAt ?? '?'}`);

  // The handle: refresh() re-reads the record, kill() and wait() act on the process.
  const fresh = await bg.refresh();
  console.log(`refreshed: ${fresh.status}, ${fresh.stdoutBytes} bytes of stdout`);
  const killed = await bg.kill();
  const ended: Process = await bg.wait({ interval: 0.1, timeout: 10 });
  const byId: ProcessInfo = await sandbox.waitForProcess(bg.processId, { interval: 0.1, timeout: 10 });
  console.log(`killProcess: ${killed.status}; final ${ended.status}, final=${isFinal(byId.status)}`);
  const removed = await sandbox.removeProcess(bg.processId);
  console.log(`removeProcess: ${removed.success}`);
  try {
    await sandbox.getProcess(bg.processId);
  } catch (error) {
    console.log(`getProcess after remove: ${describe(error)}`);
  }

  let streamedId = '';
  for await (const event of sandbox.runCodeStream('print("streamed")', { language: 'python', name: 'streamer' })) {
    const e: StreamEvent = event;
    if (e.type === 'start') streamedId = e.processId;
    if (e.type === 'stdout') console.log(`stream stdout: ${e.data.trim()} (#${e.seq})`);
    if (e.type === 'exit') console.log(`stream exit: ${e.status} ${e.exitCode ?? '-'}`);
  }
  const replay = await sandbox.streamProcess(streamedId, { since: 0 });
  for await (const e of replay) {
    if (e.type === 'exit') console.log(`replayed to exit: ${e.status}`);
  }
  await replay.close();

  // Async runs POST their result to a callback; this one points nowhere, so only the
  // acceptance is shown (tests/e2e has a real receiver).
  const accepted = await sandbox.runCodeAsync('print("later")', {
    callbackUrl: 'http://127.0.0.1:9/hook',
    callbackSignatureSecret: 'whsec_example',
    timeout: 30,
  });
  console.log(`runCodeAsync: ${accepted.processId} ${accepted.status}`);
  const genuine: boolean = verifyWebhookSignature({
    secret: 'whsec_example',
    body: '{}',
    timestamp: String(Math.floor(Date.now() / 1000)),
    signature: 'sha256=00',
  });
  console.log(`forged webhook accepted: ${genuine}`);

  // Commands, files, terminals, metrics.
  const cmd: ExecutionResult = await sandbox.commands.run('ls', { args: ['-a', '/workspace'], cwd: '/tmp' });
  console.log(`commands.run: exit ${cmd.exitCode}`);
  await sandbox.files.write('/workspace/notes/a.txt', 'typed\n');
  const entries: FileEntry[] = await sandbox.files.list('/workspace/notes');
  const text: string = await sandbox.files.read('/workspace/notes/a.txt');
  const bytes: Uint8Array = await sandbox.files.read('/workspace/notes/a.txt', { format: 'bytes' });
  console.log(`files: ${entries.map((e) => e.name).join()} ${text.trim()} ${bytes.length}`);
  const term = await sandbox.terminal.create({ cols: 80, rows: 24 });
  await term.write('exit 0\n');
  console.log(`terminal ${term.id} exited ${await term.wait()}`);
  const metrics: SandboxMetrics = await sandbox.getMetrics();
  console.log(`metrics: ${metrics.totalRequests > 0}`);

  // Contexts and rich results.
  const ctx: CodeContext = await sandbox.createCodeContext({ language: 'python' });
  await sandbox.runCode('answer = 6 * 7', { context: ctx });
  const rich = await sandbox.runCode('answer', { context: ctx.id });
  const main: RichResult | undefined = rich.results?.find((r) => r.isMainResult);
  console.log(`context ${ctx.language}: ${main?.text} (${(await sandbox.listCodeContexts()).length} contexts)`);
  await sandbox.restartCodeContext(ctx);
  await sandbox.removeCodeContext(ctx.id);
  const once = await sandbox.runCode('print(1)', { fresh: true });
  console.log(`fresh: ${once.stdout.trim()} ${once.executionError?.name ?? 'no error'}`);

  // Network and ports.
  const net: NetworkState = await sandbox.getNetwork();
  console.log(`internet: ${net.internetAccess}, rules: ${net.network.allowOut.length}`);
  const preview: PreviewUrl = await sandbox.getPreviewUrl(8000, { ttl: 60 });
  console.log(`preview until ${preview.expiresAt}, host ${sandbox.getHost(8000) === preview.host}`);

  const timeout = await sandbox.setTimeout(900);
  console.log(`timeout now ${timeout.timeoutSeconds}s, until ${timeout.expiresAt}`);

  const token = await sandbox.refreshToken();
  console.log(`token refreshed, expires ${token.expiresAt}`);

  // Hand the session to a client that has no API key (e.g. a browser).
  const session: SandboxSession = sandbox.getSession();
  const client = await Sandbox.connect({
    sandboxId: session.sandboxId,
    token: session.token,
    agentUrl: session.agentUrl,
  });
  const fromClient = await client.runCode('echo from-a-token-only-client', { language: 'bash' });
  console.log(fromClient.stdout.trim());

  const again = await Sandbox.connect(id, {});
  console.log(`connect by id: ${again.sandboxId === id}`);

  await sandbox.pause();
  await sandbox.resume();

  try {
    await Sandbox.connect('sbx-does-not-exist');
  } catch (error) {
    console.log(`connect to a missing sandbox: ${describe(error)}`);
  }
  // `await using` kills the sandbox here; kill() is the explicit way.
  await again.kill();
}

main().catch((error: unknown) => {
  console.error(describe(error));
  process.exitCode = 1;
});
