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
  assert.equal(typeof sdk.verifyWebhookSignature, 'function');
  assert.equal(typeof sdk.ProcessStream, 'function');
  assert.equal(typeof sdk.ProcessHandle, 'function');
  for (const name of classes) {
    assert.equal(typeof sdk[name], 'function', name);
    assert.equal(new sdk[name]('m').name, name);
  }
});

test('require() and import() export exactly the values the declarations name (lists made by the build)', async () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const types = fs.readFileSync(path.join(path.dirname(require.resolve('sandlot/package.json')), 'dist/sandlot.d.cts'), 'utf8');
  const declared = [...types.matchAll(/^export (?:declare )?(?:class|function) (\w+)/gm)].map((m) => m[1]).sort();
  assert.ok(declared.includes('Sandbox') && declared.includes('ProcessHandle') && declared.includes('AbortError'));
  assert.deepEqual(Object.keys(sdk).sort(), declared);
  const esm = await import('sandlot');
  assert.deepEqual(Object.keys(esm).filter((k) => k !== 'default').sort(), declared);
});

test('import() and require() share one module: same classes, same wasm instance', async () => {
  const esm = await import('sandlot');
  assert.equal(esm.Sandbox, sdk.Sandbox);
  assert.equal(esm.ProcessHandle, sdk.ProcessHandle);
  assert.equal(esm.ProcessStream, sdk.ProcessStream);
  assert.equal(esm.verifyWebhookSignature, sdk.verifyWebhookSignature);
  for (const name of classes) assert.equal(esm[name], sdk[name], name);
});

test('create, run code, typed error, kill', async () => {
  const sandbox = await sdk.Sandbox.create({ baseURL: server.url, apiKey: server.apiKey });
  try {
    const r = await sandbox.runCode('print("cjs")');
    assert.equal(r.stdout, 'cjs\n');
    const bg = await sandbox.runCodeBackground('print("handle")');
    assert.ok(bg instanceof sdk.ProcessHandle);
    assert.equal((await bg.wait()).stdout, 'handle\n');
    const events = [];
    for await (const e of sandbox.runCodeStream('print(1)')) events.push(e.type);
    assert.equal(events.at(-1), 'exit');
    await assert.rejects(sandbox.getProcess('nope'), (e) => e instanceof sdk.ProcessNotFoundError && e.status === 404);
  } finally {
    await sandbox.kill();
  }
  await assert.rejects(sandbox.getInfo(), sdk.SandboxNotFoundError);
});

test('TypeScript resolves the CommonJS types (.d.cts) under --strict', async () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const { execFileSync } = require('node:child_process');
  fs.writeFileSync(
    path.join(__dirname, 'check.cts'),
    [
      "import { Sandbox, SandlotError, RateLimitError, type ProcessInfo } from 'sandlot';",
      'export async function main(): Promise<ProcessInfo[]> {',
      "  const sandbox: Sandbox = await Sandbox.create({ template: 'code-interpreter' });",
      '  try {',
      '    return await sandbox.listProcesses();',
      '  } catch (e) {',
      '    if (e instanceof RateLimitError) console.log(e.retryAfter);',
      '    if (e instanceof SandlotError) console.log(e.code, e.status, e.requestId);',
      '    throw e;',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const tsc = path.join(process.env.SANDLOT_REPO, 'node_modules/.bin/tsc');
  execFileSync(
    tsc,
    ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,esnext.disposable,dom', '--types', 'node', 'check.cts'],
    { cwd: __dirname, stdio: 'inherit' },
  );
});
