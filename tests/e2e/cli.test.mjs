// End-to-end tests of the `sandlot` command line against a real sandlotd: help and usage,
// create and run, background processes, sandboxes, errors and exit codes, exec
// (`cli-files.test.mjs`: files, network, rich results; the setup is `cli-common.mjs`).
// Run it alone with `node --test tests/e2e/cli.test.mjs` (needs a built pkg/ and sandlotd).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { api, cli, cliEnv, cliJson, createSandbox, expectCode, processStatus, project, sandboxIds, server, start, useCli, version } from './cli-common.mjs';
import { eventually } from './harness.mjs';

useCli();

describe('help, version, usage errors', () => {
  test('the installed package has the bin, executable', () => {
    const installed = path.join(project, 'node_modules/sandlot');
    const pkg = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
    assert.equal(pkg.bin.sandlot, 'bin/sandlot.mjs');
    assert.ok(fs.statSync(path.join(installed, pkg.bin.sandlot)).mode & 0o111);
    assert.equal(pkg.dependencies, undefined, 'the CLI needs no dependency');
  });

  test('the packed package carries the command line with its modules', () => {
    const installed = path.join(project, 'node_modules/sandlot');
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: installed, encoding: 'utf8' }));
    const files = packed.files.map((f) => f.path);
    const modules = fs.readdirSync(path.join(installed, 'bin/cli'));
    assert.ok(modules.length >= 2, `${modules}`);
    for (const f of ['bin/sandlot.mjs', ...modules.map((m) => `bin/cli/${m}`)]) assert.ok(files.includes(f), `${f} is not packed`);
  });

  test('--version, and --version --json', async () => {
    const r = await cli(['--version']);
    expectCode(r, 0);
    assert.equal(r.stdout, `sandlot ${version}\n`);
    const j = await cliJson(['--version']);
    assert.deepEqual(j.doc, { version });
  });

  test('--help lists every command; every command has its --help', async () => {
    const commands = ['create', 'run', 'ps', 'logs', 'wait', 'kill', 'sandboxes'];
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = await cli(args);
      expectCode(r, 0);
      for (const c of commands) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
      assert.match(r.stdout, /Exit codes:/);
    }
    for (const c of commands) {
      for (const args of [[c, '--help'], ['help', c], ['--json', c, '-h']]) {
        const r = await cli(args);
        expectCode(r, 0);
        assert.match(r.stdout, new RegExp(`^Usage: sandlot ${c}`), args.join(' '));
        assert.match(r.stdout, /--json/);
      }
    }
  });

  test('usage errors exit 2, also as one JSON document with --json', async () => {
    const cases = [
      [[], /no command/],
      [['frob'], /unknown command 'frob'/],
      [['ps', '--bogus'], /unknown option '--bogus'/],
      [['ps', '--sandbox'], /'--sandbox' needs a value/],
      [['ps', 'extra'], /unexpected argument 'extra'/],
      [['ps', '--interval', '1'], /--interval goes with --watch/],
      [['ps', '--watch', '--interval', '0'], /positive number/],
      [['run'], /missing FILE/],
      [['run', path.join(os.tmpdir(), 'no-such-file.py')], /no such file/],
      [['create', '--timeout', '0'], /positive whole number/],
      [['create', '--timeout', 'soon'], /positive whole number/],
      [['create', '--env', '=x'], /KEY=VALUE/],
      [['logs', 'proc_x'], /--sandbox ID is required/],
      [['wait', '--sandbox', 'x'], /missing PROCESS_ID/],
      [['sandboxes', 'frob'], /unknown subcommand/],
      [['sandboxes', 'info'], /one sandbox ID/],
      [['help', 'frob'], /no command 'frob'/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expectCode(r, 2);
      assert.equal(r.stdout, '', args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /--help' for usage/);
      if (args[0] === 'help') continue;
      const j = await cliJson(args);
      expectCode(j, 2);
      assert.equal(j.doc.error.code, 'USAGE');
      assert.match(j.doc.error.message, message);
      assert.equal(j.stderr, '');
    }
    const watch = await cliJson(['ps', '--watch']);
    expectCode(watch, 2);
    assert.match(watch.doc.error.message, /--watch/);
  });
});

describe('create and run', () => {
  test('create prints the id; --json prints the sandbox; --env reaches its runs', async () => {
    const id = await createSandbox();
    assert.match(id, /^\S+$/);
    assert.ok((await sandboxIds()).includes(id));

    const j = await cliJson(['create', '--template', 'code-interpreter', '--timeout', '600', '--env', 'GREETING=hello', '-e', 'FROM_SHELL'], {
      env: { FROM_SHELL: 'inherited' },
    });
    expectCode(j, 0);
    assert.equal(j.doc.status, 'running');
    assert.equal(j.doc.templateName, 'code-interpreter');
    assert.equal(j.doc.timeoutSeconds, 600);
    const r = await cli(['run', '--sandbox', j.doc.sandboxId, '--language', 'bash', '-'], { input: 'echo "$GREETING $FROM_SHELL"' });
    expectCode(r, 0);
    assert.equal(r.stdout, 'hello inherited\n');

    for (const sb of [id, j.doc.sandboxId]) expectCode(await cli(['sandboxes', 'kill', sb]), 0);
  });

  test('run FILE streams stdout and stderr apart, exits with the code, leaves no sandbox', async () => {
    const before = await sandboxIds();
    const file = path.join(project, 'exit3.py');
    fs.writeFileSync(file, 'import sys\nprint("to stdout")\nprint("to stderr", file=sys.stderr)\nsys.exit(3)\n');
    const r = await cli(['run', file]);
    expectCode(r, 3);
    assert.equal(r.stdout, 'to stdout\n');
    assert.equal(r.stderr, 'to stderr\n');
    assert.deepEqual(await sandboxIds(), before);

    // The language follows the extension; a clean exit is 0.
    fs.writeFileSync(path.join(project, 'hello.js'), 'console.log("js", process.env.X)');
    const js = await cli(['run', '--env', 'X=1', 'hello.js']);
    expectCode(js, 0);
    assert.equal(js.stdout, 'js 1\n');
    assert.deepEqual(await sandboxIds(), before);
  });

  test('run - reads the code from stdin', async () => {
    const r = await cli(['run', '-l', 'bash', '-'], { input: 'echo from-stdin; echo oops >&2; exit 5\n' });
    expectCode(r, 5);
    assert.equal(r.stdout, 'from-stdin\n');
    assert.equal(r.stderr, 'oops\n');
    const py = await cli(['run', '-'], { input: 'print(6 * 7)' });
    expectCode(py, 0);
    assert.equal(py.stdout, '42\n');
  });

  test('run --json: one document with the output and the exit code', async () => {
    const j = await cliJson(['run', '-l', 'python', '--name', 'jsonrun', '-'], { input: 'import sys\nprint("a")\nsys.stderr.write("b\\n")\nsys.exit(3)' });
    expectCode(j, 3);
    assert.equal(j.stderr, '');
    assert.equal(j.doc.status, 'failed');
    assert.equal(j.doc.exitCode, 3);
    assert.equal(j.doc.name, 'jsonrun');
    assert.equal(j.doc.stdout, 'a\n');
    assert.equal(j.doc.stderr, 'b\n');
    assert.equal(j.doc.sandboxCreated, true);
    assert.match(j.doc.processId, /\S/);
    assert.ok(!(await sandboxIds()).includes(j.doc.sandboxId));
  });

  test('run --timeout: a process that runs too long is killed, exit 124', async () => {
    const sb = await createSandbox();
    const r = await cli(['run', '--sandbox', sb, '--timeout', '1', '-l', 'bash', '-'], { input: 'echo started; sleep 30' });
    expectCode(r, 124);
    assert.equal(r.stdout, 'started\n');
    assert.match(r.stderr, /timed out/);
    assert.ok((await sandboxIds()).includes(sb), 'a given sandbox stays');
    expectCode(await cli(['sandboxes', 'kill', sb]), 0);
  });

  test('Ctrl-C on run kills the sandbox it created (exit 130)', async () => {
    const before = await sandboxIds();
    const run = start(['run', '-'], { input: 'import time\nfor i in range(600):\n    print(i, flush=True); time.sleep(0.1)' });
    await eventually(() => run.stdout.includes('3\n'));
    assert.equal((await sandboxIds()).length, before.length + 1);
    process.kill(-run.child.pid, 'SIGINT'); // the whole job, as a terminal's Ctrl-C does
    const r = await run.done;
    // npx re-raises the signal its child died of: a shell sees 130 either way.
    assert.ok(r.code === 130 || r.signal === 'SIGINT', `exit ${r.code} / ${r.signal}: ${r.stderr}`);
    assert.match(r.stderr, /interrupted/);
    await eventually(async () => (await sandboxIds()).length === before.length, 10_000);
  });

  test('Ctrl-C on run --sandbox kills the process and keeps the sandbox', async () => {
    const sb = await createSandbox();
    const run = start(['run', '--sandbox', sb, '--name', 'interrupted', '-l', 'bash', '-'], { input: 'for i in $(seq 600); do echo $i; sleep 0.1; done' });
    await eventually(() => run.stdout.includes('3\n'));
    process.kill(-run.child.pid, 'SIGINT');
    const r = await run.done;
    assert.ok(r.code === 130 || r.signal === 'SIGINT', `exit ${r.code} / ${r.signal}: ${r.stderr}`);
    const ps = await cliJson(['ps', '--sandbox', sb]);
    assert.equal(ps.doc.find((p) => p.name === 'interrupted')?.status, 'killed');
    assert.ok((await sandboxIds()).includes(sb));
    expectCode(await cli(['sandboxes', 'kill', sb]), 0);
  });
});

describe('background processes: run --background, ps, logs, wait, kill', () => {
  let sb;
  before(async () => {
    sb = await createSandbox('--timeout', '900');
  });
  after(async () => {
    await cli(['sandboxes', 'kill', sb]);
  });

  test('run --background --sandbox prints the process id; wait exits with its code', async () => {
    const r = await cli(['run', '--sandbox', sb, '--background', '--name', 'bg', '-l', 'bash', '-'], {
      input: 'echo out-line; echo err-line >&2; sleep 1; exit 3',
    });
    expectCode(r, 0);
    const pid = r.stdout.trim();
    assert.match(pid, /^proc_\S+$/);

    const w = await cli(['wait', '--sandbox', sb, pid]);
    expectCode(w, 3);
    assert.match(w.stdout, new RegExp(`${pid} failed\\s+exit 3`));
    const wj = await cliJson(['wait', '--sandbox', sb, pid]);
    expectCode(wj, 3);
    assert.equal(wj.doc.status, 'failed');
    assert.equal(wj.doc.stdout, 'out-line\n');

    const logs = await cli(['logs', '--sandbox', sb, pid]);
    expectCode(logs, 0);
    assert.equal(logs.stdout, 'out-line\n');
    assert.equal(logs.stderr, 'err-line\n');
    const lj = await cliJson(['logs', '-s', sb, pid]);
    assert.equal(lj.doc.processId, pid);
    assert.equal(lj.doc.stderr, 'err-line\n');
    assert.equal(lj.doc.exitCode, 3);
  });

  test('run --background --json', async () => {
    const j = await cliJson(['run', '-s', sb, '-b', '-l', 'bash', '-'], { input: 'exit 0' });
    expectCode(j, 0);
    assert.equal(j.doc.sandboxId, sb);
    assert.equal(j.doc.sandboxCreated, false);
    assert.match(j.doc.processId, /^proc_/);
    assert.equal(j.doc.timeout, 300);
    expectCode(await cli(['wait', '-s', sb, j.doc.processId]), 0);
  });

  test('logs -f follows the output live, then ends with the process', async () => {
    const r = await cli(['run', '-s', sb, '-b', '-l', 'bash', '-'], { input: 'for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.5; done; echo done >&2' });
    const pid = r.stdout.trim();
    const follow = start(['logs', '-f', '--sandbox', sb, pid]);
    await eventually(() => follow.stdout.includes('tick 1\n'));
    assert.equal(await processStatus(sb, pid), 'running', 'output arrived while the process ran');
    const f = await follow.done;
    expectCode(f, 0);
    assert.equal(f.stdout, 'tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\n');
    assert.equal(f.stderr, 'done\n');
    const j = await cliJson(['logs', '-f', '-s', sb, pid]);
    assert.equal(j.doc.status, 'completed');
    assert.equal(j.doc.stdout.split('\n').length, 7);
  });

  test('ps shows a table and --json records; kill ends a process (wait then exits 137)', async () => {
    const r = await cli(['run', '-s', sb, '-b', '-n', 'sleeper', '-l', 'bash', '-'], { input: 'sleep 60' });
    const pid = r.stdout.trim();
    const table = await cli(['ps', '--sandbox', sb]);
    expectCode(table, 0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    assert.deepEqual(header.split(/\s{2,}/), ['PROCESS ID', 'NAME', 'STATUS', 'EXIT', 'DURATION']);
    const row = rows.find((l) => l.startsWith(pid));
    assert.match(row, /sleeper\s+running\s+-\s+\d/);
    assert.ok(rows.some((l) => /\bbg\s+failed\s+3\b/.test(l)));

    const ps = await cliJson(['ps', '--sandbox', sb]);
    const rec = ps.doc.find((p) => p.processId === pid);
    assert.equal(rec.sandboxId, sb);
    assert.equal(rec.status, 'running');
    assert.equal(rec.stdout, undefined, 'ps leaves the output out');

    const k = await cli(['kill', '--sandbox', sb, pid]);
    expectCode(k, 0);
    assert.equal(k.stdout, `${pid} killed\n`);
    expectCode(await cli(['wait', '--sandbox', sb, pid]), 137);
    const kj = await cliJson(['kill', '--sandbox', sb, pid]);
    expectCode(kj, 0);
    assert.equal(kj.doc.status, 'killed');
  });

  test('wait --timeout gives up with exit 1 while the process runs on', async () => {
    const pid = (await cli(['run', '-s', sb, '-b', '-l', 'bash', '-'], { input: 'sleep 30' })).stdout.trim();
    const w = await cli(['wait', '--timeout', '1', '-s', sb, pid]);
    expectCode(w, 1);
    assert.match(w.stderr, /still running/);
    assert.equal(await processStatus(sb, pid), 'running');
    expectCode(await cli(['kill', '-s', sb, pid]), 0);
  });

  test('ps without --sandbox lists the processes of every running sandbox', async () => {
    const other = await createSandbox();
    const pid = (await cli(['run', '-s', other, '-b', '-n', 'elsewhere', '-l', 'bash', '-'], { input: 'exit 0' })).stdout.trim();
    expectCode(await cli(['wait', '-s', other, pid]), 0);
    const table = await cli(['ps']);
    expectCode(table, 0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    assert.deepEqual(header.split(/\s{2,}/), ['SANDBOX', 'PROCESS ID', 'NAME', 'STATUS', 'EXIT', 'DURATION']);
    assert.ok(rows.some((l) => new RegExp(`^${other}\\s+${pid}\\s+elsewhere\\s+completed\\s+0\\s`).test(l)), table.stdout);
    assert.ok(rows.some((l) => l.startsWith(`${sb} `)));
    const j = await cliJson(['ps']);
    assert.ok(j.doc.some((p) => p.sandboxId === other && p.processId === pid));
    assert.ok(j.doc.some((p) => p.sandboxId === sb));
    expectCode(await cli(['sandboxes', 'kill', other]), 0);
  });

  test('ps --watch redraws until interrupted', async () => {
    const watch = start(['ps', '--sandbox', sb, '--watch', '--interval', '0.3']);
    await eventually(() => watch.stdout.split('PROCESS ID').length > 3);
    process.kill(-watch.child.pid, 'SIGINT');
    const r = await watch.done;
    assert.ok(r.code === 130 || r.signal === 'SIGINT', `exit ${r.code} / ${r.signal}`);
    assert.match(r.stdout, /sleeper\s+killed/);
    // The bin itself exits 130 (143 on SIGTERM).
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
      const bin = start(['ps', '-s', sb, '-w', '--interval', '0.3'], { direct: true });
      await eventually(() => bin.stdout.includes('PROCESS ID'));
      process.kill(-bin.child.pid, signal);
      expectCode(await bin.done, code);
    }
  });

  test('run --background without --sandbox creates a sandbox, prints both ids, leaves it running', async () => {
    const r = await cli(['run', '--background', '-l', 'bash', '-'], { input: 'echo detached' });
    expectCode(r, 0);
    const [sandboxId, pid, ...rest] = r.stdout.trim().split(' ');
    assert.equal(rest.length, 0);
    assert.ok((await sandboxIds()).includes(sandboxId));
    expectCode(await cli(['wait', '-s', sandboxId, pid]), 0);
    assert.equal((await cli(['logs', '-s', sandboxId, pid])).stdout, 'detached\n');
    const j = await cliJson(['run', '-b', '-l', 'bash', '-'], { input: 'exit 0' });
    assert.equal(j.doc.sandboxCreated, true);
    for (const id of [sandboxId, j.doc.sandboxId]) expectCode(await cli(['sandboxes', 'kill', id]), 0);
    assert.ok(!(await sandboxIds()).includes(sandboxId));
  });
});

describe('sandboxes', () => {
  test('ls, info, kill (table and --json)', async () => {
    const id = await createSandbox('--timeout', '300');
    const ls = await cli(['sandboxes']);
    expectCode(ls, 0);
    const [header, ...rows] = ls.stdout.trimEnd().split('\n');
    assert.deepEqual(header.split(/\s{2,}/), ['SANDBOX ID', 'STATUS', 'TEMPLATE', 'CREATED', 'EXPIRES']);
    assert.ok(rows.some((l) => l.startsWith(id) && /running\s+code-interpreter\s+.+ago\s+in /.test(l)));
    assert.match((await cli(['sandboxes', 'ls'])).stdout, new RegExp(`^${id}\\s+running`, 'm'));
    const lj = await cliJson(['sandboxes', 'ls', '--status', 'running']);
    assert.ok(lj.doc.some((s) => s.sandboxId === id && s.status === 'running'));
    assert.deepEqual((await cliJson(['sandboxes', 'ls', '--status', 'paused'])).doc, []);

    const info = await cli(['sandboxes', 'info', id]);
    expectCode(info, 0);
    assert.match(info.stdout, new RegExp(`^id\\s+${id}$`, 'm'));
    assert.match(info.stdout, /^status\s+running$/m);
    assert.match(info.stdout, /^timeout\s+300s$/m);
    const ij = await cliJson(['sandboxes', 'info', id]);
    assert.equal(ij.doc.sandboxId, id);
    assert.equal(ij.doc.timeoutSeconds, 300);

    const kj = await cliJson(['sandboxes', 'kill', id]);
    expectCode(kj, 0);
    assert.deepEqual(kj.doc, { sandboxId: id, killed: true });
    assert.ok(!(await sandboxIds()).includes(id));
  });
});

describe('paused sandboxes', () => {
  test('info and ps (all sandboxes) leave a paused sandbox paused; kill works on it', async () => {
    const id = await createSandbox();
    await api('POST', `/v1/sandboxes/${id}/pause`);
    const info = await cliJson(['sandboxes', 'info', id]);
    assert.equal(info.doc.status, 'paused');
    assert.match((await cli(['sandboxes', 'info', id])).stdout, /^status\s+paused$/m);
    const ps = await cliJson(['ps']);
    expectCode(ps, 0);
    assert.ok(!ps.doc.some((p) => p.sandboxId === id));
    assert.ok((await cliJson(['sandboxes', 'ls', '--status', 'paused'])).doc.some((s) => s.sandboxId === id));
    assert.equal((await api('GET', `/v1/sandboxes/${id}`)).status, 'paused');
    expectCode(await cli(['sandboxes', 'kill', id]), 0);
    assert.ok(!(await sandboxIds()).includes(id));
  });
});

describe('errors and exit codes', () => {
  test('an unknown sandbox or process exits 3', async () => {
    const sb = await createSandbox();
    const cases = [
      ['sandboxes', 'info', 'sb_nope'],
      ['sandboxes', 'kill', 'sb_nope'],
      ['ps', '--sandbox', 'sb_nope'],
      ['run', '--sandbox', 'sb_nope', '-'],
      ['logs', '--sandbox', sb, 'proc_nope'],
      ['logs', '-f', '--sandbox', sb, 'proc_nope'],
      ['wait', '--sandbox', sb, 'proc_nope'],
      ['kill', '--sandbox', sb, 'proc_nope'],
    ];
    for (const args of cases) {
      const r = await cli(args, { input: 'print(1)' });
      expectCode(r, 3);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /not found/i, args.join(' '));
      const j = await cliJson(args, { input: 'print(1)' });
      expectCode(j, 3);
      assert.match(j.doc.error.type, /NotFoundError$/);
      assert.match(j.doc.error.code, /NOT_FOUND/);
      assert.equal(j.doc.error.status ?? 404, 404);
    }
    expectCode(await cli(['create', '--template', 'no-such-template']), 3);
    expectCode(await cli(['sandboxes', 'kill', sb]), 0);
  });

  test('a wrong or missing API key exits 4 (flag and environment)', async () => {
    for (const [args, env] of [
      [['sandboxes', '--api-key', 'wrong-key'], {}],
      [['sandboxes'], { SANDLOT_API_KEY: 'wrong-key' }],
      [['create'], { SANDLOT_API_KEY: undefined }],
      [['run', '-'], { SANDLOT_API_KEY: 'wrong-key' }],
    ]) {
      const r = await cli(args, { env, input: 'print(1)' });
      expectCode(r, 4);
      assert.match(r.stderr, /API key/);
      const j = await cliJson(args, { env, input: 'print(1)' });
      expectCode(j, 4);
      assert.equal(j.doc.error.type, 'AuthenticationError');
    }
    // HOPX_API_KEY is the fallback, as in the SDK; --api-key wins over the environment.
    expectCode(await cli(['sandboxes'], { env: { SANDLOT_API_KEY: undefined, HOPX_API_KEY: server.apiKey } }), 0);
    expectCode(await cli(['sandboxes', '--api-key', server.apiKey], { env: { SANDLOT_API_KEY: 'wrong-key' } }), 0);
  });

  test('--url wins over SANDLOT_URL; an unreachable server exits 1', async () => {
    const dead = 'http://127.0.0.1:9';
    const r = await cli(['sandboxes'], { env: { SANDLOT_URL: dead } });
    expectCode(r, 1);
    assert.match(r.stderr, /127\.0\.0\.1:9/);
    const j = await cliJson(['sandboxes'], { env: { SANDLOT_URL: dead } });
    assert.equal(j.doc.error.type, 'NetworkError');
    expectCode(await cli(['sandboxes', '--url', server.url], { env: { SANDLOT_URL: dead } }), 0);
  });

  test('a server-side refusal (unknown language) exits 2 and removes the sandbox run created', async () => {
    const before = await sandboxIds();
    const r = await cli(['run', '--language', 'cobol', '-'], { input: 'x' });
    expectCode(r, 2);
    assert.match(r.stderr, /language/);
    assert.deepEqual(await sandboxIds(), before);
  });
});

describe('terminal output', () => {
  // util-linux `script` gives the command a pseudo-terminal.
  const script = ['/usr/bin/script', '/bin/script'].find((p) => fs.existsSync(p));
  const bin = () => path.join(project, 'node_modules/.bin/sandlot');
  const tty = (args, env) => execFileSync(script, ['-qec', `${bin()} ${args}`, '/dev/null'], { cwd: project, env: cliEnv(env), encoding: 'utf8' });

  test('colours and a spinner on a TTY, neither with NO_COLOR', { skip: !script && 'no `script` to make a TTY' }, async () => {
    assert.match(tty('sandboxes ls', {}), /\x1b\[1mSANDBOX ID/);
    assert.doesNotMatch(tty('sandboxes ls', { NO_COLOR: '1' }), /\x1b/);
    fs.writeFileSync(path.join(project, 'slow.sh'), 'sleep 1; echo finished');
    const live = tty('run slow.sh', {});
    assert.match(live, /\r\x1b\[2K\x1b\[36m[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\x1b\[39m Running/, 'the spinner turns while the process is silent');
    assert.match(live, /\r\x1b\[2Kfinished\r?\n/, 'and is wiped before the output');
    const plain = tty('run slow.sh', { NO_COLOR: '1' });
    assert.doesNotMatch(plain, /\x1b|Running/);
    assert.match(plain, /finished/);
  });
});

describe('exec', () => {
  test('a shell line streams its output and exits with its code', async () => {
    const sb = await createSandbox();
    const r = await cli(['exec', '--sandbox', sb, '--', 'echo out; echo err >&2; exit 5']);
    expectCode(r, 5);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    await cli(['sandboxes', 'kill', sb]);
  });

  test('several words are a program and its arguments; --cwd, --env; --json is one document', async () => {
    const sb = await createSandbox();
    const r = await cli(['exec', '--json', '-s', sb, '-w', '/tmp', '-e', 'X=1', '--', 'sh', '-c', 'echo "$X $(pwd) $0"', 'a b']);
    expectCode(r, 0);
    r.doc = JSON.parse(r.stdout);
    assert.equal(r.doc.stdout, '1 /tmp a b\n');
    assert.deepEqual([r.doc.sandboxId, r.doc.status, r.doc.exitCode, r.doc.sandboxCreated], [sb, 'completed', 0, false]);
    await cli(['sandboxes', 'kill', sb]);
  });

  test('without --sandbox it runs in a sandbox of its own, removed afterwards', async () => {
    const before = await sandboxIds();
    const r = await cli(['exec', '--', 'node -v']);
    expectCode(r, 0);
    assert.match(r.stdout, /^v\d+/);
    assert.deepEqual((await sandboxIds()).filter((id) => !before.includes(id)), []);
  });

  test('a timeout exits 124; a missing command is a usage error', async () => {
    const sb = await createSandbox();
    expectCode(await cli(['exec', '-s', sb, '--timeout', '1', '--', 'sleep 30']), 124);
    const usage = await cli(['exec', '-s', sb]);
    expectCode(usage, 2);
    assert.match(usage.stderr, /missing COMMAND/);
    await cli(['sandboxes', 'kill', sb]);
  });
});
