// `sandbox.terminal` (the fetch-friendly terminal) and the sandbox's metrics, of the
// installed `sandlot` package against a real sandlotd.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { NotFoundError, Sandbox, SandlotError, TerminalHandle } from 'sandlot';
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

/** Reads a terminal's output until `re` matches what it printed; resolves with the text. */
async function until(stream, re) {
  let text = '';
  for (;;) {
    const { value, done } = await stream.next();
    if (done) throw new Error(`output ended before ${re}: ${JSON.stringify(text)}`);
    if (value.type === 'output') text += value.data;
    if (re.test(text)) return text;
  }
}

test('a terminal echoes what is typed, in its size, cwd and env', async () => {
  const t = await sandbox.terminal.create({ cols: 120, rows: 40, cwd: '/tmp', env: { GREETING: 'hi' } });
  assert.ok(t instanceof TerminalHandle);
  assert.equal(t.id, t.terminalId);
  assert.deepEqual([t.status, t.cols, t.rows, t.cwd], ['running', 120, 40, '/tmp']);
  const out = await t.output();
  await t.write('echo "$GREETING from $(pwd)"; stty size\n');
  const text = await until(out, /40 120/);
  assert.match(text, /hi from \/tmp/);
  await out.close();
  await t.kill();
});

test('resize reaches the shell; exit ends the output with its code', async () => {
  const t = await sandbox.terminal.create();
  assert.deepEqual([t.cols, t.rows], [80, 24]);
  const resized = await t.resize(100, 30);
  assert.equal(resized, t);
  assert.deepEqual([t.cols, t.rows], [100, 30]);
  await t.write('stty size; exit 7\n');
  const events = [];
  for await (const e of t) events.push(e);
  const text = events.filter((e) => e.type === 'output').map((e) => e.data).join('');
  assert.match(text, /30 100/);
  const last = events.at(-1);
  assert.deepEqual([last.type, last.code], ['exit', 7]);
  assert.ok(events.every((e, i) => i === 0 || e.seq > events[i - 1].seq), 'seq grows');
  assert.deepEqual([t.status, t.exitCode], ['exited', 7]);
  assert.equal(await t.wait(), 7);
  await assert.rejects(t.write('x'), (e) => e instanceof SandlotError && e.code === 'TERMINAL_EXITED');
});

test('bytes can be typed; kill resolves once the shell has exited (137)', async () => {
  const t = await sandbox.terminal.create();
  const out = await t.output();
  await t.write(new TextEncoder().encode('printf "b%s\\n" ytes\n'));
  await until(out, /bytes/);
  const killed = await t.kill();
  assert.deepEqual([killed.status, killed.exitCode], ['exited', 137]);
  let last;
  for await (const e of out) last = e;
  assert.deepEqual([last.type, last.code], ['exit', 137]);
});

test('terminals are listed and reconnected by id, output replayed from `since`', async () => {
  const t = await sandbox.terminal.create();
  const out = await t.output();
  await t.write('echo first-line\n');
  await until(out, /first-line\r?\n/);
  await out.close();
  const listed = await sandbox.terminal.list();
  assert.ok(listed.some((x) => x.id === t.id && x.status === 'running'));
  const again = await sandbox.terminal.connect(t.id);
  assert.ok(again.lastSeq > 0);
  // Everything kept is replayed; after `since` only what came later.
  const replay = await again.output();
  assert.match(await until(replay, /first-line/), /first-line/);
  await replay.close();
  const since = (await again.refresh()).lastSeq;
  const later = await again.output({ since });
  await again.write('echo second-line\n');
  const text = await until(later, /second-line\r?\n/);
  assert.doesNotMatch(text, /first-line/);
  await later.close();
  await again.kill();
  await assert.rejects(sandbox.terminal.connect('term_missing'), (e) => e instanceof NotFoundError && e.code === 'TERMINAL_NOT_FOUND');
});

test('getMetrics is camelCase and counts what the sandbox did', async () => {
  await sandbox.runCode('print(1)', { language: 'python' });
  await (await sandbox.commands.run('true', { background: true })).wait();
  const m = await sandbox.getMetrics();
  assert.equal(typeof m.uptimeSeconds, 'number');
  assert.ok(m.totalRequests > 0);
  assert.ok(m.totalExecutions >= 1);
  assert.ok(m.requestsTotal['POST /execute'] >= 1);
  assert.ok(m.system.memory.limitMb > 0);
  assert.equal(typeof m.system.cpu.usageSeconds, 'number');
  assert.equal(typeof m.system.disk.usedMb, 'number');
  assert.equal(typeof m.process.count, 'number');
  assert.equal(typeof m.oomKills, 'number');
  assert.ok(!Number.isNaN(Date.parse(m.timestamp)));
  assert.equal('errorCount' in m, false);
  const snake = JSON.stringify(m).match(/"[a-z]+_[a-z_]+":/g);
  assert.equal(snake, null, `snake_case keys: ${snake}`);
});

test('listSystemProcesses shows the processes running in the sandbox', async () => {
  const bg = await sandbox.commands.run('sleep 30', { background: true });
  try {
    const sleep = await eventually(async () => (await sandbox.listSystemProcesses()).find((p) => /sleep 30/.test(p.command)));
    assert.equal(sleep.processId, bg.processId);
    assert.equal(typeof sleep.pid, 'number');
    assert.equal(typeof sleep.memoryMb, 'number');
    assert.equal(sleep.user, 'user');
  } finally {
    await bg.kill();
  }
});
