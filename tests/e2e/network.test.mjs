// Network of the installed `sandlot` package against a real sandlotd: egress rules at create
// and at runtime, and a server inside a sandbox reached through sandlotd (signed preview URL,
// token-authenticated host). Only loopback is contacted: sandlotd's port proxy and, inside
// the sandbox, its own listener.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Sandbox, SandlotError, ValidationError } from 'sandlot';
import { eventually, startServer } from './harness.mjs';

let server;
let sandbox;

before(async () => {
  server = await startServer();
  sandbox = await Sandbox.create({ baseURL: server.url, apiKey: server.apiKey });
});

after(async () => {
  await sandbox?.kill().catch(() => {});
  await server?.stop();
});

test('egress rules set at create are reported, replaced by updateNetwork, and checked', async (t) => {
  const rules = { allowOut: ['203.0.113.0/24', '*.example.org'], denyOut: ['0.0.0.0/0'] };
  const net = await Sandbox.create({ baseURL: server.url, apiKey: server.apiKey, internetAccess: true, network: rules });
  t.after(() => net.kill().catch(() => {}));
  assert.equal((await net.getInfo()).internetAccess, true);
  assert.deepEqual(await net.getNetwork(), { internetAccess: true, network: rules });

  const next = { allowOut: ['198.51.100.7'], denyOut: [] };
  assert.deepEqual(await net.updateNetwork(next), { internetAccess: true, network: next });
  assert.deepEqual((await net.getNetwork()).network, next);

  await assert.rejects(net.updateNetwork({ allowOut: ['not a rule!'] }), ValidationError);
  await assert.rejects(net.updateNetwork({ allowOut: 'pypi.org' }), (e) => e instanceof ValidationError && /allowOut must be an array/.test(e.message));
  await assert.rejects(
    Sandbox.create({ baseURL: server.url, apiKey: server.apiKey, internetAccess: true, network: { denyOut: [7] } }),
    (e) => e instanceof ValidationError && /denyOut must be an array of strings/.test(e.message),
  );
  // A sandbox without internet has no rules to change.
  await assert.rejects(sandbox.updateNetwork(next), (e) => e instanceof SandlotError && e.status === 409);
  assert.deepEqual(await sandbox.getNetwork(), { internetAccess: false, network: { allowOut: [], denyOut: [] } });
});

test('a server in the sandbox is reached through a preview URL and through getHost with the token', async () => {
  await sandbox.files.write('/workspace/site/index.html', '<h1>hello from the sandbox</h1>');
  const web = await sandbox.commands.run('python3 -m http.server 8000 --bind 127.0.0.1', { background: true, cwd: '/workspace/site' });
  try {
    const preview = await sandbox.getPreviewUrl(8000, { ttl: 120 });
    assert.equal(preview.port, 8000);
    assert.ok(preview.url.startsWith(preview.host) && preview.url.includes('preview_token='), preview.url);
    assert.ok(Date.parse(preview.expiresAt) > Date.now() + 100_000, preview.expiresAt);
    // The server in the sandbox may still be starting (502 until it listens).
    const page = await eventually(async () => {
      const r = await fetch(preview.url);
      return r.status === 200 ? r.text() : null;
    });
    assert.equal(page, '<h1>hello from the sandbox</h1>');

    const host = sandbox.getHost(8000);
    assert.equal(host, `${server.url}/sandboxes/${sandbox.sandboxId}/ports/8000/`);
    assert.equal(preview.host, host);
    const { token } = sandbox.getSession();
    const withToken = await fetch(`${host}index.html`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(withToken.status, 200);
    assert.equal(await withToken.text(), '<h1>hello from the sandbox</h1>');
    const without = await fetch(`${host}index.html`);
    assert.ok([401, 403].includes(without.status), `status ${without.status}`);
  } finally {
    await web.kill().catch(() => {});
  }
});

test('ports are checked before any request', async () => {
  for (const bad of [0, 70000, 1.5, '8000']) {
    await assert.rejects(sandbox.getPreviewUrl(bad), ValidationError);
    assert.throws(() => sandbox.getHost(bad), ValidationError);
  }
  await assert.rejects(sandbox.getPreviewUrl(8000, { ttl: 0 }), ValidationError);
});
