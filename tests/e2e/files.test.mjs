// `sandbox.files` of the installed `sandlot` package against a real sandlotd: every method,
// the typed errors of the path policy, a 50 MB round trip checked by digest, and watch events.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { FileNotFoundError, NotFoundError, PermissionError, Sandbox, SandlotError, ValidationError } from 'sandlot';
import { startServer } from './harness.mjs';

let server;
let sandbox;
const files = () => sandbox.files;
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

before(async () => {
  server = await startServer();
  sandbox = await Sandbox.create({ baseURL: server.url, apiKey: server.apiKey });
});

after(async () => {
  await sandbox?.kill().catch(() => {});
  await server?.stop();
});

test('text written is read back as text, as bytes and as a stream', async () => {
  await files().write('/workspace/notes/hello.txt', 'héllo\n');
  assert.equal(await files().read('/workspace/notes/hello.txt'), 'héllo\n');
  const bytes = await files().read('/workspace/notes/hello.txt', { format: 'bytes' });
  assert.ok(bytes instanceof Uint8Array);
  assert.equal(new TextDecoder().decode(bytes), 'héllo\n');
  const stream = await files().read('/workspace/notes/hello.txt', { format: 'stream' });
  assert.ok(stream instanceof ReadableStream);
  assert.equal(await new Response(stream).text(), 'héllo\n');
  assert.deepEqual(await files().readBytes('/workspace/notes/hello.txt'), bytes);
});

test('bytes, ArrayBuffers, Blobs and ReadableStreams are written exactly', async () => {
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  await files().write('/workspace/b/bytes.bin', bytes);
  await files().writeBytes('/workspace/b/buffer.bin', bytes.buffer);
  await files().write('/workspace/b/blob.bin', new Blob([bytes]));
  await files().write('/workspace/b/stream.bin', new Blob([bytes, bytes]).stream());
  for (const name of ['bytes', 'buffer', 'blob']) assert.deepEqual(await files().readBytes(`/workspace/b/${name}.bin`), bytes);
  const twice = await files().readBytes('/workspace/b/stream.bin');
  assert.equal(twice.length, 512);
  assert.deepEqual(twice.subarray(256), bytes);
  await assert.rejects(files().read('/workspace/b/bytes.bin'), (e) => e instanceof ValidationError && e.code === 'FILE_NOT_TEXT');
});

test('write keeps mode and refuses to overwrite when told', async () => {
  await files().write('/workspace/run.sh', '#!/bin/sh\necho ok\n', { mode: '0755' });
  const [entry] = (await files().list('/workspace')).filter((f) => f.name === 'run.sh');
  assert.equal(entry.mode, '0755');
  await assert.rejects(files().write('/workspace/run.sh', 'x', { overwrite: false }), (e) => e instanceof SandlotError && e.code === 'FILE_ALREADY_EXISTS');
  await assert.rejects(files().write('/workspace/run.sh', new Blob(['x']), { overwrite: false }), (e) => e.code === 'FILE_ALREADY_EXISTS');
});

test('list gives camelCase entries with one name per fact', async () => {
  await files().mkdir('/workspace/listing/sub');
  await files().write('/workspace/listing/a.txt', 'abc');
  const entries = await files().list('/workspace/listing');
  assert.deepEqual(
    entries.map((e) => [e.name, e.isDir, e.isFile, e.size]),
    [
      ['a.txt', false, true, 3],
      ['sub', true, false, entries[1].size],
    ],
  );
  const a = entries[0];
  assert.equal(a.path, '/workspace/listing/a.txt');
  assert.equal(a.isSymlink, false);
  assert.equal(a.permissions, 'rw-r--r--');
  assert.ok(!Number.isNaN(Date.parse(a.modifiedTime)));
  for (const key of Object.keys(a)) assert.doesNotMatch(key, /_/, `${key} is not camelCase`);
  assert.equal('isDirectory' in a || 'modified' in a, false);
});

test('exists, mkdir, rename and remove', async () => {
  assert.equal(await files().exists('/workspace/mv/x.txt'), false);
  await files().mkdir('/workspace/mv/deep/er');
  await files().mkdir('/workspace/mv/deep/er'); // an existing directory is fine
  await files().write('/workspace/mv/x.txt', 'x');
  assert.equal(await files().exists('/workspace/mv/x.txt'), true);
  await files().rename('/workspace/mv/x.txt', '/workspace/mv/new/y.txt');
  assert.equal(await files().exists('/workspace/mv/x.txt'), false);
  assert.equal(await files().read('/workspace/mv/new/y.txt'), 'x');
  await files().write('/workspace/mv/z.txt', 'z');
  await assert.rejects(files().rename('/workspace/mv/z.txt', '/workspace/mv/new/y.txt'), (e) => e.code === 'FILE_ALREADY_EXISTS');
  await files().rename('/workspace/mv/z.txt', '/workspace/mv/new/y.txt', { overwrite: true });
  assert.equal(await files().read('/workspace/mv/new/y.txt'), 'z');
  await files().remove('/workspace/mv');
  assert.equal(await files().exists('/workspace/mv'), false);
});

test('missing paths are FileNotFoundError; paths outside the sandbox are PermissionError', async () => {
  for (const call of [() => files().read('/workspace/nope'), () => files().readBytes('/workspace/nope'), () => files().list('/workspace/nope'), () => files().remove('/workspace/nope')]) {
    await assert.rejects(call(), (e) => e instanceof FileNotFoundError && e instanceof NotFoundError && e.code === 'FILE_NOT_FOUND' && e.status === 404);
  }
  for (const p of ['/etc/passwd', '/workspace/../etc/passwd', 'relative.txt']) {
    await assert.rejects(files().read(p), (e) => e instanceof PermissionError && e.code === 'PATH_NOT_ALLOWED' && e.status === 403, p);
  }
  await assert.rejects(files().write('/etc/x', 'x'), PermissionError);
  await assert.rejects(files().read(''), (e) => e instanceof ValidationError && e.code === 'INVALID_ARGUMENT');
  await assert.rejects(files().write('/workspace/x', 42), ValidationError);
  await assert.rejects(files().read('/workspace/notes/hello.txt', { format: 'xml' }), ValidationError);
});

test('a 50 MB file goes up from a local path and comes back down, byte for byte', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-files-'));
  try {
    const local = path.join(dir, 'big.bin');
    const chunk = Buffer.alloc(1 << 20);
    const hash = createHash('sha256');
    const fd = fs.openSync(local, 'w');
    for (let i = 0; i < 50; i++) {
      chunk.fill(i);
      chunk.writeUInt32LE(i * 2654435761 >>> 0, 0);
      fs.writeSync(fd, chunk);
      hash.update(chunk);
    }
    fs.closeSync(fd);
    const digest = hash.digest('hex');
    await files().upload(local, '/workspace/big.bin');
    const [entry] = (await files().list('/workspace')).filter((f) => f.name === 'big.bin');
    assert.equal(entry.size, 50 << 20);
    const back = path.join(dir, 'back.bin');
    await files().download('/workspace/big.bin', back);
    assert.equal(sha256(fs.readFileSync(back)), digest);
    const bytes = await files().download('/workspace/big.bin');
    assert.equal(bytes.length, 50 << 20);
    assert.equal(sha256(bytes), digest);
    // A stream written as it is read (no length known up front) arrives whole too.
    await files().write('/workspace/big-stream.bin', fs.openAsBlob ? (await fs.openAsBlob(local)).stream() : new Blob([fs.readFileSync(local)]).stream());
    let streamed = createHash('sha256');
    for await (const part of await files().read('/workspace/big-stream.bin', { format: 'stream' })) streamed.update(part);
    assert.equal(streamed.digest('hex'), digest);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await files().remove('/workspace/big.bin').catch(() => {});
    await files().remove('/workspace/big-stream.bin').catch(() => {});
  }
});

test('large text goes as an upload and reads back', async () => {
  const text = 'line of text\n'.repeat(200_000); // 2.6 MB, over the JSON write limit
  await files().write('/workspace/large.txt', text);
  assert.equal(await files().read('/workspace/large.txt'), text);
});

test('watch reports created, modified and deleted; iterating the call directly works', async () => {
  await files().mkdir('/workspace/watched');
  const seen = [];
  const controller = new AbortController();
  const watching = (async () => {
    for await (const e of files().watch('/workspace/watched', { signal: controller.signal })) {
      seen.push(`${e.event} ${e.path}`);
      if (e.event === 'deleted') break;
    }
  })();
  // The watch is in place once the call resolves; an awaited one for the ordering here.
  const watch = await files().watch('/workspace/watched');
  await files().write('/workspace/watched/a.txt', 'a');
  const first = await watch.next();
  assert.equal(first.value.type, 'change');
  assert.equal(first.value.event, 'created');
  assert.equal(first.value.path, '/workspace/watched/a.txt');
  await sandbox.commands.run('echo more >> /workspace/watched/a.txt');
  await files().remove('/workspace/watched/a.txt');
  await watching;
  await watch.close();
  assert.ok(seen.includes('created /workspace/watched/a.txt'), seen.join(', '));
  assert.ok(seen.includes('deleted /workspace/watched/a.txt'), seen.join(', '));
  assert.ok(seen.some((s) => s.startsWith('modified ')), seen.join(', '));
});

test('recursive watch sees subdirectories; a missing path is refused', async () => {
  await files().mkdir('/workspace/tree/a/b');
  const watch = await files().watch('/workspace/tree', { recursive: true });
  await files().write('/workspace/tree/a/b/deep.txt', 'd');
  const { value } = await watch.next();
  assert.deepEqual([value.event, value.path], ['created', '/workspace/tree/a/b/deep.txt']);
  await watch.close();
  assert.equal((await watch.next()).done, true);
  await assert.rejects(files().watch('/workspace/not-there'), FileNotFoundError);
  await assert.rejects(files().watch('/etc'), PermissionError);
});

test('an aborted signal ends the watch with AbortError', async () => {
  const controller = new AbortController();
  const watch = await files().watch('/workspace', { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(watch.next(), (e) => e.name === 'AbortError');
});
