// Execution contexts and rich results of the installed `sandlot` package against a real
// sandlotd: state that persists (python, javascript, bash), fresh runs, isolated contexts,
// matplotlib figures, DataFrames and display() as results, exceptions as executionError,
// interrupts that keep state, restarts, and result events on a stream.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { NotFoundError, Sandbox } from 'sandlot';
import { startServer } from './harness.mjs';

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

test('runCode keeps state in the language default context; fresh runs keep none', async () => {
  await sandbox.runCode('import os\nx = 41\nos.chdir("/tmp")');
  const r = await sandbox.runCode('x + 1');
  assert.equal(r.exitCode, 0);
  assert.equal(r.result, '42');
  assert.deepEqual(r.results, [{ text: '42', isMainResult: true }]);
  assert.equal(typeof r.contextId, 'string');
  assert.ok(r.executionCount >= 2, String(r.executionCount));
  assert.equal((await sandbox.runCode('print(os.getcwd())')).stdout, '/tmp\n');

  const fresh = await sandbox.runCode('print(x)', { fresh: true });
  assert.notEqual(fresh.exitCode, 0);
  assert.match(fresh.stderr, /NameError/);
  assert.equal(fresh.contextId, undefined);

  await sandbox.runCode('let n = 20; const twice = (v) => v * 2;', { language: 'javascript' });
  assert.equal((await sandbox.runCode('console.log(twice(n) + 2)', { language: 'javascript' })).stdout, '42\n');
  await sandbox.runCode('cd /tmp && export GREETING=hi', { language: 'bash' });
  assert.equal((await sandbox.runCode('echo "$PWD $GREETING"', { language: 'bash' })).stdout, '/tmp hi\n');
});

test('an exception is a result with executionError and a non-zero exit code; state stays', async () => {
  await sandbox.runCode('kept = "yes"');
  const r = await sandbox.runCode('1 / 0');
  assert.notEqual(r.exitCode, 0);
  assert.equal(r.success, false);
  assert.equal(r.executionError.name, 'ZeroDivisionError');
  assert.match(r.executionError.value, /division by zero/);
  assert.match(r.executionError.traceback, /ZeroDivisionError/);
  assert.equal((await sandbox.runCode('kept')).result, "'yes'");
});

test('matplotlib figures are PNG results, DataFrames HTML tables, display() keeps its MIME types', async () => {
  const r = await sandbox.runCode(
    [
      'import matplotlib.pyplot as plt, pandas as pd',
      'from IPython.display import display, Markdown',
      'plt.plot([1, 2, 3], [4, 1, 9]); plt.title("chart"); plt.show()',
      'display(Markdown("**bold**"))',
      'pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})',
    ].join('\n'),
  );
  assert.equal(r.exitCode, 0, r.stderr);
  const png = r.results.find((x) => x.png);
  const bytes = Buffer.from(png.png, 'base64');
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(bytes.readUInt32BE(16) > 100 && bytes.readUInt32BE(20) > 100, 'a real image size');
  assert.equal(r.png, png.png);
  assert.ok(r.results.some((x) => x.markdown === '**bold**'));
  const table = r.results.find((x) => x.isMainResult);
  assert.match(table.html, /<table[\s\S]*<th>a<\/th>[\s\S]*<td>x<\/td>/);
  assert.match(table.text, /a\s+b/);
  assert.equal(r.html, table.html);
});

test('contexts are isolated, listed, restarted and removed', async () => {
  const a = await sandbox.createCodeContext();
  const b = await sandbox.createCodeContext({ language: 'python', cwd: '/tmp' });
  assert.equal(a.language, 'python');
  assert.equal(b.cwd, '/tmp');
  await sandbox.runCode('secret = 1', { context: a });
  const inB = await sandbox.runCode('secret', { context: b.id });
  assert.equal(inB.executionError?.name, 'NameError');
  assert.equal((await sandbox.runCode('secret', { context: a })).result, '1');

  const ids = (await sandbox.listCodeContexts()).map((c) => c.id);
  assert.ok(ids.includes(a.id) && ids.includes(b.id), ids.join());
  const restarted = await sandbox.restartCodeContext(a);
  assert.equal(restarted.id, a.id);
  assert.equal((await sandbox.runCode('secret', { context: a })).executionError?.name, 'NameError');
  await sandbox.removeCodeContext(b);
  assert.ok(!(await sandbox.listCodeContexts()).some((c) => c.id === b.id));
  await assert.rejects(sandbox.runCode('1', { context: b.id }), NotFoundError);
});

test('a timeout interrupts the cell and the context keeps its state', async () => {
  const ctx = await sandbox.createCodeContext();
  await sandbox.runCode('total = 5', { context: ctx });
  const slow = await sandbox.runCode('import time\nwhile True: time.sleep(0.1)', { context: ctx, timeout: 1 });
  assert.equal(slow.status, 'timeout');
  assert.equal((await sandbox.runCode('total * 2', { context: ctx })).result, '10');
});

test('runCodeStream yields result events from the default context', async () => {
  const events = [];
  for await (const e of sandbox.runCodeStream('import matplotlib.pyplot as plt\nprint("drawing")\nplt.plot([0, 1]); plt.show()\n6 * 7')) events.push(e);
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'start');
  assert.equal(types.at(-1), 'exit');
  const results = events.filter((e) => e.type === 'result');
  assert.ok(results.some((e) => e.result.png?.length > 100), JSON.stringify(types));
  assert.ok(results.some((e) => e.result.isMainResult && e.result.text === '42'));
  assert.ok(events.some((e) => e.type === 'stdout' && e.data.includes('drawing')));
});
