// Type-level contract of the package, checked with `tsc --noEmit --strict` against the
// installed tarball. Each `@ts-expect-error` line must fail to compile; if the types ever
// loosen, tsc reports the directive as unused and the test fails.
import {
  Sandbox,
  SandlotError,
  RateLimitError,
  verifyWebhookSignature,
  type AsyncExecution,
  type ProcessInfo,
  type ProcessStatus,
  type SandboxStatus,
  type StreamEvent,
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

void [bad, statuses, sandboxStatuses, name, code, maybeCode, results, verified, streams];
