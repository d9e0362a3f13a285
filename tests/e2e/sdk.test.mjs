// End-to-end tests of the installed `sandlot` package (ESM) against a real sandlotd.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { inspect, promisify } from 'node:util';

import {
  AbortError,
  AuthenticationError,
  NetworkError,
  NotFoundError,
  ProcessHandle,
  ProcessNotFoundError,
  RateLimitError,
  Sandbox,
  SandboxNotFoundError,
  SandlotError,
  ServerError,
  TimeoutError,
  ValidationError,
  verifyWebhookSignature,
} from 'sandlot';
import { eventually, freePort, startFaultProxy, startServer } from './harness.mjs';

let server;
let opts; // { baseURL, apiKey }
const cleanup = [];

async function fresh(extra = {}) {
  const sandbox = await Sandbox.create({ ...opts, ...extra });
  cleanup.push(sandbox);
  return sandbox;
}

async function rejects(promise, cls, check = () => {}) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error, `expected a ${cls.name}, but the call succeeded`);
  assert.ok(error instanceof cls, `expected ${cls.name}, got ${error?.name}: ${error?.message}`);
  assert.ok(error instanceof SandlotError && error instanceof Error);
  assert.equal(error.name, cls.name);
  check(error);
  return error;
}

before(async () => {
  // With an API key, sandlotd calls no callback host until the operator allows one; the
  // webhook tests' receivers listen on 127.0.0.1.
  server = await startServer(['--webhook-allow-hosts', '127.0.0.1']);
  opts = { baseURL: server.url, apiKey: server.apiKey };
});

after(async () => {
  for (const s of cleanup) await s.kill().catch(() => {});
  await server?.stop();
});

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
    const client = await Sandbox.connect({ sandboxId: session.sandboxId, token: session.token, agentUrl: session.agentUrl });
    const r = await client.runCode('echo hi', { language: 'bash' });
    assert.equal(r.stdout, 'hi\n');
    // Control-plane calls need the key, which this client does not have.
    await rejects(client.getInfo(), AuthenticationError, (e) => assert.equal(e.code, 'NO_API_KEY'));
    await rejects(client.kill(), AuthenticationError);
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

describe('retries and failures (fault proxy in front of the real server)', () => {
  let proxy;
  let sandbox;
  let viaProxy;
  before(async () => {
    proxy = await startFaultProxy(server.url);
    sandbox = await fresh();
    const s = sandbox.getSession();
    viaProxy = await Sandbox.connect(
      { ...s, agentUrl: s.agentUrl.replace(server.url, proxy.url) },
      { baseURL: proxy.url, apiKey: server.apiKey },
    );
  });
  after(() => proxy?.close());

  test('GET is retried on 503 and succeeds', async () => {
    proxy.reset();
    proxy.fail({ method: 'GET', path: /\/execute\/processes$/, status: 503, headers: { 'retry-after': '0' }, times: 2 });
    const list = await viaProxy.listProcesses();
    assert.ok(Array.isArray(list));
    assert.equal(proxy.hits(/\/execute\/processes$/), 3);
  });

  test('429 on a read waits Retry-After, then succeeds', async () => {
    proxy.reset();
    proxy.fail({ method: 'GET', path: /\/v1\/sandboxes\/[^/]+$/, status: 429, headers: { 'retry-after': '1' } });
    const started = Date.now();
    const info = await viaProxy.getInfo();
    assert.equal(info.sandboxId, sandbox.sandboxId);
    assert.ok(Date.now() - started >= 900, 'waited for Retry-After');
    assert.equal(proxy.hits(/\/v1\/sandboxes\/[^/]+$/), 2);
  });

  test('a Retry-After too long to wait is reported as RateLimitError at once', async () => {
    proxy.reset();
    proxy.fail({ method: 'GET', path: /\/execute\/processes$/, status: 429, headers: { 'retry-after': '3600' } });
    await rejects(viaProxy.listProcesses(), RateLimitError, (e) => assert.equal(e.retryAfter, 3600));
    assert.equal(proxy.hits(/\/execute\/processes$/), 1);
  });

  test('retries give up after three attempts with the last error', async () => {
    proxy.reset();
    proxy.fail({ method: 'GET', path: /\/execute\/processes$/, status: 502, headers: { 'retry-after': '0' }, times: 5 });
    await rejects(viaProxy.listProcesses(), ServerError, (e) => assert.equal(e.status, 502));
    assert.equal(proxy.hits(/\/execute\/processes$/), 3);
  });

  test('kill (POST) is retried on 502', async () => {
    const r = await viaProxy.runCodeBackground('sleep 60', { language: 'bash' });
    proxy.reset();
    proxy.fail({ method: 'POST', path: /\/execute\/kill\//, status: 502, headers: { 'retry-after': '0' } });
    const killed = await viaProxy.killProcess(r.processId);
    assert.equal(killed.status, 'killed');
    assert.equal(proxy.hits(/\/execute\/kill\//), 2);
  });

  test('execute is never retried: ServerError with the server message, sent once', async () => {
    proxy.reset();
    proxy.fail({ method: 'POST', path: /\/execute$/, status: 500, body: { error: 'disk on fire', message: 'disk on fire', code: 'INTERNAL_ERROR' } });
    await rejects(viaProxy.runCode('print(1)'), ServerError, (e) => {
      assert.equal(e.status, 500);
      assert.equal(e.message, 'disk on fire');
      assert.equal(e.requestId, 'req_injected');
    });
    assert.equal(proxy.hits(/\/execute$/), 1);
    proxy.reset();
    proxy.fail({ method: 'POST', path: /\/execute\/background$/, status: 503 });
    await rejects(viaProxy.runCodeBackground('print(1)'), ServerError);
    assert.equal(proxy.hits(/\/execute\/background$/), 1);
  });

  test('a 504 from a gateway is a TimeoutError', async () => {
    proxy.reset();
    proxy.fail({ method: 'POST', path: /\/execute$/, status: 504 });
    await rejects(viaProxy.runCode('print(1)'), TimeoutError, (e) => assert.equal(e.status, 504));
  });

  test('a non-JSON error body still gives the status class', async () => {
    proxy.reset();
    proxy.fail({ method: 'POST', path: /\/pause$/, status: 500, body: '<html>bad gateway</html>' });
    await rejects(viaProxy.pause(), ServerError, (e) => assert.match(e.message, /500|bad gateway/));
  });
});

describe('token refresh', () => {
  let proxy;
  let sandbox;
  before(async () => {
    proxy = await startFaultProxy(server.url);
    sandbox = await fresh();
  });
  after(() => proxy?.close());

  const session = (extra = {}) => {
    const s = sandbox.getSession();
    return { ...s, agentUrl: s.agentUrl.replace(server.url, proxy.url), ...extra };
  };
  const keyed = () => ({ baseURL: proxy.url, apiKey: server.apiKey });

  test('a 401 from the agent refreshes the token once and retries', async () => {
    proxy.reset();
    const client = await Sandbox.connect(session({ token: 'expired-or-garbage' }), keyed());
    const r = await client.runCode('print("after refresh")');
    assert.equal(r.stdout, 'after refresh\n');
    assert.equal(proxy.hits(/\/token\/refresh$/), 1);
    assert.equal(proxy.hits(/\/execute$/), 2);
    assert.notEqual(client.getSession().token, 'expired-or-garbage');
  });

  test('a token with less than an hour left is refreshed before the call', async () => {
    proxy.reset();
    const soon = new Date(Date.now() + 10 * 60_000).toISOString();
    const client = await Sandbox.connect(session({ tokenExpiresAt: soon }), keyed());
    await client.listProcesses();
    assert.equal(proxy.hits(/\/token\/refresh$/), 1);
    assert.equal(proxy.hits(/\/execute\/processes$/), 1, 'no failed attempt first');
    assert.ok(Date.parse(client.getSession().tokenExpiresAt) > Date.now() + 3_600_000);
    await client.listProcesses();
    assert.equal(proxy.hits(/\/token\/refresh$/), 1, 'a fresh token is reused');
  });

  test('concurrent calls that find the token stale share one refresh', async () => {
    proxy.reset();
    const soon = new Date(Date.now() + 5 * 60_000).toISOString();
    const client = await Sandbox.connect(session({ tokenExpiresAt: soon }), keyed());
    const lists = await Promise.all(Array.from({ length: 6 }, () => client.listProcesses()));
    assert.equal(lists.length, 6);
    assert.equal(proxy.hits(/\/token\/refresh$/), 1);
  });

  test('a call aborted while it waits for a shared refresh rejects at once; the refresh still serves the others', async () => {
    proxy.reset();
    const soon = new Date(Date.now() + 5 * 60_000).toISOString();
    const client = await Sandbox.connect(session({ tokenExpiresAt: soon }), keyed());
    proxy.fail({ method: 'POST', path: /\/token\/refresh$/, delayMs: 1500 });
    const controller = new AbortController();
    const started = Date.now();
    const aborted = client.listProcesses({ signal: controller.signal });
    const others = Promise.all([client.listProcesses(), client.runCode('print("after the shared refresh")')]);
    setTimeout(() => controller.abort('not waiting'), 100);
    await rejects(aborted, AbortError, (e) => assert.equal(e.cause, 'not waiting'));
    assert.ok(Date.now() - started < 1000, 'the aborted call did not wait for the refresh');
    const [list, run] = await others;
    assert.ok(Array.isArray(list));
    assert.equal(run.stdout, 'after the shared refresh\n');
    assert.equal(proxy.hits(/\/token\/refresh$/), 1, 'one refresh for all three calls');
    assert.ok(Date.parse(client.getSession().tokenExpiresAt) > Date.now() + 3_600_000);
  });

  test('a token-only session without a key never calls the control plane', async () => {
    proxy.reset();
    const client = await Sandbox.connect(session({ token: 'bad' }));
    await rejects(client.runCode('print(1)'), AuthenticationError, (e) => assert.equal(e.status, 401));
    assert.equal(proxy.hits(/\/token\/refresh$/), 0);
  });

  test('a refresh that fails surfaces its own error', async () => {
    proxy.reset();
    const client = await Sandbox.connect(session({ token: 'bad' }), { baseURL: proxy.url, apiKey: 'wrong' });
    await rejects(client.runCode('print(1)'), AuthenticationError, (e) => assert.equal(e.message, 'Invalid API key'));
  });
});

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
      const s = sandbox.getSession();
      const viaProxy = await Sandbox.connect(
        { ...s, agentUrl: s.agentUrl.replace(server.url, proxy.url) },
        { baseURL: proxy.url, apiKey: server.apiKey },
      );
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
    await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const callbackUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
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
      const s = sandbox.getSession();
      const viaProxy = await Sandbox.connect(
        { ...s, agentUrl: s.agentUrl.replace(server.url, proxy.url) },
        { baseURL: proxy.url, apiKey: server.apiKey },
      );
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
