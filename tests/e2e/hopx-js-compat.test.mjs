// Compatibility: the official HopX JS SDK (`@hopx-ai/sdk` 0.5.1 from the repository's
// devDependencies, unmodified) against a real sandlotd: its files, commands, terminal,
// file-watch and metrics calls, as a HopX user would write them (only `baseURL` differs).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { startServer } from './harness.mjs';

const hopx = await import('@hopx-ai/sdk');

let server;
let sandbox;

before(async () => {
  server = await startServer();
  sandbox = await hopx.Sandbox.create({ template: 'code-interpreter', apiKey: server.apiKey, baseURL: server.url });
});

after(async () => {
  await sandbox?.kill().catch(() => {});
  await server?.stop();
});

test('files: write, read, writeBytes, readBytes, list, exists, mkdir, remove', async () => {
  await sandbox.files.write('/workspace/hopx.txt', 'hello from hopx\n');
  assert.equal(await sandbox.files.read('/workspace/hopx.txt'), 'hello from hopx\n');
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  await sandbox.files.writeBytes('/workspace/hopx.bin', bytes);
  assert.deepEqual(await sandbox.files.readBytes('/workspace/hopx.bin'), bytes);
  await sandbox.files.mkdir('/workspace/hopx-dir/sub');
  const list = await sandbox.files.list('/workspace');
  const dir = list.find((f) => f.name === 'hopx-dir');
  const file = list.find((f) => f.name === 'hopx.txt');
  assert.equal(dir.isDir, true);
  assert.equal(file.isFile, true);
  assert.equal(file.size, 16);
  assert.equal(file.extension, 'txt');
  assert.ok(!Number.isNaN(Date.parse(file.modifiedTime)));
  assert.equal(await sandbox.files.exists('/workspace/hopx-dir/sub'), true);
  await sandbox.files.remove('/workspace/hopx-dir');
  assert.equal(await sandbox.files.exists('/workspace/hopx-dir'), false);
});

test('files: upload from a local path and download', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hopx-compat-'));
  try {
    const local = path.join(dir, 'data.csv');
    const content = Buffer.from('a,b\n'.repeat(50_000));
    fs.writeFileSync(local, content);
    await sandbox.files.upload(local, '/workspace/data.csv');
    assert.deepEqual(await sandbox.files.download('/workspace/data.csv'), content);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('commands.run and runBackground', async () => {
  const r = await sandbox.commands.run('node -v && echo $X | tr a-z A-Z', { env: { X: 'shout' } });
  assert.equal(r.exit_code, 0);
  assert.equal(r.success, true);
  assert.match(r.stdout, /^v\d+\.\d+\.\d+\nSHOUT\n$/);
  const failed = await sandbox.commands.run('echo bad >&2; exit 4');
  assert.deepEqual([failed.exit_code, failed.stderr], [4, 'bad\n']);
  const bg = await sandbox.commands.runBackground('sleep 0.1; echo done');
  assert.match(bg.process_id, /\S/);
});

test('terminal: input, resize and the exit frame over the WebSocket', async () => {
  const ws = await sandbox.terminal.connect();
  // The SDK's own iterator re-arms a one-shot listener per frame, so frames that arrive in
  // one burst are dropped by it (client-side); the test also listens on the socket itself.
  const frames = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data))));
  sandbox.terminal.resize(ws, 90, 20);
  sandbox.terminal.sendInput(ws, 'echo hopx-$((40+2)); stty size; exit 3\n');
  for await (const message of sandbox.terminal.output(ws)) assert.ok(['output', 'exit'].includes(message.type), JSON.stringify(message));
  await new Promise((r) => (ws.readyState === ws.CLOSED ? r() : ws.once('close', r)));
  const text = frames.filter((m) => m.type === 'output').map((m) => m.data).join('');
  assert.match(text, /hopx-42/);
  assert.match(text, /20 90/);
  assert.deepEqual(frames.at(-1), { type: 'exit', code: 3 });
});

// The SDK opens its WebSocket at the agent host's root (`ws://host/files/watch`, the path of
// the agent URL dropped); sandlotd serves `/files/watch` there too, the sandbox found from
// the token, as it does `/terminal` and `/execute/stream`.
test('watchFiles yields change frames', async () => {
  const seen = [];
  const watching = (async () => {
    for await (const message of sandbox.watchFiles('/workspace')) {
      seen.push(message);
      if (message.type === 'change' && message.path === '/workspace/watched.txt') break;
    }
  })();
  // The watch is in place once the server has read the first frame; write until it reports.
  const deadline = Date.now() + 10_000;
  while (!seen.some((m) => m.type === 'change') && Date.now() < deadline) {
    await sandbox.files.write('/workspace/watched.txt', String(Date.now()));
    await Promise.race([watching, new Promise((r) => setTimeout(r, 200))]);
  }
  await watching;
  const change = seen.find((m) => m.type === 'change');
  assert.ok(['created', 'modified'].includes(change.event), JSON.stringify(change));
});

test('getMetricsSnapshot and listSystemProcesses', async () => {
  const metrics = await sandbox.getMetricsSnapshot();
  assert.equal(typeof metrics.uptime_seconds, 'number');
  assert.ok(metrics.total_requests > 0);
  assert.equal(typeof metrics.system.memory.used_mb, 'number');
  const procs = await sandbox.listSystemProcesses();
  assert.ok(Array.isArray(procs));
});
