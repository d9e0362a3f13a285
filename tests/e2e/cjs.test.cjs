// The package through require() (CommonJS project): same classes as the ESM entry, and a
// round trip against a real sandlotd.
const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');

const sdk = require('sandlot');

let server;
before(async () => {
  const { startServer } = await import('./harness.mjs');
  server = await startServer();
});
after(() => server?.stop());

const classes = [
  'SandlotError',
  'AuthenticationError',
  'NotFoundError',
  'SandboxNotFoundError',
  'ProcessNotFoundError',
  'ValidationError',
  'RateLimitError',
  'TimeoutError',
  'NetworkError',
  'ServerError',
  'AbortError',
];

test('require() exports Sandbox, initialize and every error class', () => {
  assert.equal(typeof sdk.Sandbox.create, 'function');
  assert.equal(typeof sdk.initialize, 'function');
  for (const name of classes) {
    assert.equal(typeof sdk[name], 'function', name);
    assert.equal(new sdk[name]('m').name, name);
  }
});

test('import() and require() share one module: same classes, same wasm instance', async () => {
  const esm = await import('sandlot');
  assert.equal(esm.Sandbox, sdk.Sandbox);
  for (const name of classes) assert.equal(esm[name], sdk[name], name);
});

test('create, run code, typed error, kill', async () => {
  const sandbox = await sdk.Sandbox.create({ baseURL: server.url, apiKey: server.apiKey });
  try {
    const r = await sandbox.runCode('print("cjs")');
    assert.equal(r.stdout, 'cjs\n');
    await assert.rejects(sandbox.getProcess('nope'), (e) => e instanceof sdk.ProcessNotFoundError && e.status === 404);
  } finally {
    await sandbox.kill();
  }
  await assert.rejects(sandbox.getInfo(), sdk.SandboxNotFoundError);
});
