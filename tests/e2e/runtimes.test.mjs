// Every runtime the package supports runs one smoke scenario (tests/runtimes/scenario.mjs:
// Sandbox.create, runCode, runCodeBackground + handle.wait(), a direct `for await` over
// runCodeStream, listProcesses with filters, handle.kill(), files write (text, Blob, stream),
// read, list and commands.run, sandbox.kill) against one real
// sandlotd: Node.js ESM and CommonJS, Deno, Bun, headless Chromium and Cloudflare's workerd.
// pkg/ is packed with `npm pack` and the tarball installed into a fresh project, the runtime
// scripts (tests/runtimes/) copied next to it, and each script is run there in its own
// process with a time limit. A script prints one `SMOKE {report}` line per package entry it
// tried; a test fails with the runtime's whole output when the scenario failed, the script
// exited non-zero, or a report is missing.
//
// Deno, Bun and workerd come from the repository's devDependencies (npm packages whose
// binaries ship inside them), Chromium from Debian (scripts/setup.sh installs them all). A
// runtime that is not installed skips here, and fails on CI (`CI` set).
// Run it alone with `node --test tests/e2e/runtimes.test.mjs` (needs a built pkg/ and sandlotd).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { freePort, startServer } from './harness.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '../..');
process.env.SANDLOT_REPO ??= repo; // where harness.mjs finds sandlotd
const scripts = path.join(repo, 'tests/runtimes');
const bin = (name) => path.join(repo, 'node_modules/.bin', name);
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const TIME_LIMIT_MS = 120_000;
// Version commands: stdout only (Debian's chromium wrapper prints a shell warning on stderr).
const QUIET = { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] };

/**
 * The runtimes: how to run each one's script, the binary it needs (absent: not installed),
 * how to ask its version, and which package entry each SMOKE report must name, in order.
 */
const RUNTIMES = [
  {
    name: 'Node.js, ESM',
    command: process.execPath,
    args: ['node.mjs'],
    version: () => `Node.js ${process.version}`,
    entries: [/\/dist\/node\/index\.mjs$/],
  },
  {
    name: 'Node.js, CommonJS',
    command: process.execPath,
    args: ['node.cjs'],
    version: () => `Node.js ${process.version}`,
    entries: [/\/dist\/node\/index\.cjs$/],
  },
  {
    name: 'Deno',
    needs: bin('deno'),
    install: 'npm ci (devDependency `deno`)',
    command: bin('deno'),
    args: ['run', '--no-prompt', '--no-lock', '--allow-net=127.0.0.1', '--allow-read', '--allow-env=SANDLOT_URL,SANDLOT_API_KEY', 'deno.mjs'],
    version: () => execFileSync(bin('deno'), ['--version'], QUIET).split('\n')[0],
    entries: [/\/dist\/web\/index\.js$/, /\/dist\/node\/index\.mjs$/],
  },
  {
    name: 'Bun',
    needs: bin('bun'),
    install: 'npm ci (devDependency `bun`)',
    command: bin('bun'),
    args: ['run', 'bun.mjs'],
    version: () => `Bun ${execFileSync(bin('bun'), ['--version'], QUIET).trim()}`,
    entries: [/\/dist\/web\/index\.js$/, /\/dist\/node\/index\.mjs$/],
  },
  {
    name: 'Chromium (headless)',
    needs: chromium ?? '/usr/bin/chromium',
    install: 'scripts/setup.sh (Debian chromium)',
    command: process.execPath,
    args: ['chromium.mjs'],
    version: () => execFileSync(chromium, ['--version'], QUIET).trim(),
    entries: [/\/sandlot\/index\.js$/],
  },
  {
    name: 'workerd',
    needs: bin('workerd'),
    install: 'npm ci (devDependency `workerd`)',
    command: process.execPath,
    args: ['workerd.mjs'],
    env: { WORKERD: bin('workerd') },
    version: () => execFileSync(bin('workerd'), ['--version'], QUIET).trim(),
    entries: [/dist\/web\/index\.js/],
  },
];

let server;
let project; // the temporary project the tarball is installed in, with the runtime scripts
let pagePort; // the Chromium page's port, allowed by sandlotd's --cors-origins

before(async () => {
  const pkgDir = path.join(repo, 'pkg');
  if (!fs.existsSync(path.join(pkgDir, 'package.json'))) throw new Error('pkg/ is missing: run scripts/build-sdk.sh');
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-runtimes-'));
  const sh = (cmd, args) => execFileSync(cmd, args, { cwd: project, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const tarball = path.join(project, sh('npm', ['pack', '--silent', '--pack-destination', project, pkgDir]).trim().split('\n').pop());
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'sandlot-runtimes', private: true, type: 'module' }));
  sh('npm', ['install', '--silent', '--no-audit', '--no-fund', '--no-package-lock', tarball]);
  for (const f of fs.readdirSync(scripts)) if (/\.(mjs|cjs)$/.test(f)) fs.copyFileSync(path.join(scripts, f), path.join(project, f));
  pagePort = await freePort();
  server = await startServer(['--cors-origins', `http://127.0.0.1:${pagePort}`]);
});

after(async () => {
  await server?.stop();
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

/** Runs a runtime's script in the project (its own process group); kills it at the limit. */
function runScript(runtime) {
  const env = {
    ...process.env,
    SANDLOT_URL: server.url,
    SANDLOT_API_KEY: server.apiKey,
    SANDLOT_REPO: repo,
    SANDLOT_PAGE_PORT: String(pagePort),
    DENO_NO_UPDATE_CHECK: '1',
    NO_COLOR: '1',
    ...runtime.env,
  };
  delete env.HOPX_API_KEY;
  const started = Date.now();
  const child = spawn(runtime.command, runtime.args, { cwd: project, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  }, TIME_LIMIT_MS);
  return new Promise((resolve) => {
    child.once('error', (e) => {
      output += `\n${e}`;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output, timedOut, ms: Date.now() - started });
    });
  });
}

for (const runtime of RUNTIMES) {
  const missing = runtime.needs && !fs.existsSync(runtime.needs);
  // Not installed: a skip on a developer's machine, a failure on CI (setup installs it).
  const skip = missing && !process.env.CI && `${runtime.needs} is missing (${runtime.install} installs it)`;
  test(`smoke scenario in ${runtime.name}`, { skip, timeout: TIME_LIMIT_MS + 30_000 }, async (t) => {
    assert.ok(!missing, `${runtime.name}: ${runtime.needs} is missing; ${runtime.install} installs it`);
    let version;
    try {
      version = runtime.version();
    } catch (e) {
      assert.fail(`${runtime.name} is installed at ${runtime.needs} but does not run: ${e.message}`);
    }
    const run = await runScript(runtime);
    const reports = run.output
      .split('\n')
      .filter((l) => l.startsWith('SMOKE '))
      .map((l) => {
        try {
          return JSON.parse(l.slice('SMOKE '.length));
        } catch {
          return { ok: false, entry: '?', failedStep: '?', error: `an unreadable report: ${l}` };
        }
      });
    const why = run.timedOut
      ? `did not finish within ${TIME_LIMIT_MS / 1000} s`
      : run.code !== 0
        ? `exited with ${run.code ?? run.signal}`
        : reports.length !== runtime.entries.length
          ? `printed ${reports.length} report(s), expected ${runtime.entries.length}`
          : reports.find((r) => !r.ok)
            ? 'the scenario failed'
            : null;
    const failed = reports.find((r) => !r.ok);
    if (why) {
      assert.fail(
        `${runtime.name} (${version}) ${why}${failed ? ` at "${failed.failedStep}" on ${failed.entry}: ${failed.error}` : ''}\n` +
          `--- ${runtime.command} ${runtime.args.join(' ')} (in ${project}) ---\n${run.output}`,
      );
    }
    reports.forEach((r, i) => assert.match(r.entry, runtime.entries[i], `${runtime.name}: report ${i + 1} is for an unexpected entry`));
    t.diagnostic(`${version}; ${run.ms} ms in all; scenario ${reports.map((r) => `${r.ms} ms (${r.entry.replace(/^.*node_modules\/sandlot\//, '').replace(/^https?:\/\/[^/]+/, '')})`).join(', ')}`);
  });
}
