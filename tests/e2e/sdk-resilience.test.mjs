// End-to-end tests of the installed `sandlot` package (ESM) against a real sandlotd, with a
// fault proxy in front of it: which calls are retried and how, and the token's refresh.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  AbortError,
  AuthenticationError,
  RateLimitError,
  Sandbox,
  ServerError,
  TimeoutError,
} from 'sandlot';
import { startFaultProxy } from './harness.mjs';
import { fresh, rejects, server, useServer, withoutKeyInEnv } from './sdk-common.mjs';

useServer();

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
    await withoutKeyInEnv(async () => {
      const client = await Sandbox.connect(session({ token: 'bad' }));
      await rejects(client.runCode('print(1)'), AuthenticationError, (e) => assert.equal(e.status, 401));
    });
    assert.equal(proxy.hits(/\/token\/refresh$/), 0);
  });

  test('a refresh that fails surfaces its own error', async () => {
    proxy.reset();
    const client = await Sandbox.connect(session({ token: 'bad' }), { baseURL: proxy.url, apiKey: 'wrong' });
    await rejects(client.runCode('print(1)'), AuthenticationError, (e) => assert.equal(e.message, 'Invalid API key'));
  });
});
