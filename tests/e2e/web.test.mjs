// The browser/bundler entry (the `default` export condition: wasm-bindgen's web target with
// lazy init), loaded in Node by path since Node itself always picks the `node` condition.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { execFileSync } from 'node:child_process';

import { startServer } from './harness.mjs';

const require = createRequire(import.meta.url);
const pkgDir = path.dirname(require.resolve('sandlot/package.json'));
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

test('package.json exports map: node import/require, types, default', () => {
  const root = pkg.exports['.'];
  for (const file of [
    root.node.import.default,
    root.node.import.types,
    root.node.require.default,
    root.node.require.types,
    root.types,
    root.default,
    pkg.exports['./sandlot_bg.wasm'],
  ]) {
    assert.ok(fs.existsSync(path.join(pkgDir, file)), `${file} is in the package`);
  }
  assert.equal(pkg.name, 'sandlot');
});

test('publint --strict and arethetypeswrong find no problem in the package', () => {
  const bin = (name) => path.join(process.env.SANDLOT_REPO, 'node_modules/.bin', name);
  const copy = fs.mkdtempSync(path.join(path.dirname(pkgDir), '..', 'lint-'));
  fs.cpSync(pkgDir, copy, { recursive: true });
  const out = execFileSync(bin('publint'), ['--strict', copy], { encoding: 'utf8' });
  assert.match(out, /All good/);
  execFileSync(bin('attw'), ['--pack', copy, '--exclude-entrypoints', './sandlot_bg.wasm', '--format', 'ascii'], { encoding: 'utf8' });
});

test('the web entry imports nothing from node: and has no createRequire', () => {
  for (const file of ['index.js', 'sandlot.js', 'errors.js', 'surface.js']) {
    const text = fs.readFileSync(path.join(pkgDir, 'dist/web', file), 'utf8');
    assert.doesNotMatch(text, /from ['"]node:|require\(|createRequire/, file);
  }
});

test('the web entry initialises lazily and drives a sandbox', async () => {
  const web = await import(path.join(pkgDir, pkg.exports['.'].default));
  // Node's fetch cannot read file: URLs, so hand the wasm bytes over (a browser would fetch it).
  const bytes = fs.readFileSync(path.join(pkgDir, pkg.exports['./sandlot_bg.wasm']));
  const first = web.initialize(bytes);
  assert.equal(web.initialize(bytes), first, 'initialize is idempotent');
  await first;
  assert.equal(
    web.verifyWebhookSignature({ secret: 's', body: 'b', timestamp: '1', signature: 'sha256=00', toleranceSeconds: 0 }),
    false,
  );
  const node = await import('sandlot');
  assert.deepEqual(Object.keys(web).sort(), Object.keys(node).filter((k) => k !== 'default').sort(), 'both entries export the same names');
  const sandbox = await web.Sandbox.create({ baseURL: server.url, apiKey: server.apiKey });
  try {
    assert.equal((await sandbox.runCode('print("web")')).stdout, 'web\n');
    const bg = await sandbox.runCodeBackground('print("handle")');
    assert.ok(bg instanceof web.ProcessHandle);
    const lines = [];
    for await (const e of bg.stream({ lines: true })) if (e.type === 'stdout') lines.push(e.data);
    assert.deepEqual(lines, ['handle\n']);
    await assert.rejects(sandbox.getProcess('missing'), (e) => e instanceof web.ProcessNotFoundError && e instanceof web.SandlotError);
  } finally {
    await sandbox.kill();
  }
});
