// End-to-end tests of the installed `sandlot` package (ESM): streaming output, and stream calls iterated directly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { AbortError, ProcessNotFoundError, ValidationError } from 'sandlot';
import { startFaultProxy } from './harness.mjs';
import { fresh, rejects, server, throughProxy, useServer } from './sdk-common.mjs';

useServer();

describe('streaming output', () => {
  let sandbox;
  before(async () => {
    sandbox = await fresh();
  });

  const collect = async (stream) => {
    const events = [];
    for await (const event of stream) events.push(event);
    return events;
  };

  test('runCodeStream yields start, stdout and stderr in order, then exit, then ends', async () => {
    const stream = await sandbox.runCodeStream(
      'import sys, time\nfor i in range(3):\n    print(f"line {i}")\n    time.sleep(0.2)\nprint("oops", file=sys.stderr)\nsys.exit(2)',
      { name: 'streamed' },
    );
    const events = await collect(stream);
    assert.equal(events[0].type, 'start');
    assert.equal(events[0].name, 'streamed');
    assert.equal(events.filter((e) => e.type === 'stdout').map((e) => e.data).join(''), 'line 0\nline 1\nline 2\n');
    assert.equal(events.filter((e) => e.type === 'stderr').map((e) => e.data).join(''), 'oops\n');
    const exit = events.at(-1);
    assert.equal(exit.type, 'exit');
    assert.equal(exit.status, 'failed');
    assert.equal(exit.exitCode, 2);
    const seqs = events.slice(1).map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'seq increases');
    for (const e of events) for (const key of Object.keys(e)) assert.doesNotMatch(key, /_/);
    const again = await stream[Symbol.asyncIterator]().next();
    assert.deepEqual(again, { value: undefined, done: true });
    // The streamed run is a recorded process.
    const p = await sandbox.getProcess(events[0].processId);
    assert.equal(p.status, 'failed');
  });

  test('lines: true re-frames chunks into whole lines, the rest flushed before exit', async () => {
    const code = [
      'import sys, time',
      'for part in ["a", "b\\nc", "\\nd"]:',
      '    sys.stdout.write(part)',
      '    sys.stdout.flush()',
      '    time.sleep(0.2)',
    ].join('\n');
    const events = await collect(await sandbox.runCodeStream(code, { lines: true }));
    assert.deepEqual(events.filter((e) => e.type === 'stdout').map((e) => e.data), ['ab\n', 'c\n', 'd']);
    assert.equal(events.at(-1).type, 'exit');
    const raw = await collect(await sandbox.streamProcess(events[0].processId));
    assert.equal(raw.filter((e) => e.type === 'stdout').map((e) => e.data).join(''), 'ab\nc\nd');
  });

  test('streamProcess replays from the start, or after `since`, and follows to the end', async () => {
    const bg = await sandbox.runCodeBackground('import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.2)');
    const all = await collect(await sandbox.streamProcess(bg.processId));
    assert.equal(all.filter((e) => e.type === 'stdout').map((e) => e.data).join(''), '0\n1\n2\n3\n4\n');
    assert.equal(all.at(-1).type, 'exit');
    const after = await collect(await sandbox.streamProcess(bg.processId, { since: 2 }));
    assert.ok(after.every((e) => e.seq > 2));
    assert.equal(after.at(-1).status, 'completed');
  });

  test('leaving the loop early closes the stream; the process runs on', async () => {
    const bg = await sandbox.runCodeBackground('import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.2)');
    const stream = await sandbox.streamProcess(bg.processId);
    for await (const event of stream) {
      assert.equal(event.type, 'stdout');
      break;
    }
    const done = await sandbox.waitForProcess(bg.processId, { intervalMs: 100 });
    assert.equal(done.status, 'completed');
  });

  test('close() ends a pending iteration', async () => {
    const bg = await sandbox.runCodeBackground('sleep 30', { language: 'bash' });
    const stream = await sandbox.streamProcess(bg.processId);
    const iterator = stream[Symbol.asyncIterator]();
    const pending = iterator.next();
    setTimeout(() => stream.close(), 200);
    assert.deepEqual(await pending, { value: undefined, done: true });
    await sandbox.killProcess(bg.processId);
  });

  test('aborting a stream rejects with AbortError', async () => {
    const bg = await sandbox.runCodeBackground('sleep 30', { language: 'bash' });
    const controller = new AbortController();
    const stream = await sandbox.streamProcess(bg.processId, { signal: controller.signal });
    setTimeout(() => controller.abort('enough'), 200);
    await rejects(collect(stream), AbortError, (e) => assert.equal(e.cause, 'enough'));
    await sandbox.killProcess(bg.processId);
  });

  test('abort still reaches a stream after garbage collection (undici weak signal link)', async () => {
    // Node's fetch links a Request's signal to the caller's through a weak reference
    // (nodejs/node#55428); the SDK must keep aborts working after a GC.
    const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'gc-abort.mjs');
    fs.writeFileSync(
      script,
      `import { Sandbox, AbortError } from 'sandlot';
const sandbox = await Sandbox.connect(JSON.parse(process.env.SESSION));
const bg = await sandbox.runCodeBackground('sleep 20', { language: 'bash' });
const controller = new AbortController();
const stream = await sandbox.streamProcess(bg.processId, { signal: controller.signal });
setTimeout(() => { global.gc(); controller.abort('after gc'); }, 300);
const started = Date.now();
try {
  for await (const event of stream) {}
  console.log('not aborted');
} catch (e) {
  console.log(e instanceof AbortError ? 'aborted ' + (Date.now() - started) : 'other ' + e.name);
}
await sandbox.killProcess(bg.processId);
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', script], {
      env: { ...process.env, SESSION: JSON.stringify(sandbox.getSession()) },
      timeout: 60_000,
    });
    const [word, ms] = stdout.trim().split(' ');
    assert.equal(word, 'aborted', stdout);
    assert.ok(Number(ms) < 5000, stdout);
  });

  test('an unknown process is a ProcessNotFoundError when the stream opens', async () => {
    await rejects(sandbox.streamProcess('proc_missing'), ProcessNotFoundError);
  });

  test('a dropped connection is resumed after the last event: nothing lost, nothing twice', async () => {
    const proxy = await startFaultProxy(server.url);
    try {
      const viaProxy = await throughProxy(sandbox, proxy);
      const bg = await sandbox.runCodeBackground('import time\nfor i in range(40):\n    print(f"line {i:02d}", flush=True)\n    time.sleep(0.02)');
      proxy.fail({ method: 'GET', path: /\/stream/, cutAfterBytes: 400, times: 2 });
      const events = await collect(await viaProxy.streamProcess(bg.processId, { lines: true }));
      const lines = events.filter((e) => e.type === 'stdout').map((e) => e.data);
      assert.deepEqual(lines, Array.from({ length: 40 }, (_, i) => `line ${String(i).padStart(2, '0')}\n`));

      assert.ok(proxy.hits(/\/stream/) >= 3, 'reconnected');
      // A cut that lands before the first whole event resumes from the start (no since=);
      // whether that happens depends on timing, so one resume by since= is what is certain.
      assert.ok(proxy.hits(/since=/) >= 1, 'resumed with since=');
    } finally {
      await proxy.close();
    }
  });

  test('a connection dropped before the stream answers is retried: the stream opens and follows to the end', async () => {
    const proxy = await startFaultProxy(server.url);
    try {
      const viaProxy = await throughProxy(sandbox, proxy);
      const bg = await sandbox.runCodeBackground('print("a")\nprint("b")');
      proxy.fail({ method: 'GET', path: /\/stream/, drop: true, times: 2 });
      const events = await collect(await viaProxy.streamProcess(bg.processId, { lines: true }));
      assert.deepEqual(events.filter((e) => e.type === 'stdout').map((e) => e.data), ['a\n', 'b\n']);
      assert.equal(events.at(-1).type, 'exit');
      assert.equal(proxy.hits(/\/stream/), 3, 'two dropped opens, then the one that answered');
    } finally {
      await proxy.close();
    }
  });
});

describe('stream calls you can iterate directly', () => {
  let sandbox;
  before(async () => {
    sandbox = await fresh();
  });

  test('for await over runCodeStream(...) itself yields start, the output and exit', async () => {
    const events = [];
    for await (const event of sandbox.runCodeStream('print("one")\nprint("two")', { lines: true, name: 'direct' })) events.push(event);
    assert.equal(events[0].type, 'start');
    assert.equal(events[0].name, 'direct');
    assert.deepEqual(events.filter((e) => e.type === 'stdout').map((e) => e.data), ['one\n', 'two\n']);
    assert.equal(events.at(-1).type, 'exit');
    assert.equal(events.at(-1).status, 'completed');
  });

  test('for await over streamProcess(...) itself follows a process to its end, after since', async () => {
    const bg = await sandbox.runCodeBackground('import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.1)');
    const all = [];
    for await (const event of sandbox.streamProcess(bg.processId, { lines: true })) all.push(event);
    assert.deepEqual(all.filter((e) => e.type === 'stdout').map((e) => e.data), ['0\n', '1\n', '2\n', '3\n']);
    const later = [];
    for await (const event of sandbox.streamProcess(bg.processId, { since: all[1].seq })) later.push(event);
    assert.ok(later.every((e) => e.seq > all[1].seq));
    assert.equal(later.at(-1).type, 'exit');
  });

  test('awaiting a stream call still gives the ProcessStream; it is a Promise (Promise.all, then)', async () => {
    const call = sandbox.runCodeStream('print(5)');
    assert.ok(call instanceof Promise);
    const [stream] = await Promise.all([call]);
    assert.equal(stream.constructor.name, 'ProcessStream');
    const types = [];
    for await (const event of stream) types.push(event.type);
    assert.deepEqual([types[0], types.at(-1)], ['start', 'exit']);
    const viaThen = await sandbox.streamProcess((await sandbox.runCodeBackground('print(6)')).processId).then((s) => s);
    await viaThen.close();
  });

  test('leaving a direct for await early closes the stream; the process runs on', async () => {
    const bg = await sandbox.runCodeBackground('import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.1)');
    for await (const event of sandbox.streamProcess(bg.processId)) {
      assert.equal(event.type, 'stdout');
      break;
    }
    assert.equal((await bg.wait({ interval: 0.05 })).status, 'completed');
  });

  test('a stream call that fails is never an unhandled rejection: iterated, awaited, or left alone', async () => {
    const unhandled = [];
    const record = (reason) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      // Iterated directly: the error comes out of the loop.
      await rejects(
        (async () => {
          for await (const event of sandbox.streamProcess('proc_missing')) void event;
        })(),
        ProcessNotFoundError,
      );
      await rejects(
        (async () => {
          for await (const event of sandbox.runCodeStream(42)) void event;
        })(),
        ValidationError,
      );
      // Awaited: as before.
      await rejects(sandbox.streamProcess('proc_missing'), ProcessNotFoundError);
      await rejects(sandbox.runCodeStream('print(1)', { language: 'cobol' }), ValidationError);
      // Neither awaited nor iterated (a caller that changed its mind): nothing is reported.
      sandbox.streamProcess('proc_missing');
      sandbox.runCodeStream(42);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(unhandled.map(String), []);
    } finally {
      process.off('unhandledRejection', record);
    }
  });

  test('a Node process that iterates a failing stream call directly reports the error and does not crash', async () => {
    const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'direct-stream-error.mjs');
    fs.writeFileSync(
      script,
      `import { Sandbox } from 'sandlot';
const sandbox = await Sandbox.connect(JSON.parse(process.env.SESSION));
try {
  for await (const event of sandbox.streamProcess('proc_missing')) console.log(event);
} catch (e) {
  console.log('caught ' + e.name);
}
sandbox.runCodeStream(42);
setTimeout(() => console.log('still alive'), 200);
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, [script], {
      env: { ...process.env, SESSION: JSON.stringify(sandbox.getSession()) },
      timeout: 30_000,
    });
    assert.equal(stdout, 'caught ProcessNotFoundError\nstill alive\n');
  });
});
