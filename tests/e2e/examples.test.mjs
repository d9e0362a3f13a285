// Every example script runs to completion against a real sandlotd, using the installed
// package exactly as a user would (`import ... from 'sandlot'`), and the TypeScript example
// type-checks under --strict and runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { startServer } from './harness.mjs';

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);
const examples = path.join(here, 'examples');
const tsc = path.join(process.env.SANDLOT_REPO, 'node_modules/.bin/tsc');

let server;
let env;
before(async () => {
  server = await startServer();
  env = { ...process.env, SANDLOT_URL: server.url, SANDLOT_API_KEY: server.apiKey };
});
after(() => server?.stop());

const expected = {
  'background-start.mjs': /Process ID: \S+[\s\S]*Timeout: 300s[\s\S]*Final status: completed/,
  'background-status.mjs': /completed, exit code 0[\s\S]*tick 2/,
  'background-named.mjs': /data-download: completed[\s\S]*model-training: completed[\s\S]*report: completed/,
  'background-env.mjs': /SEED = 42[\s\S]*APP_MODE = example/,
  'background-timeout.mjs': /Status: timeout/,
  'complete-monitor.mjs': /Status: running[\s\S]*Status: completed\nOutput:\n[\s\S]*all steps done/,
  'sync-execution.mjs': /python: 5050[\s\S]*javascript: 2,4,6[\s\S]*bash: hello/,
  'kill-process.mjs': /Status now: killed[\s\S]*ProcessNotFoundError/,
  'stream-output.mjs': /started proc_\S+\n\[stdout\] progress 1\/3\n\[stdout\] progress 2\/3\n\[stdout\] progress 3\/3\n\[stderr\] a warning\nexit: completed \(code 0\)/,
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
    assert.match(stdout, /connect to a missing sandbox: no such sandbox/);
  });
});
