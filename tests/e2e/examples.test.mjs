// Every example script runs to completion against a real sandlotd, using the installed
// package exactly as a user would (`import ... from 'sandlot'`), and the TypeScript example
// type-checks under --strict and runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { callbackHost, startServer } from './harness.mjs';

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);
const examples = path.join(here, 'examples');
const tsc = path.join(process.env.SANDLOT_REPO, 'node_modules/.bin/tsc');

let server;
let env;
before(async () => {
  // webhook-receiver.mjs listens on `callbackHost`: the operator allows that callback host.
  server = await startServer(['--webhook-allow-hosts', callbackHost]);
  env = { ...process.env, WEBHOOK_HOST: callbackHost, SANDLOT_URL: server.url, SANDLOT_API_KEY: server.apiKey, CHART_PNG: path.join(os.tmpdir(), `sandlot-${process.pid}-sales-chart.png`) };
});
after(() => server?.stop());

const expected = {
  'background-start.mjs': /Process ID: \S+[\s\S]*Timeout: 300s[\s\S]*Final status: completed/,
  'background-status.mjs': /completed, exit code 0[\s\S]*tick 2/,
  'background-named.mjs': /data-download: completed[\s\S]*model-training: completed[\s\S]*report: completed/,
  'background-env.mjs': /SEED = 42[\s\S]*APP_MODE = example/,
  'background-timeout.mjs': /Status: timeout/,
  'complete-monitor.mjs': /Status: running[\s\S]*Status: completed\nOutput:\n[\s\S]*all steps done/,
  'complete-monitor-wait.mjs': /^Started process proc_\S+ \(status: \w+, timeout: 300s\)\nStatus: completed \(exit code 0, [\d.]+s\)\nOutput:\nstep 1\/5\nstep 2\/5\nstep 3\/5\nstep 4\/5\nstep 5\/5\nall steps done\n$/,
  // stdout lines in order, each printed live (timestamped); the stderr line somewhere between.
  'complete-monitor-stream.mjs': /^Started process proc_\S+ [^\n]*\n(?:[\d:.]+ \[stderr\] halfway: a warning\n)?[\d:.]+ \[stdout\] step 1\/5\n[\s\S]*\[stdout\] step 5\/5\n[\s\S]*\[stdout\] all steps done\n(?:[\d:.]+ \[stderr\] halfway: a warning\n)?Status: completed \(exit code 0\)\n$/,
  'webhook-receiver.mjs': /^Receiver listening on http:\/\/[\d.]+:\d+\/hooks\/sandlot\nAccepted: process proc_\S+ \(status: \w+\)\nSignature verified for job-42\nResult: completed, exit code 0, stdout: 5050\n$/,
  'background-callbacks.mjs': /^started proc_\S+ \(\w+\)\n\[stdout\] tick 1\n\[stdout\] tick 2\n\[stdout\] tick 3\n\[stderr\] careful\nexit: completed \(code 0\)\n$/,
  'sync-execution.mjs': /python: 5050[\s\S]*javascript: 2,4,6[\s\S]*bash: hello/,
  'kill-process.mjs': /Status now: killed[\s\S]*ProcessNotFoundError/,
  'chart.mjs': /^Totals: \{'north': 945, 'south': 825\}\nMonthly table: an HTML table with 6 rows\nSaved \S*sales-chart\.png \(\d+ bytes, \d{3}x\d{3} PNG\)\n$/,
  'stream-output.mjs': /started proc_\S+\n\[stdout\] progress 1\/3\n\[stdout\] progress 2\/3\n\[stdout\] progress 3\/3\n\[stderr\] a warning\nexit: completed \(code 0\)/,
};

// Checks a regex cannot express well.
const alsoCheck = {
  // Printed live: the first line appeared well before the last (the task takes 2.5 s).
  'complete-monitor-stream.mjs': (stdout) => {
    const at = (text) => {
      const hms = stdout.match(new RegExp(`([\\d:.]+) \\[\\w+\\] ${text}`))[1].split(':').map(Number);
      return (hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1000;
    };
    assert.ok(at('all steps done') - at('step 1/5') > 1500, `not live:\n${stdout}`);
    assert.equal(stdout.match(/halfway: a warning/g).length, 1);
  },
};

describe('example scripts', () => {
  const scripts = fs.readdirSync(examples).filter((f) => f.endsWith('.mjs'));

  test('every example has an expectation here', () => {
    assert.deepEqual(scripts.sort(), Object.keys(expected).sort());
  });

  for (const script of Object.keys(expected)) {
    test(`${script} runs to completion`, async () => {
      const { stdout } = await run(process.execPath, [path.join(examples, script)], { env, timeout: 120_000 });
      assert.match(stdout, expected[script]);
      alsoCheck[script]?.(stdout);
    });
  }

  test('every example killed the sandbox it created', async () => {
    const res = await fetch(`${server.url}/v1/sandboxes`, { headers: { 'X-API-Key': server.apiKey } });
    const body = await res.json();
    assert.deepEqual(body.data.filter((s) => s.status === 'running').map((s) => s.id), []);
  });
});

describe('TypeScript', () => {
  const project = path.join(examples, 'typescript');

  test('tsc --noEmit --strict passes on the example that calls every method', async () => {
    await run(tsc, ['-p', project, '--noEmit', '--strict'], { timeout: 120_000 });
  });

  test('negative type tests: private constructor, closed unions, optional fields, checked options', async () => {
    await run(
      tsc,
      ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
        '--lib', 'es2022,esnext.disposable,dom', '--types', 'node', path.join(here, 'types-check.ts')],
      { timeout: 120_000 },
    );
  });

  test('the TypeScript example runs', async () => {
    const out = path.join(here, 'ts-out');
    await run(tsc, ['-p', project, '--noEmit', 'false', '--outDir', out], { timeout: 120_000 });
    fs.writeFileSync(path.join(out, 'package.json'), '{"type":"module"}');
    const { stdout } = await run(process.execPath, [path.join(out, 'all-methods.js')], { env, timeout: 120_000 });
    assert.match(stdout, /from-a-token-only-client/);
    assert.match(stdout, /callbacks of proc_\S+: 2 line\(s\), completed \(exit 0\)/);
    assert.match(stdout, /connect to a missing sandbox: no such sandbox/);
    assert.match(stdout, /context python: 42 \(\d+ contexts\)\nfresh: 1 no error/);
    assert.match(stdout, /preview until \S+, host true/);
  });
});
