// End-to-end tests of the installed `sandlot` package (ESM) against a real sandlotd: configuration, lifecycle, running code, errors and abort (retries and token refresh: sdk-resilience.test.mjs).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import http from 'node:http';
import path from 'node:path';

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
  TimeoutError,
  ValidationError,
} from 'sandlot';
import { eventually, freePort, startServer } from './harness.mjs';
import { cleanup, fresh, opts, rejects, server, useServer, withoutKeyInEnv } from './sdk-common.mjs';

useServer();

describe('configuration', () => {
  test('create reads SANDLOT_URL and SANDLOT_API_KEY when no options are given', async () => {
    process.env.SANDLOT_URL = server.url;
    process.env.SANDLOT_API_KEY = server.apiKey;
    try {
      const sandbox = await Sandbox.create({ template: 'code-interpreter' });
      cleanup.push(sandbox);
      assert.match(sandbox.sandboxId, /\S/);
      assert.ok(sandbox.agentUrl.startsWith(server.url));
    } finally {
      delete process.env.SANDLOT_URL;
      delete process.env.SANDLOT_API_KEY;
    }
  });

  test('HOPX_API_KEY is the fallback key', async () => {
    process.env.SANDLOT_URL = server.url;
    process.env.HOPX_API_KEY = server.apiKey;
    try {
      const list = await Sandbox.list();
      assert.ok(Array.isArray(list));
    } finally {
      delete process.env.SANDLOT_URL;
      delete process.env.HOPX_API_KEY;
    }
  });

  test('options win over the environment', async () => {
    process.env.SANDLOT_URL = `http://127.0.0.1:${await freePort()}`;
    process.env.SANDLOT_API_KEY = 'wrong-key';
    try {
      const list = await Sandbox.list(opts);
      assert.ok(Array.isArray(list));
      await rejects(Sandbox.list({ baseURL: server.url }), AuthenticationError);
    } finally {
      delete process.env.SANDLOT_URL;
      delete process.env.SANDLOT_API_KEY;
    }
  });

  test('the default URL is the local sandlotd on port 7070', async () => {
    // Either a NetworkError (nothing there) or an answer from a real local server.
    try {
      await Sandbox.list({ apiKey: 'x' });
    } catch (e) {
      assert.ok(e instanceof SandlotError, `${e.name}: ${e.message}`);
      if (e instanceof NetworkError) assert.match(e.message, /127\.0\.0\.1:7070/);
    }
  });
});

describe('sandbox lifecycle', () => {
  test('getInfo returns camelCase fields and a running status', async () => {
    const sandbox = await fresh({ template: 'code-interpreter', timeoutSeconds: 600 });
    const info = await sandbox.getInfo();
    assert.equal(info.sandboxId, sandbox.sandboxId);
    assert.equal(info.status, 'running');
    assert.equal(info.templateName, 'code-interpreter');
    assert.equal(info.timeoutSeconds, 600);
    assert.equal(typeof info.internetAccess, 'boolean');
    for (const key of Object.keys(info)) assert.doesNotMatch(key, /_/, `snake_case key ${key}`);
    for (const [key, value] of Object.entries(info)) assert.notEqual(value, undefined, `${key} is an undefined key`);
  });

  test('list shows the sandbox, honours limit and status', async () => {
    const sandbox = await fresh();
    const all = await Sandbox.list(opts);
    assert.ok(all.some((s) => s.sandboxId === sandbox.sandboxId));
    const one = await Sandbox.list({ ...opts, limit: 1 });
    assert.equal(one.length, 1);
    const paused = await Sandbox.list({ ...opts, status: 'paused' });
    assert.ok(paused.every((s) => s.status === 'paused'));
  });

  test('setTimeout returns the new timeout; bad values are refused before sending', async () => {
    const sandbox = await fresh();
    const t = await sandbox.setTimeout(120);
    assert.equal(t.timeoutSeconds, 120);
    assert.ok(Date.parse(t.expiresAt) > Date.now());
    for (const bad of [0, -5, 1.5, Number.NaN]) {
      await rejects(sandbox.setTimeout(bad), ValidationError, (e) => assert.equal(e.code, 'INVALID_ARGUMENT'));
    }
  });

  test('pause stops code from running until resume', async () => {
    const sandbox = await fresh();
    await sandbox.pause();
    assert.equal((await sandbox.getInfo()).status, 'paused');
    await rejects(sandbox.runCode('print(1)'), SandlotError, (e) => {
      assert.equal(e.status, 409);
      assert.equal(e.code, 'SANDBOX_PAUSED');
    });
    await sandbox.resume();
    assert.equal((await sandbox.runCode('print(1)')).stdout, '1\n');
  });

  test('connect by id resumes a paused sandbox and gets a token', async () => {
    const sandbox = await fresh();
    await sandbox.pause();
    const again = await Sandbox.connect(sandbox.sandboxId, opts);
    assert.equal(again.sandboxId, sandbox.sandboxId);
    assert.equal((await again.getInfo()).status, 'running');
    assert.equal((await again.runCode('print(2)')).stdout, '2\n');
  });

  test('refreshToken returns a token and its expiry', async () => {
    const sandbox = await fresh();
    const t = await sandbox.refreshToken();
    assert.match(t.token, /\S{16,}/);
    assert.ok(Date.parse(t.expiresAt) > Date.now() + 3_600_000);
    assert.equal(sandbox.getSession().token, t.token);
  });

  test('kill ends the sandbox and its processes', async () => {
    const sandbox = await Sandbox.create(opts);
    const session = sandbox.getSession();
    await sandbox.runCodeBackground('import time\ntime.sleep(60)', { name: 'orphan?' });
    await sandbox.kill();
    await rejects(sandbox.getInfo(), SandboxNotFoundError, (e) => assert.equal(e.status, 404));
    const client = await Sandbox.connect(session);
    await rejects(client.listProcesses(), SandboxNotFoundError);
  });

  test('Symbol.asyncDispose kills the sandbox, and is fine when it is already gone', async () => {
    const sandbox = await Sandbox.create(opts);
    await sandbox[Symbol.asyncDispose]();
    await rejects(sandbox.getInfo(), SandboxNotFoundError);
    await sandbox[Symbol.asyncDispose]();
  });

  test('a token-only session drives the agent without an API key', async () => {
    const sandbox = await fresh();
    const session = sandbox.getSession();
    assert.deepEqual(Object.keys(session).sort(), ['agentUrl', 'sandboxId', 'token', 'tokenExpiresAt']);
    const client = await withoutKeyInEnv(() => Sandbox.connect({ sandboxId: session.sandboxId, token: session.token, agentUrl: session.agentUrl }));
    const r = await client.runCode('echo hi', { language: 'bash' });
    assert.equal(r.stdout, 'hi\n');
    // Control-plane calls need the key, which this client does not have.
    await withoutKeyInEnv(async () => {
      await rejects(client.getInfo(), AuthenticationError, (e) => assert.equal(e.code, 'NO_API_KEY'));
      await rejects(client.kill(), AuthenticationError);
    });
    // Disposing a session handle leaves the sandbox to its owner.
    await client[Symbol.asyncDispose]();
    assert.equal((await sandbox.getInfo()).status, 'running');
  });
});

describe('running code', () => {
  let sandbox;
  before(async () => {
    sandbox = await fresh({ envVars: { FROM_SANDBOX: 'yes' } });
  });

  test('runCode returns output, exit code, time and success', async () => {
    const r = await sandbox.runCode('import os\nprint(os.environ["FROM_SANDBOX"], os.environ["X"], os.getcwd())', {
      language: 'python',
      env: { X: '7' },
      workdir: '/tmp',
      timeout: 30,
    });
    assert.equal(r.stdout, 'yes 7 /tmp\n');
    assert.equal(r.exitCode, 0);
    assert.equal(r.success, true);
    assert.equal(typeof r.executionTime, 'number');
    assert.ok(!('stdoutTruncated' in r), 'false flags are absent');
  });

  test('failing code is a result, not an error', async () => {
    const r = await sandbox.runCode('import sys\nprint("oops", file=sys.stderr)\nsys.exit(3)');
    assert.equal(r.exitCode, 3);
    assert.equal(r.success, false);
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.status, 'failed');
  });

  test('languages and aliases', async () => {
    assert.equal((await sandbox.runCode('console.log(6*7)', { language: 'javascript' })).stdout, '42\n');
    assert.equal((await sandbox.runCode('echo $((6*7))', { language: 'sh' })).stdout, '42\n');
    assert.equal((await sandbox.runCode('print(6*7)', { language: 'py' })).stdout, '42\n');
  });

  test('a run that outlives its timeout reports status timeout', async () => {
    const r = await sandbox.runCode('import time\nprint("before", flush=True)\ntime.sleep(30)', { timeout: 1 });
    assert.equal(r.status, 'timeout');
    assert.equal(r.success, false);
    assert.equal(r.stdout, 'before\n');
  });

  test('runCodeBackground resolves at once with ids, status, name and timeout', async () => {
    const started = Date.now();
    const r = await sandbox.runCodeBackground('import time\ntime.sleep(3)\nprint("late")', { name: 'bg-1', timeout: 30 });
    assert.ok(Date.now() - started < 2500, 'did not wait for the code');
    assert.match(r.processId, /\S/);
    assert.match(r.executionId, /\S/);
    assert.ok(['queued', 'running'].includes(r.status));
    assert.equal(r.name, 'bg-1');
    assert.equal(r.timeout, 30);
    const unnamed = await sandbox.runCodeBackground('print(1)');
    assert.equal(unnamed.timeout, 300, 'default background timeout');
    assert.ok(!('name' in unnamed));
    await sandbox.killProcess(r.processId);
  });

  test('listProcesses entries: camelCase, absent optionals, unflushed print shows up', async () => {
    const { processId } = await sandbox.runCodeBackground('import time\nprint("first")\ntime.sleep(20)');
    const p = await eventually(async () => {
      const list = await sandbox.listProcesses();
      const found = list.find((x) => x.processId === processId);
      return found?.stdout === 'first\n' ? found : undefined;
    });
    assert.equal(p.status, 'running');
    assert.ok(!('name' in p), 'unnamed process has no name key');
    assert.ok(!('exitCode' in p), 'running process has no exitCode key');
    assert.equal(p.language, 'python');
    assert.equal(typeof p.pid, 'number');
    assert.equal(p.stdoutBytes, 6);
    for (const key of Object.keys(p)) assert.doesNotMatch(key, /_/);
    await sandbox.killProcess(processId);
  });

  test('getProcess and waitForProcess follow a process to completed or failed', async () => {
    const ok = await sandbox.runCodeBackground('print("fine")', { name: 'ok' });
    const done = await sandbox.waitForProcess(ok.processId, { intervalMs: 50 });
    assert.equal(done.status, 'completed');
    assert.equal(done.exitCode, 0);
    assert.equal(done.stdout, 'fine\n');
    assert.ok(done.completedAt && done.startedAt);
    assert.deepEqual(await sandbox.getProcess(ok.processId), done);

    const bad = await sandbox.runCodeBackground('exit 4', { language: 'bash' });
    const failed = await sandbox.waitForProcess(bad.processId, { intervalMs: 50 });
    assert.equal(failed.status, 'failed');
    assert.equal(failed.exitCode, 4);
  });

  test('a background timeout ends the process with status timeout', async () => {
    const r = await sandbox.runCodeBackground('sleep 30', { language: 'bash', timeout: 1 });
    const done = await sandbox.waitForProcess(r.processId, { intervalMs: 100 });
    assert.equal(done.status, 'timeout');
  });

  test('killProcess keeps the record; removeProcess forgets it', async () => {
    const r = await sandbox.runCodeBackground('sleep 60', { language: 'bash', name: 'victim' });
    await rejects(sandbox.removeProcess(r.processId), SandlotError, (e) => {
      assert.equal(e.status, 409);
      assert.equal(e.code, 'CONFLICT');
    });
    const killed = await sandbox.killProcess(r.processId);
    assert.equal(killed.success, true);
    assert.equal(killed.processId, r.processId);
    assert.equal((await sandbox.getProcess(r.processId)).status, 'killed');
    const removed = await sandbox.removeProcess(r.processId);
    assert.equal(removed.processId, r.processId);
    await rejects(sandbox.getProcess(r.processId), ProcessNotFoundError, (e) => {
      assert.equal(e.code, 'PROCESS_NOT_FOUND');
      assert.equal(e.status, 404);
    });
  });

  test('named processes run side by side', async () => {
    const names = ['a', 'b', 'c'];
    const started = await Promise.all(
      names.map((name) => sandbox.runCodeBackground(`import time\ntime.sleep(1)\nprint("${name}")`, { name })),
    );
    const done = await Promise.all(started.map((s) => sandbox.waitForProcess(s.processId, { intervalMs: 100 })));
    assert.deepEqual(done.map((d) => d.stdout), ['a\n', 'b\n', 'c\n']);
    const list = await sandbox.listProcesses();
    for (const name of names) assert.ok(list.some((p) => p.name === name));
  });

  test('concurrent calls on one sandbox', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => sandbox.runCode(`print(${i})`)));
    assert.deepEqual(results.map((r) => r.stdout), Array.from({ length: 8 }, (_, i) => `${i}\n`));
  });
});

describe('error classes', () => {
  test('AuthenticationError for a wrong API key, with status, code and request id', async () => {
    await rejects(Sandbox.create({ ...opts, apiKey: 'nope' }), AuthenticationError, (e) => {
      assert.equal(e.status, 401);
      assert.equal(e.code, 'INVALID_TOKEN');
      assert.equal(e.message, 'Invalid API key');
      assert.match(e.requestId, /\S/);
    });
  });

  test('NotFoundError (not a sandbox one) for an unknown template', async () => {
    const e = await rejects(Sandbox.create({ ...opts, template: 'no-such-template' }), NotFoundError);
    assert.ok(!(e instanceof SandboxNotFoundError));
    assert.equal(e.code, 'TEMPLATE_NOT_FOUND');
  });

  test('SandboxNotFoundError for an unknown sandbox id', async () => {
    await rejects(Sandbox.connect('sbx_missing', opts), SandboxNotFoundError, (e) => assert.ok(e instanceof NotFoundError));
  });

  test('ProcessNotFoundError for an unknown process, on every process route', async () => {
    const sandbox = await fresh();
    await rejects(sandbox.getProcess('proc_missing'), ProcessNotFoundError);
    await rejects(sandbox.killProcess('proc_missing'), ProcessNotFoundError);
    await rejects(sandbox.removeProcess('proc_missing'), ProcessNotFoundError);
    await rejects(sandbox.waitForProcess('proc_missing'), ProcessNotFoundError);
  });

  test('ValidationError from the server (400) and from argument checks', async () => {
    const sandbox = await fresh();
    await rejects(sandbox.runCode('x', { language: 'cobol' }), ValidationError, (e) => assert.equal(e.status, 400));
    // Wrong types reject the promise (never a synchronous throw).
    const p = sandbox.runCode(42);
    assert.ok(p instanceof Promise);
    await rejects(p, ValidationError, (e) => assert.equal(e.code, 'INVALID_ARGUMENT'));
    await rejects(sandbox.runCode('x', { timeout: 'soon' }), ValidationError);
    await rejects(sandbox.listProcesses({ signal: 'not a signal' }), ValidationError);
    await rejects(Sandbox.create({ ...opts, baseURL: 'localhost:1' }), ValidationError);
    await rejects(Sandbox.connect({ sandboxId: 'x' }), ValidationError);
  });

  test('TimeoutError when waitForProcess gives up', async () => {
    const sandbox = await fresh();
    const r = await sandbox.runCodeBackground('sleep 30', { language: 'bash' });
    await rejects(sandbox.waitForProcess(r.processId, { intervalMs: 50, timeoutMs: 300 }), TimeoutError);
    // The same limit in seconds, as the issue and the rest of the SDK spell it.
    await rejects(sandbox.waitForProcess(r.processId, { intervalMs: 50, timeout: 0.3 }), TimeoutError);
  });

  test('NetworkError when nothing listens', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await rejects(Sandbox.create({ baseURL: url, apiKey: 'k' }), NetworkError, (e) => {
      assert.equal(e.code, 'NETWORK_ERROR');
      assert.equal(e.status, undefined);
    });
  });

  describe('limits (a second server with small limits)', () => {
    let small;
    before(async () => {
      small = await startServer(['--max-sandboxes', '1', '--max-body-bytes', '4096']);
    });
    after(() => small?.stop());

    test('RateLimitError with retryAfter when the server is full; create is not retried', async () => {
      const o = { baseURL: small.url, apiKey: small.apiKey };
      const first = await Sandbox.create(o);
      try {
        const started = Date.now();
        await rejects(Sandbox.create(o), RateLimitError, (e) => {
          assert.equal(e.status, 429);
          assert.equal(e.retryAfter, 5);
          assert.equal(e.code, 'RESOURCE_LIMIT_ERROR');
        });
        assert.ok(Date.now() - started < 2000, 'create did not wait out Retry-After');
      } finally {
        await first.kill();
      }
    });

    test('ValidationError (413) for a body over the limit', async () => {
      const sandbox = await Sandbox.create({ baseURL: small.url, apiKey: small.apiKey });
      try {
        await rejects(sandbox.runCode(`print("${'x'.repeat(10_000)}")`), ValidationError, (e) => assert.equal(e.status, 413));
      } finally {
        await sandbox.kill();
      }
    });
  });
});

describe('abort', () => {
  let sandbox;
  before(async () => {
    sandbox = await fresh();
  });

  for (const [label, abort, cause] of [
    ['a string reason', (c) => c.abort('stop'), 'stop'],
    ['no reason', (c) => c.abort(), undefined],
    ['an Error reason', (c) => c.abort(new Error('enough')), 'enough'],
  ]) {
    test(`aborting a running call with ${label} rejects with AbortError`, async () => {
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => abort(controller), 200);
      const e = await rejects(sandbox.runCode('import time\ntime.sleep(10)', { signal: controller.signal }), AbortError);
      assert.ok(Date.now() - started < 5000);
      assert.equal(e.code, 'ABORTED');
      if (cause === 'stop') assert.equal(e.cause, 'stop');
      if (cause === 'enough') assert.equal(e.cause.message, 'enough');
      if (cause === undefined) assert.equal(e.cause?.name, 'AbortError');
    });
  }

  test('an already aborted signal rejects every kind of call before sending', async () => {
    const signal = AbortSignal.abort('early');
    await rejects(sandbox.listProcesses({ signal }), AbortError);
    await rejects(sandbox.getInfo({ signal }), AbortError);
    await rejects(Sandbox.create({ ...opts, signal }), AbortError);
    await rejects(Sandbox.list({ ...opts, signal }), AbortError);
    await rejects(sandbox.waitForProcess('p', { signal }), AbortError);
  });

  test('AbortSignal.timeout works as a per-call deadline and reports TimeoutError', async () => {
    await rejects(sandbox.runCode('import time\ntime.sleep(10)', { signal: AbortSignal.timeout(200) }), TimeoutError, (e) => {
      assert.equal(e.code, 'TIMEOUT');
      assert.equal(e.cause.name, 'TimeoutError');
    });
    // The SDK is still usable afterwards.
    assert.equal((await sandbox.runCode('print(3)')).stdout, '3\n');
  });
});
