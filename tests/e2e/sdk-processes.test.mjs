// End-to-end tests of the installed `sandlot` package (ESM): process handles, list filters, time units, async execution and webhooks, output callbacks, waitForProcess.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { inspect, promisify } from 'node:util';

import {
  AbortError,
  ProcessHandle,
  Sandbox,
  TimeoutError,
  ValidationError,
  verifyWebhookSignature,
} from 'sandlot';
import { callbackHost, eventually, startFaultProxy } from './harness.mjs';
import { fresh, rejects, server, throughProxy, useServer } from './sdk-common.mjs';

useServer();

describe('process handles', () => {
  let sandbox;
  before(async () => {
    sandbox = await fresh();
  });

  test('runCodeBackground resolves to a handle: the same data as before, and methods from a shared prototype', async () => {
    const bg = await sandbox.runCodeBackground('import time\ntime.sleep(5)', { name: 'handle-1', timeout: 30 });
    assert.ok(bg instanceof ProcessHandle);
    assert.deepEqual(Object.keys(bg).sort(), ['executionId', 'name', 'processId', 'startedAt', 'status', 'timeout']);
    const data = JSON.parse(JSON.stringify(bg));
    assert.deepEqual(data, { ...bg }, 'JSON.stringify gives exactly the data');
    assert.equal(data.name, 'handle-1');
    assert.equal(data.timeout, 30);
    for (const method of ['wait', 'kill', 'stream', 'refresh']) {
      assert.equal(typeof bg[method], 'function', method);
      assert.ok(!Object.hasOwn(bg, method), `${method} is not an own property`);
    }
    assert.match(inspect(bg), /processId: 'proc_\S+'[\s\S]*name: 'handle-1'/, 'console.log shows the data');
    const other = await sandbox.runCodeBackground('print(1)');
    assert.equal(Object.getPrototypeOf(bg), Object.getPrototypeOf(other), 'one prototype per sandbox');
    await bg.kill();
  });

  test('wait() resolves for each final status with the final record, in the handle itself', async () => {
    const ok = await sandbox.runCodeBackground('print("fine")');
    const done = await ok.wait();
    assert.equal(done, ok, 'wait resolves with the handle');
    assert.equal(ok.status, 'completed');
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.stdout, 'fine\n');
    const bad = await sandbox.runCodeBackground('exit 3', { language: 'bash' });
    assert.equal((await bad.wait({ interval: 0.05 })).status, 'failed');
    assert.equal(bad.exitCode, 3);
  });

  test('wait({ timeout }) in seconds gives up with TimeoutError; the process runs on', async () => {
    const bg = await sandbox.runCodeBackground('sleep 30', { language: 'bash' });
    const started = Date.now();
    await rejects(bg.wait({ timeout: 0.3, interval: 0.05 }), TimeoutError);
    assert.ok(Date.now() - started < 3000);
    assert.equal((await bg.refresh()).status, 'running');
    const controller = new AbortController();
    setTimeout(() => controller.abort('enough'), 100);
    await rejects(bg.wait({ signal: controller.signal }), AbortError, (e) => assert.equal(e.cause, 'enough'));
    await bg.kill();
  });

  test('kill() kills the process and the handle follows; wait() then resolves killed', async () => {
    const bg = await sandbox.runCodeBackground('sleep 60', { language: 'bash' });
    const reply = await bg.kill();
    assert.equal(reply.success, true);
    assert.equal(reply.processId, bg.processId);
    assert.equal(bg.status, 'killed');
    assert.equal((await bg.wait()).status, 'killed');
    assert.equal((await sandbox.getProcess(bg.processId)).status, 'killed');
  });

  test('stream() is iterable directly and awaitable, with since and lines', async () => {
    const bg = await sandbox.runCodeBackground('import sys\nsys.stdout.write("a")\nsys.stdout.flush()\nprint("b")\nprint("c")');
    const lines = [];
    for await (const event of bg.stream({ lines: true })) if (event.type === 'stdout') lines.push(event.data);
    assert.deepEqual(lines, ['ab\n', 'c\n']);
    const stream = await bg.stream({ since: 1 });
    const rest = [];
    for await (const event of stream) rest.push(event);
    assert.ok(rest.every((e) => e.seq > 1));
    assert.equal(rest.at(-1).type, 'exit');
  });

  test('refresh() re-reads the record into the handle', async () => {
    const bg = await sandbox.runCodeBackground('import time\nprint("early", flush=True)\ntime.sleep(30)');
    assert.ok(!('stdout' in bg), 'the start record has no output yet');
    await eventually(async () => (await bg.refresh()).stdout === 'early\n');
    assert.equal(bg.status, 'running');
    assert.equal(typeof bg.pid, 'number');
    await bg.kill();
  });

  test('getProcess, listProcesses and waitForProcess give handles too', async () => {
    const bg = await sandbox.runCodeBackground('sleep 60', { language: 'bash', name: 'listed' });
    const got = await sandbox.getProcess(bg.processId);
    assert.ok(got instanceof ProcessHandle);
    const listed = (await sandbox.listProcesses({ name: 'listed' }))[0];
    assert.ok(listed instanceof ProcessHandle);
    assert.equal(listed.processId, bg.processId);
    await listed.kill();
    const waited = await sandbox.waitForProcess(bg.processId);
    assert.ok(waited instanceof ProcessHandle);
    assert.equal(waited.status, 'killed');
    assert.equal((await got.refresh()).status, 'killed');
  });

  test('a handle acts on its own sandbox', async () => {
    const other = await fresh();
    const here = await sandbox.runCodeBackground('sleep 60', { language: 'bash' });
    const there = await other.runCodeBackground('sleep 60', { language: 'bash' });
    assert.notEqual(Object.getPrototypeOf(here), Object.getPrototypeOf(there));
    await there.kill();
    assert.equal((await other.getProcess(there.processId)).status, 'killed');
    assert.equal((await here.refresh()).status, 'running');
    await here.kill();
  });
});

describe('listProcesses filters', () => {
  let sandbox;
  let proxy;
  let viaProxy;
  before(async () => {
    sandbox = await fresh();
    proxy = await startFaultProxy(server.url);
    const s = sandbox.getSession();
    viaProxy = await Sandbox.connect({ ...s, agentUrl: s.agentUrl.replace(server.url, proxy.url) });
  });
  after(() => proxy?.close());

  test('status (one or several), name and output: false go to the server as its query filters', async () => {
    const running = await sandbox.runCodeBackground('import time\nprint("out", flush=True)\ntime.sleep(60)', { name: 'keep' });
    const done = await sandbox.runCodeBackground('print("x")', { name: 'keep' });
    await done.wait({ interval: 0.05 });
    await (await sandbox.runCodeBackground('print("y")', { name: 'other' })).wait({ interval: 0.05 });
    await eventually(async () => (await running.refresh()).stdout === 'out\n');

    proxy.reset();
    const live = await viaProxy.listProcesses({ status: ['running', 'queued'], name: 'keep', output: false });
    assert.deepEqual(live.map((p) => p.processId), [running.processId]);
    assert.equal(live[0].stdout, '', 'output: false leaves the output out');
    assert.equal(live[0].stdoutBytes, 4, 'byte counts stay');
    assert.ok(live[0] instanceof ProcessHandle);
    assert.equal(proxy.hits(/\/execute\/processes\?status=running(%2C|,)queued&name=keep&output=false$/), 1);

    const completed = await viaProxy.listProcesses({ status: 'completed' });
    assert.ok(completed.length >= 2 && completed.every((p) => p.status === 'completed'));
    assert.ok(completed.some((p) => p.stdout === 'x\n'), 'output is there by default');
    const named = await viaProxy.listProcesses({ name: 'keep' });
    assert.deepEqual(named.map((p) => p.processId).sort(), [running.processId, done.processId].sort());
    assert.equal((await viaProxy.listProcesses({ name: 'nobody' })).length, 0);
    assert.equal(proxy.hits(/\/execute\/processes\?status=completed$/), 1);
    await running.kill();
  });

  test('an unknown status is refused by the server with a ValidationError', async () => {
    await rejects(sandbox.listProcesses({ status: 'done' }), ValidationError, (e) => assert.equal(e.status, 400));
    await rejects(sandbox.listProcesses({ status: ['running', 'nope'] }), ValidationError);
  });
});

describe('time units: seconds, the millisecond spellings still accepted', () => {
  test('waitForProcess takes timeout and interval in seconds; deprecated timeoutMs and intervalMs still work', async () => {
    const sandbox = await fresh();
    const r = await sandbox.runCodeBackground('sleep 30', { language: 'bash' });
    for (const options of [{ timeout: 0.3, interval: 0.05 }, { timeoutMs: 300, intervalMs: 50 }, { timeout: 0.3, intervalMs: 50 }]) {
      const started = Date.now();
      await rejects(sandbox.waitForProcess(r.processId, options), TimeoutError);
      assert.ok(Date.now() - started < 3000, JSON.stringify(options));
    }
    // Both spellings: the seconds one wins.
    const started = Date.now();
    await rejects(sandbox.waitForProcess(r.processId, { timeout: 0.2, timeoutMs: 60_000, interval: 0.05 }), TimeoutError);
    assert.ok(Date.now() - started < 3000);
    await sandbox.killProcess(r.processId);
  });
});

describe('async execution and webhooks', () => {
  test('runCodeAsync posts a signed result that verifyWebhookSignature accepts', async () => {
    const sandbox = await fresh();
    const received = [];
    let arrived;
    const got = new Promise((resolve) => (arrived = resolve));
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.end('ok');
        arrived();
      });
    });
    await new Promise((r) => receiver.listen(0, callbackHost, r));
    try {
      const callbackUrl = `http://${callbackHost}:${receiver.address().port}/hook`;
      const started = await sandbox.runCodeAsync('print("async done")', {
        callbackUrl,
        callbackSignatureSecret: 'whsec_e2e',
        callbackHeaders: { 'X-Job': '7' },
        name: 'async-job',
      });
      assert.equal(started.callbackUrl, callbackUrl);
      assert.match(started.processId, /\S/);
      assert.match(started.executionId, /\S/);
      await got;
      const [{ headers, body }] = received;
      assert.equal(headers['x-job'], '7');
      const payload = JSON.parse(body);
      assert.equal(payload.status, 'completed');
      assert.equal(payload.stdout, 'async done\n');
      const check = { secret: 'whsec_e2e', body, timestamp: headers['x-hopx-timestamp'], signature: headers['x-hopx-signature'] };
      assert.equal(verifyWebhookSignature(check), true);
      assert.equal(verifyWebhookSignature({ ...check, body: body.replace('completed', 'failed') }), false);
      assert.equal(verifyWebhookSignature({ ...check, secret: 'wrong' }), false);
      assert.equal(verifyWebhookSignature({ ...check, timestamp: String(Number(check.timestamp) - 3600) }), false);
      assert.throws(() => verifyWebhookSignature({ secret: 1 }), ValidationError);
    } finally {
      receiver.close();
    }
  });

  test('runCodeAsync without a callbackUrl is refused before sending', async () => {
    const sandbox = await fresh();
    await rejects(sandbox.runCodeAsync('print(1)', {}), ValidationError);
  });
});

describe('runCodeBackground output callbacks', () => {
  let sandbox;
  before(async () => {
    sandbox = await fresh();
  });

  /** Starts code with callbacks that record every call; `exited` resolves in onExit. */
  async function recorded(code, options = {}) {
    const calls = [];
    let exitCount = 0;
    let onExit;
    const exited = new Promise((resolve) => (onExit = resolve));
    const started = Date.now();
    const run = await sandbox.runCodeBackground(code, {
      onStdout: (data) => calls.push(['stdout', data]),
      onStderr: (data) => calls.push(['stderr', data]),
      onExit: (event) => {
        exitCount += 1;
        calls.push(['exit', event]);
        onExit(event);
      },
      ...options,
    });
    return { run, calls, exited, resolvedAfterMs: Date.now() - started, exitCount: () => exitCount };
  }
  const joined = (calls, type) => calls.filter(([t]) => t === type).map(([, d]) => d).join('');

  test('resolves at once; onStdout and onStderr get exactly the output, in order, apart; onExit last', async () => {
    const code = [
      'import sys, time',
      'for i in range(3):',
      '    print(f"out {i}", flush=True)',
      '    time.sleep(0.1)',
      '    print(f"err {i}", file=sys.stderr, flush=True)',
      '    time.sleep(0.1)',
      'sys.stdout.write("no newline")',
      'sys.exit(5)',
    ].join('\n');
    const { run, calls, exited, resolvedAfterMs, exitCount } = await recorded(code, { name: 'with-callbacks' });
    assert.ok(resolvedAfterMs < 500, `resolved after ${resolvedAfterMs} ms, before the output`);
    assert.equal(run.name, 'with-callbacks');
    assert.ok(['queued', 'running'].includes(run.status));
    const exit = await exited;
    assert.equal(exit.type, 'exit');
    assert.equal(exit.status, 'failed');
    assert.equal(exit.exitCode, 5);
    assert.equal(joined(calls, 'stdout'), 'out 0\nout 1\nout 2\nno newline');
    assert.equal(joined(calls, 'stderr'), 'err 0\nerr 1\nerr 2\n');
    for (const [, data] of calls.slice(0, -1)) assert.equal(typeof data, 'string');
    // The order across the two streams is the order the process wrote them in.
    const order = calls.slice(0, -1).map(([t, d]) => `${t}:${d.trim()}`).filter((s) => !s.endsWith(':'));
    assert.deepEqual(order, ['stdout:out 0', 'stderr:err 0', 'stdout:out 1', 'stderr:err 1', 'stdout:out 2', 'stderr:err 2', 'stdout:no newline']);
    assert.equal(calls.at(-1)[0], 'exit', 'onExit comes after every output callback');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(exitCount(), 1, 'onExit is called once');
    // Exactly what the server recorded.
    const p = await sandbox.getProcess(run.processId);
    assert.equal(joined(calls, 'stdout'), p.stdout);
    assert.equal(joined(calls, 'stderr'), p.stderr);
  });

  test('10,000 lines arrive complete and in order through onStdout', async () => {
    const { calls, exited } = await recorded('for i in range(10000):\n    print(f"line {i}")');
    assert.equal((await exited).status, 'completed');
    const expected = Array.from({ length: 10_000 }, (_, i) => `line ${i}\n`).join('');
    assert.equal(joined(calls, 'stdout'), expected);
    assert.equal(joined(calls, 'stderr'), '');
  });

  test('lines: true calls the callbacks once per whole line', async () => {
    const code = [
      'import sys, time',
      'for part in ["a", "b\\nc", "\\nd"]:',
      '    sys.stdout.write(part)',
      '    sys.stdout.flush()',
      '    time.sleep(0.2)',
    ].join('\n');
    const { calls, exited } = await recorded(code, { lines: true });
    await exited;
    assert.deepEqual(calls.filter(([t]) => t === 'stdout').map(([, d]) => d), ['ab\n', 'c\n', 'd']);
  });

  test('only onStdout: stderr is ignored, nothing else is required', async () => {
    const seen = [];
    const { processId } = await sandbox.runCodeBackground('import sys\nprint("x")\nprint("y", file=sys.stderr)', {
      onStdout: (d) => seen.push(d),
    });
    await sandbox.waitForProcess(processId, { intervalMs: 50 });
    await eventually(() => seen.join('') === 'x\n', 5000, 20);
  });

  test('a callback that throws is reported once with console.error; delivery goes on', async () => {
    const original = console.error;
    const reported = [];
    console.error = (...args) => reported.push(args);
    try {
      const seen = [];
      let exited;
      const done = new Promise((r) => (exited = r));
      await sandbox.runCodeBackground('import time\nfor i in range(5):\n    print(i, flush=True)\n    time.sleep(0.05)', {
        lines: true,
        onStdout: (d) => {
          seen.push(d);
          throw new Error(`callback failed on ${d.trim()}`);
        },
        onExit: exited,
      });
      const exit = await done;
      assert.equal(exit.status, 'completed');
      assert.deepEqual(seen, ['0\n', '1\n', '2\n', '3\n', '4\n']);
      assert.equal(reported.length, 1, 'reported once');
      assert.match(String(reported[0][0]), /output callback of process proc_\S+ threw/);
      assert.equal(reported[0][1].message, 'callback failed on 0');
    } finally {
      console.error = original;
    }
    // The SDK is unaffected.
    assert.equal((await sandbox.runCode('print(1)')).stdout, '1\n');
  });

  test('the abort signal stops the callbacks (and only them): the process runs on', async () => {
    const controller = new AbortController();
    const seen = [];
    let exitCalled = false;
    let first;
    const gotFirst = new Promise((r) => (first = r));
    const run = await sandbox.runCodeBackground('import time\nfor i in range(30):\n    print(i, flush=True)\n    time.sleep(0.1)', {
      lines: true,
      signal: controller.signal,
      onStdout: (d) => {
        seen.push(d);
        first();
      },
      onExit: () => (exitCalled = true),
    });
    await gotFirst;
    controller.abort('enough');
    const countAtAbort = seen.length;
    await new Promise((r) => setTimeout(r, 800));
    assert.ok(seen.length <= countAtAbort + 1, `callbacks went on after abort (${countAtAbort} -> ${seen.length})`);
    const p = await sandbox.getProcess(run.processId);
    assert.equal(p.status, 'running', 'aborting the callbacks does not kill the process');
    assert.ok(p.stdout.split('\n').length > seen.length + 3, 'the process kept printing');
    await sandbox.killProcess(run.processId);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(exitCalled, false);
  });

  test('an aborted callback stream lets Node exit (nothing left holding the event loop)', async () => {
    const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'callbacks-abort.mjs');
    fs.writeFileSync(
      script,
      `import { Sandbox } from 'sandlot';
const sandbox = await Sandbox.connect(JSON.parse(process.env.SESSION));
const controller = new AbortController();
const run = await sandbox.runCodeBackground('import time\\nfor i in range(600):\\n    print(i, flush=True)\\n    time.sleep(0.1)', {
  signal: controller.signal,
  onStdout: (d) => { process.stdout.write('got ' + d.trim() + '\\n'); controller.abort(); },
});
process.on('exit', () => console.log('exiting ' + run.processId));
`,
    );
    const started = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, [script], {
      env: { ...process.env, SESSION: JSON.stringify(sandbox.getSession()) },
      timeout: 30_000,
    });
    assert.match(stdout, /^got 0\n/);
    assert.match(stdout, /exiting (proc_\S+)/);
    assert.ok(Date.now() - started < 15_000, 'the script did not wait for the 60 s process');
    await sandbox.killProcess(stdout.match(/exiting (\S+)/)[1]);
  });

  test('a dropped connection is resumed: every line once, in order', async () => {
    const proxy = await startFaultProxy(server.url);
    try {
      const viaProxy = await throughProxy(sandbox, proxy);
      proxy.fail({ method: 'GET', path: /\/stream/, cutAfterBytes: 400, times: 2 });
      const lines = [];
      let exited;
      const done = new Promise((r) => (exited = r));
      await viaProxy.runCodeBackground('import time\nfor i in range(40):\n    print(f"line {i:02d}", flush=True)\n    time.sleep(0.02)', {
        lines: true,
        onStdout: (d) => lines.push(d),
        onExit: exited,
      });
      assert.equal((await done).status, 'completed');
      assert.deepEqual(lines, Array.from({ length: 40 }, (_, i) => `line ${String(i).padStart(2, '0')}\n`));
      assert.ok(proxy.hits(/\/stream/) >= 3, 'reconnected');
      // A cut that lands before the first whole event resumes from the start (no since=);
      // whether that happens depends on timing, so one resume by since= is what is certain.
      assert.ok(proxy.hits(/since=/) >= 1, 'resumed with since=');
    } finally {
      await proxy.close();
    }
  });

  test('a callback may call the SDK: killing the process from onStdout ends it with onExit killed', async () => {
    const seen = [];
    let exited;
    const done = new Promise((r) => (exited = r));
    const run = await sandbox.runCodeBackground('import time\nprint("ready", flush=True)\ntime.sleep(60)', {
      lines: true,
      onStdout: (d) => {
        seen.push(d);
        if (d.includes('ready')) sandbox.killProcess(run.processId);
      },
      onExit: exited,
    });
    const exit = await done;
    assert.equal(exit.status, 'killed');
    assert.equal(seen.join(''), 'ready\n');
    assert.equal((await sandbox.getProcess(run.processId)).status, 'killed');
  });

  test('a callback that is not a function is refused before anything starts', async () => {
    const before = (await sandbox.listProcesses()).length;
    await rejects(sandbox.runCodeBackground('print(1)', { onStdout: 'not a function' }), ValidationError, (e) => {
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.match(e.message, /onStdout/);
    });
    assert.equal((await sandbox.listProcesses()).length, before);
  });
});

describe('waitForProcess', () => {
  test('resolves with the final record for each final status: completed, failed, killed, timeout', async () => {
    const sandbox = await fresh();
    const [completed, failed, killed, timedOut] = await Promise.all([
      sandbox.runCodeBackground('import time\ntime.sleep(0.5)\nprint("ok")'),
      sandbox.runCodeBackground('import sys\nprint("bad", file=sys.stderr)\nsys.exit(7)'),
      sandbox.runCodeBackground('sleep 60', { language: 'bash' }),
      sandbox.runCodeBackground('sleep 60', { language: 'bash', timeout: 1 }),
    ]);
    const waits = [completed, failed, killed, timedOut].map((r) => sandbox.waitForProcess(r.processId, { intervalMs: 50 }));
    // Killed while waitForProcess is already waiting on it.
    await new Promise((r) => setTimeout(r, 300));
    await sandbox.killProcess(killed.processId);
    const [c, f, k, t] = await Promise.all(waits);
    assert.equal(c.status, 'completed');
    assert.equal(c.exitCode, 0);
    assert.equal(c.stdout, 'ok\n');
    assert.equal(f.status, 'failed');
    assert.equal(f.exitCode, 7);
    assert.equal(f.stderr, 'bad\n');
    assert.equal(k.status, 'killed');
    assert.equal(k.processId, killed.processId);
    assert.equal(t.status, 'timeout');
    for (const p of [c, f, k, t]) assert.ok(p.completedAt, `${p.status} has completedAt`);
  });

  test('resolves at once for a process that has already ended', async () => {
    const sandbox = await fresh();
    const r = await sandbox.runCodeBackground('print(1)');
    await eventually(async () => (await sandbox.getProcess(r.processId)).status === 'completed');
    const started = Date.now();
    const done = await sandbox.waitForProcess(r.processId, { intervalMs: 5000 });
    assert.equal(done.status, 'completed');
    assert.ok(Date.now() - started < 2000);
  });
});
