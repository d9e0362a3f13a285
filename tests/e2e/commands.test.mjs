// `sandbox.commands.run` of the installed `sandlot` package against a real sandlotd.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ProcessHandle, Sandbox, ValidationError } from 'sandlot';
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

test('a shell line runs to completion; a failing command is a result with its exit code', async () => {
  const ok = await sandbox.commands.run('node -v && pwd && echo $X', { cwd: '/tmp', env: { X: '1' } });
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.success, true);
  assert.match(ok.stdout, /^v\d+\.\d+\.\d+\n\/tmp\n1\n$/);
  const failed = await sandbox.commands.run('echo oops >&2; exit 7');
  assert.deepEqual([failed.exitCode, failed.success, failed.stderr], [7, false, 'oops\n']);
});

test('args run a program as given, with no shell', async () => {
  const r = await sandbox.commands.run('printf', { args: ['%s|', 'a b', '$HOME', "it's"] });
  assert.equal(r.stdout, "a b|$HOME|it's|");
});

test('onStdout and onStderr get the output while it runs; the result comes after the last', async () => {
  const out = [];
  const err = [];
  const r = await sandbox.commands.run('for i in 1 2 3; do echo $i; sleep 0.05; done; echo done >&2', {
    onStdout: (d) => out.push(d),
    onStderr: (d) => err.push(d),
    lines: true,
  });
  assert.deepEqual(out, ['1\n', '2\n', '3\n']);
  assert.deepEqual(err, ['done\n']);
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, '1\n2\n3\n');
});

test('a timeout ends the command and says so', async () => {
  const r = await sandbox.commands.run('sleep 30', { timeout: 1 });
  assert.equal(r.status, 'timeout');
  assert.notEqual(r.exitCode, 0);
});

test('in the background it is a process handle, listed and killable like a process', async () => {
  const h = await sandbox.commands.run('echo started; sleep 30', { background: true, name: 'server' });
  assert.ok(h instanceof ProcessHandle);
  assert.equal(h.name, 'server');
  const listed = await sandbox.listProcesses({ name: 'server' });
  assert.equal(listed.length, 1);
  await eventually(async () => (await h.refresh()).stdout === 'started\n');
  await h.kill();
  const done = await h.wait({ timeout: 10 });
  assert.equal(done.status, 'killed');
  assert.equal(done.stdout, 'started\n');
});

test('bad input is a ValidationError', async () => {
  await assert.rejects(sandbox.commands.run(''), ValidationError);
  await assert.rejects(sandbox.commands.run(42), ValidationError);
});
