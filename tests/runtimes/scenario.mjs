// The smoke scenario every runtime runs (tests/e2e/runtimes.test.mjs drives them): the same
// calls, the same checks, in Node (ESM and CommonJS), Deno, Bun, headless Chromium and
// workerd. Plain ECMAScript only (no `node:` import, no runtime global but `performance`), so
// one file serves them all; the runtime's script hands it the package's exports.
//
// `smoke(sdk, { baseURL, apiKey, entry })` resolves with a report
// `{ entry, ok, ms, steps: [{ step, ms }], error? }`: it never rejects, so a runtime script
// only prints the report (as one `SMOKE {json}` line, see `line`) and exits with `ok`.

class Failed extends Error {}

function check(condition, message, actual) {
  if (!condition) throw new Failed(actual === undefined ? message : `${message} (got ${JSON.stringify(actual)})`);
}

function equal(actual, expected, what) {
  check(actual === expected, `${what}: expected ${JSON.stringify(expected)}`, actual);
}

/** Awaits `promise`, expecting it to reject with an instance of `cls`. */
async function rejectsWith(promise, cls, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof cls, `${what}: expected ${cls.name}, got ${e && e.name}: ${e && e.message}`);
    check(e instanceof Error, `${what}: the rejection is an Error`);
    return e;
  }
  throw new Failed(`${what}: expected ${cls.name}, but the call succeeded`);
}

export async function smoke(sdk, { baseURL, apiKey, entry }) {
  const { Sandbox, ProcessHandle, SandboxNotFoundError } = sdk;
  const steps = [];
  const started = performance.now();
  let current = 'start';
  let sandbox;
  const step = async (name, fn) => {
    current = name;
    const t = performance.now();
    const result = await fn();
    steps.push({ step: name, ms: Math.round(performance.now() - t) });
    return result;
  };

  try {
    check(typeof Sandbox === 'function', 'the entry exports Sandbox');

    sandbox = await step('Sandbox.create', async () => {
      const s = await Sandbox.create({ baseURL, apiKey });
      check(typeof s.sandboxId === 'string' && s.sandboxId.length > 0, 'sandboxId is a non-empty string', s.sandboxId);
      return s;
    });

    await step('runCode', async () => {
      const ok = await sandbox.runCode('print(6 * 7)');
      equal(ok.stdout, '42\n', 'runCode stdout');
      equal(ok.exitCode, 0, 'runCode exitCode');
      equal(ok.success, true, 'runCode success');
      const bad = await sandbox.runCode('echo oops >&2; exit 3', { language: 'bash' });
      equal(bad.exitCode, 3, 'failing runCode exitCode');
      equal(bad.success, false, 'failing runCode success');
      equal(bad.stderr, 'oops\n', 'failing runCode stderr');
    });

    const bg = await step('runCodeBackground + handle.wait()', async () => {
      const handle = await sandbox.runCodeBackground('import time\ntime.sleep(0.3)\nprint("from the background")', { name: 'smoke-bg' });
      check(handle instanceof ProcessHandle, 'runCodeBackground resolves to a ProcessHandle');
      check(/^proc_/.test(handle.processId), 'processId looks like proc_…', handle.processId);
      check(['queued', 'running'].includes(handle.status), 'a new process is queued or running', handle.status);
      const done = await handle.wait({ interval: 0.1, timeout: 30 });
      check(done === handle, 'wait() resolves with the handle itself');
      equal(done.status, 'completed', 'waited status');
      equal(done.exitCode, 0, 'waited exitCode');
      equal(done.stdout, 'from the background\n', 'waited stdout');
      return handle;
    });

    await step('for await over runCodeStream', async () => {
      const code = 'import sys\nprint("one")\nprint("two", file=sys.stderr)\nprint("three")\nsys.exit(4)';
      const events = [];
      for await (const event of sandbox.runCodeStream(code, { lines: true, name: 'smoke-stream' })) events.push(event);
      const types = events.map((e) => e.type);
      equal(types[0], 'start', 'first stream event');
      equal(types[types.length - 1], 'exit', 'last stream event');
      check(/^proc_/.test(events[0].processId), 'start event has a processId', events[0]);
      const text = (type) => events.filter((e) => e.type === type).map((e) => e.data).join('');
      equal(text('stdout'), 'one\nthree\n', 'streamed stdout');
      equal(text('stderr'), 'two\n', 'streamed stderr');
      const exit = events[events.length - 1];
      equal(exit.status, 'failed', 'exit event status');
      equal(exit.exitCode, 4, 'exit event exitCode');
    });

    await step('listProcesses (+ filters) and handle.kill()', async () => {
      const sleeper = await sandbox.runCodeBackground('import time\nprint("sleeping", flush=True)\ntime.sleep(120)', { name: 'smoke-sleeper' });
      const all = await sandbox.listProcesses();
      const names = all.map((p) => p.name).sort();
      equal(JSON.stringify(names), JSON.stringify(['smoke-bg', 'smoke-sleeper', 'smoke-stream']), 'listed names');
      check(all.every((p) => p instanceof ProcessHandle), 'listed records are handles');
      const listed = all.find((p) => p.processId === bg.processId);
      equal(listed.status, 'completed', 'listed status of the finished process');
      equal(listed.stdout, 'from the background\n', 'listed stdout');
      const byName = await sandbox.listProcesses({ name: 'smoke-stream' });
      equal(byName.length, 1, 'processes named smoke-stream');
      equal(byName[0].exitCode, 4, 'exitCode of the named process');
      const live = await sandbox.listProcesses({ status: ['queued', 'running'] });
      equal(JSON.stringify(live.map((p) => p.processId)), JSON.stringify([sleeper.processId]), 'queued or running processes');
      const reply = await sleeper.kill();
      equal(reply.success, true, 'kill reply success');
      equal(sleeper.status, 'killed', 'the handle follows the kill');
      equal((await sleeper.wait({ interval: 0.1, timeout: 30 })).status, 'killed', 'waited status after kill');
    });

    await step('files write/read/list + commands.run', async () => {
      const text = 'h\u00e9llo from the scenario\n';
      await sandbox.files.write('/workspace/smoke/a.txt', text);
      equal(await sandbox.files.read('/workspace/smoke/a.txt'), text, 'files.read text');
      // A Blob goes as a multipart upload; a ReadableStream is streamed where fetch can
      // (Node, Deno, Bun) and gathered first elsewhere (Chromium over HTTP/1.1, workerd).
      const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
      await sandbox.files.write('/workspace/smoke/blob.bin', new Blob([bytes]));
      await sandbox.files.write('/workspace/smoke/stream.bin', new Blob([bytes, bytes]).stream());
      const blob = await sandbox.files.read('/workspace/smoke/blob.bin', { format: 'bytes' });
      check(blob instanceof Uint8Array, 'files.read bytes is a Uint8Array');
      equal(Array.from(blob).join(','), '0,1,2,253,254,255', 'bytes of the Blob write');
      const streamed = await sandbox.files.read('/workspace/smoke/stream.bin', { format: 'bytes' });
      equal(streamed.length, 12, 'bytes of the stream write');
      const names = (await sandbox.files.list('/workspace/smoke')).map((e) => `${e.name}:${e.size}`).join(' ');
      equal(names, 'a.txt:25 blob.bin:6 stream.bin:12', 'files.list');
      const r = await sandbox.commands.run('cat /workspace/smoke/a.txt; exit 2');
      equal(r.stdout, text, 'commands.run stdout');
      equal(r.exitCode, 2, 'commands.run exitCode');
      check(await sandbox.files.exists('/workspace/smoke/a.txt'), 'files.exists');
    });

    await step('sandbox.kill', async () => {
      await sandbox.kill();
      await rejectsWith(sandbox.listProcesses(), SandboxNotFoundError, 'a call on the killed sandbox');
      sandbox = undefined;
    });

    return { entry, ok: true, ms: Math.round(performance.now() - started), steps };
  } catch (e) {
    if (sandbox) await sandbox.kill().catch(() => {});
    const error = e instanceof Failed ? e.message : `${e && e.name}: ${e && e.message}${e && e.stack ? `\n${e.stack}` : ''}`;
    return { entry, ok: false, ms: Math.round(performance.now() - started), steps, failedStep: current, error };
  }
}

/** The line a runtime script prints for a report (the driver reads these). */
export function line(report) {
  return `SMOKE ${JSON.stringify(report)}`;
}
