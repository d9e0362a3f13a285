// End-to-end tests of the `sandlot` command line against a real sandlotd: files, network and
// preview URLs, rich results (the rest is in `cli.test.mjs`, the setup in `cli-common.mjs`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { api, cli, cliJson, createSandbox, expectCode, project, server, useCli } from './cli-common.mjs';
import { eventually } from './harness.mjs';

useCli();

describe('files', () => {
  let sb;
  before(async () => {
    sb = await createSandbox();
  });
  after(async () => {
    await cli(['sandboxes', 'kill', sb]);
  });

  test('cp copies a local file in and back out, byte for byte', async () => {
    const local = path.join(project, 'blob.bin');
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
    fs.writeFileSync(local, bytes);
    const up = await cliJson(['files', 'cp', local, `sandbox:${sb}:/workspace/in/blob.bin`]);
    expectCode(up, 0);
    assert.deepEqual(up.doc, { sandboxId: sb, source: local, destination: `sandbox:${sb}:/workspace/in/blob.bin`, bytes: bytes.length });
    const back = path.join(project, 'back.bin');
    expectCode(await cli(['files', 'cp', '--sandbox', sb, 'sandbox:/workspace/in/blob.bin', back]), 0);
    assert.deepEqual(fs.readFileSync(back), bytes);
    // Into a directory: the file keeps its name.
    const dir = fs.mkdtempSync(path.join(project, 'dl-'));
    expectCode(await cli(['files', 'cp', `sandbox:${sb}:/workspace/in/blob.bin`, dir]), 0);
    assert.deepEqual(fs.readFileSync(path.join(dir, 'blob.bin')), bytes);
  });

  test('cp reads stdin and writes stdout with -', async () => {
    expectCode(await cli(['files', 'cp', '-s', sb, '-', 'sandbox:/workspace/piped.txt'], { input: 'through a pipe\n' }), 0);
    const r = await cli(['files', 'cp', '-s', sb, 'sandbox:/workspace/piped.txt', '-']);
    expectCode(r, 0);
    assert.equal(r.stdout, 'through a pipe\n');
  });

  test('ls prints a table (--json: the entries); rm removes files and directories', async () => {
    await cli(['exec', '-s', sb, '--', 'mkdir -p /workspace/ls/dir && echo abc > /workspace/ls/f.txt']);
    const table = await cli(['files', 'ls', '-s', sb, '/workspace/ls']);
    expectCode(table, 0);
    assert.match(table.stdout, /^MODE +SIZE +MODIFIED +NAME\n/);
    assert.match(table.stdout, /^drwx.*dir\/$/m);
    assert.match(table.stdout, /^-rw-r--r-- +4 +\S+Z +f\.txt$/m);
    const json = await cliJson(['files', 'ls', `sandbox:${sb}:/workspace/ls`]);
    assert.deepEqual(json.doc.map((e) => [e.name, e.isDir, e.size]), [['dir', true, json.doc[0].size], ['f.txt', false, 4]]);
    const rm = await cliJson(['files', 'rm', '-s', sb, '/workspace/ls/f.txt', 'sandbox:/workspace/ls/dir']);
    expectCode(rm, 0);
    assert.deepEqual(rm.doc, { sandboxId: sb, removed: ['/workspace/ls/f.txt', '/workspace/ls/dir'] });
    assert.deepEqual((await cliJson(['files', 'ls', '-s', sb, '/workspace/ls'])).doc, []);
  });

  test('missing paths exit 3, paths outside the sandbox 1, bad invocations 2', async () => {
    const missing = await cliJson(['files', 'ls', '-s', sb, '/workspace/nope']);
    expectCode(missing, 3);
    assert.equal(missing.doc.error.code, 'FILE_NOT_FOUND');
    assert.equal(missing.doc.error.type, 'FileNotFoundError');
    const outside = await cliJson(['files', 'cp', `sandbox:${sb}:/etc/passwd`, '-']);
    expectCode(outside, 1);
    assert.deepEqual([outside.doc.error.type, outside.doc.error.code], ['PermissionError', 'PATH_NOT_ALLOWED']);
    expectCode(await cli(['files', 'cp', 'a', 'b']), 2);
    expectCode(await cli(['files', 'ls', '/workspace']), 2); // which sandbox?
    expectCode(await cli(['files', 'mv', 'x']), 2);
    expectCode(await cli(['files', 'cp', path.join(project, 'no-such-file'), `sandbox:${sb}:/workspace/x`]), 2);
  });
});

describe('network and preview', () => {
  test('create --internet with rules; preview prints a URL that opens a server in the sandbox', async () => {
    const created = await cliJson(['create', '--internet', '--allow-out', '203.0.113.0/24', '--deny-out', '0.0.0.0/0']);
    expectCode(created, 0);
    const sb = created.doc.sandboxId;
    try {
      assert.equal(created.doc.internetAccess, true);
      assert.deepEqual((await api('GET', `/v1/sandboxes/${sb}/network`)).network, { allow_out: ['203.0.113.0/24'], deny_out: ['0.0.0.0/0'] });
      expectCode(await cli(['create', '--allow-out', 'pypi.org']), 2); // rules need --internet

      const started = await cli(['run', '--sandbox', sb, '--background', '-l', 'bash', '-'], { input: 'mkdir -p /tmp/site && cd /tmp/site && echo previewed > index.html && exec python3 -m http.server 8000 --bind 127.0.0.1\n' });
      expectCode(started, 0);
      const url = (await cli(['preview', '--sandbox', sb, '--ttl', '60', '8000'])).stdout.trim();
      assert.match(url, new RegExp(`^${server.url}/sandboxes/${sb}/ports/8000/\\?preview_token=`));
      const body = await eventually(async () => {
        const r = await fetch(url);
        return r.status === 200 ? r.text() : null; // 502 until the server listens
      });
      assert.equal(body, 'previewed\n');
      const doc = (await cliJson(['preview', '-s', sb, '8000'])).doc;
      assert.equal(doc.host, `${server.url}/sandboxes/${sb}/ports/8000/`);
      assert.ok(Date.parse(doc.expiresAt) > Date.now());
      expectCode(await cli(['preview', '-s', sb, '70000']), 2);
      expectCode(await cli(['preview', '-s', sb]), 2);
    } finally {
      await cli(['sandboxes', 'kill', sb]);
    }
  });
});

describe('rich results', () => {
  test('run --save-results writes a figure and a table to files; not with --background', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-results-'));
    try {
      const code = 'import matplotlib.pyplot as plt, pandas as pd\nprint("plotting")\nplt.plot([1, 2, 3]); plt.show()\npd.DataFrame({"n": [1, 2]})\n';
      const r = await cli(['run', '--save-results', dir, '-l', 'python', '-'], { input: code });
      expectCode(r, 0);
      assert.equal(r.stdout, 'plotting\n');
      const files = fs.readdirSync(dir).sort();
      assert.equal(files.length, 2, files.join());
      const png = files.find((f) => f.endsWith('.png'));
      const html = files.find((f) => f.endsWith('.html'));
      assert.equal(fs.readFileSync(path.join(dir, png)).subarray(1, 4).toString(), 'PNG');
      assert.match(fs.readFileSync(path.join(dir, html), 'utf8'), /<table/);
      assert.match(r.stderr, new RegExp(`saved .*${png}`));
      for (const f of files) fs.rmSync(path.join(dir, f));
      const doc = await cliJson(['run', '--save-results', dir, '-l', 'python', '-'], { input: 'import matplotlib.pyplot as plt\nplt.plot([0, 1]); plt.show()\n' });
      expectCode(doc, 0);
      assert.deepEqual(doc.doc.savedResults, [path.join(dir, 'result-1.png')]);
      expectCode(await cli(['run', '--background', '--save-results', dir, '-'], { input: '1' }), 2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
