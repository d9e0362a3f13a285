// The browser examples in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded), against a real sandlotd:
// - examples/browser, the Vite playground: its backend creates the sandbox with the API key,
//   the page calls sandlotd's agent cross-origin (sandlotd started with --cors-origins), runs
//   code, follows the output live, kills a process. Once as a production build, once through
//   the Vite dev server.
// - examples/esm-no-bundler, the plain <script type="module"> page.
// Screenshots go to target/test-output/. Without chromium the tests skip, except on CI
// (`CI` set), where they fail.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { freePort, startServer } from './harness.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = process.env.SANDLOT_REPO ?? path.resolve(here, '../..');
const outDir = path.join(repo, 'target/test-output');
const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

if (!chromiumPath && process.env.CI) {
  test('chromium is installed (required on CI)', () => {
    assert.fail('no /usr/bin/chromium: scripts/setup.sh installs Debian chromium and chromium-driver');
  });
}
const skip = !chromiumPath && 'no chromium installed (scripts/setup.sh installs it)';

/** A fresh headless Chromium with its own empty profile; `close()` removes the profile. */
async function launch() {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  return {
    page,
    problems,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Starts a Node script; resolves with it and the first match of `ready` in its stdout. */
async function startScript(args, env, ready) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = output.match(ready);
    if (m) return { child, match: m, exited, output: () => output, stop: () => (child.exitCode === null && child.kill('SIGTERM'), exited) };
    if (child.exitCode !== null) throw new Error(`${args[0]} exited (${child.exitCode}): ${output}`);
    if (Date.now() > deadline) throw new Error(`${args[0]} did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function screenshot(page, name) {
  fs.mkdirSync(outDir, { recursive: true });
  return page.screenshot({ path: path.join(outDir, name), fullPage: true });
}

const playground = path.join(here, 'examples/browser');
let sandlotd;
let buildPort;
let devPort;

before(async () => {
  if (skip) return;
  // Both playground origins (build and dev server) may call the agent; nothing else may.
  buildPort = await freePort();
  devPort = await freePort();
  sandlotd = await startServer(['--cors-origins', `http://127.0.0.1:${buildPort},http://127.0.0.1:${devPort}`]);
});

after(async () => {
  await sandlotd?.stop();
});

test('playground (vite build): run, live output, language picker, kill; the page never holds the API key', { skip, timeout: 180_000 }, async () => {
  await promisify(execFile)(path.join(repo, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], { cwd: playground, timeout: 120_000 });
  const dist = path.join(playground, 'dist');
  const assets = fs.readdirSync(path.join(dist, 'assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `the wasm is an asset of the build: ${assets}`);

  const backend = await startScript(
    [path.join(playground, 'server.mjs'), '--port', String(buildPort), '--dist', dist],
    { SANDLOT_URL: sandlotd.url, SANDLOT_API_KEY: sandlotd.apiKey },
    /playground on (\S+?)\/? /,
  );
  const origin = backend.match[1];
  const browser = await launch();
  const { page } = browser;
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), headers: r.headers() }));
  try {
    await page.goto(`${origin}/`);
    await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
    assert.match(await page.textContent('#status'), /^sandbox \S+ · agent 127\.0\.0\.1:/);
    assert.equal(await page.locator('#status.error').count(), 0, 'no CORS warning from the backend');

    // Python that prints lines (and one to stderr): they appear, then the exit note.
    await page.fill('#code', 'import sys, time\nfor i in range(3):\n    print(f"line {i}")\n    time.sleep(0.2)\nprint("to stderr", file=sys.stderr)\n');
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('output').textContent.includes('[completed, exit code 0]'), null, { timeout: 30_000 });
    const output = await page.textContent('#output');
    assert.match(output, /^line 0\nline 1\nline 2\n/);
    // (stderr is red, and may come in more than one chunk: print writes the text and the newline.)
    assert.equal(await page.$$eval('#output .stderr', (spans) => spans.map((s) => s.textContent).join('')), 'to stderr\n');
    await page.waitForSelector('tr[data-status="completed"]', { timeout: 10_000 });

    // The language picker: a Bash run.
    await page.selectOption('#language', 'bash');
    await page.fill('#code', 'echo "bash says $((6 * 7))"');
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('output').textContent.includes('bash says 42'), null, { timeout: 30_000 });

    // A long process: its first line arrives live while it runs; its Kill button ends it.
    await page.selectOption('#language', 'python');
    await page.fill('#code', 'import time\nprint("long job started")\ntime.sleep(300)\nprint("never")\n');
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('output').textContent.includes('long job started'), null, { timeout: 30_000 });
    const row = page.locator('tr[data-status="running"]');
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.count(), 1);
    const processId = await row.getAttribute('data-process-id');
    await screenshot(page, 'playground-running.png');
    await row.locator('button.kill').click();
    await page.waitForSelector(`tr[data-process-id="${processId}"][data-status="killed"]`, { timeout: 15_000 });
    await page.waitForFunction(() => document.getElementById('output').textContent.includes('[killed'), null, { timeout: 15_000 });
    assert.equal(await page.locator(`tr[data-process-id="${processId}"] button.kill`).count(), 0, 'no Kill button once killed');
    assert.equal(await page.locator('tbody tr').count(), 3);
    // Selecting an ended process replays its output.
    await page.locator('tbody tr', { hasText: 'python #1' }).click();
    await page.waitForFunction(() => document.getElementById('output').textContent.startsWith('line 0\nline 1\nline 2\n'), null, { timeout: 15_000 });
    await page.locator(`tr[data-process-id="${processId}"]`).click();
    await page.waitForFunction(() => document.getElementById('output').textContent.includes('[killed'), null, { timeout: 15_000 });
    await screenshot(page, 'playground.png');

    // The page talked to the agent directly (cross-origin) and never to the control plane,
    // and no request of the page carried the API key.
    assert.ok(requests.some((r) => r.url.startsWith(`${sandlotd.url}/sandboxes/`)), 'the page called the agent directly');
    assert.deepEqual(requests.filter((r) => r.url.startsWith(`${sandlotd.url}/v1/`)).map((r) => r.url), []);
    assert.deepEqual(requests.filter((r) => JSON.stringify(r.headers).includes(sandlotd.apiKey)).map((r) => r.url), []);
    assert.deepEqual(browser.problems, []);
  } finally {
    await browser.close();
    await backend.stop();
  }
});

test('playground (vite build): file browser (upload, list, download, delete), terminal pane, preview link', { skip, timeout: 180_000 }, async () => {
  const dist = path.join(playground, 'dist');
  if (!fs.existsSync(path.join(dist, 'index.html'))) {
    await promisify(execFile)(path.join(repo, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], { cwd: playground, timeout: 120_000 });
  }
  const backend = await startScript(
    [path.join(playground, 'server.mjs'), '--port', String(buildPort), '--dist', dist],
    { SANDLOT_URL: sandlotd.url, SANDLOT_API_KEY: sandlotd.apiKey },
    /playground on (\S+?)\/? /,
  );
  const browser = await launch();
  const { page } = browser;
  try {
    await page.goto(`${backend.match[1]}/`);
    await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
    const sandboxId = (await page.textContent('#status')).match(/^sandbox (\S+)/)[1];
    // What the page did, checked from here with the API key (which the page never has).
    const { Sandbox } = await import('sandlot');
    const sandbox = await Sandbox.connect(sandboxId, { baseURL: sandlotd.url, apiKey: sandlotd.apiKey });

    // Upload: the file lands in the directory shown, and is listed.
    const content = 'uploaded from the browser\n'.repeat(1000);
    await page.setInputFiles('#upload', { name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from(content) });
    await page.waitForSelector('#files tr[data-name="hello.txt"]', { timeout: 15_000 });
    assert.equal(await sandbox.files.read('/workspace/hello.txt'), content);
    assert.equal(await page.textContent('#files tr[data-name="hello.txt"] td:nth-child(2)'), String(content.length));

    // Into a directory and back up.
    await sandbox.files.write('/workspace/sub/inner.txt', 'inner');
    await page.click('#reload');
    await page.click('#files tr[data-name="sub"] button.open');
    await page.waitForSelector('#files tr[data-name="inner.txt"]', { timeout: 10_000 });
    assert.equal(await page.textContent('#cwd'), '/workspace/sub');
    await page.click('#up');
    await page.waitForSelector('#files tr[data-name="hello.txt"]', { timeout: 10_000 });

    // Download: the browser saves the file's exact bytes.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#files tr[data-name="hello.txt"] button.download')]);
    assert.equal(download.suggestedFilename(), 'hello.txt');
    assert.equal(fs.readFileSync(await download.path(), 'utf8'), content);

    // Delete.
    await page.click('#files tr[data-name="hello.txt"] button.delete');
    await page.waitForSelector('#files tr[data-name="hello.txt"]', { state: 'detached', timeout: 10_000 });
    assert.equal(await sandbox.files.exists('/workspace/hello.txt'), false);

    // Terminal: a line typed runs in the shell; its output shows; exit ends it with its code.
    await page.waitForSelector('body[data-terminal="ready"]', { timeout: 15_000 });
    await page.fill('#terminal-input', 'echo "term-$((6 * 7))"; stty size');
    await page.press('#terminal-input', 'Enter');
    await page.waitForFunction(() => /term-42[\s\S]*30 100/.test(document.getElementById('terminal').textContent), null, { timeout: 15_000 });
    await screenshot(page, 'playground-files-terminal.png');
    await page.fill('#terminal-input', 'exit 4');
    await page.press('#terminal-input', 'Enter');
    await page.waitForFunction(() => /exited \(4\)/.test(document.getElementById('terminal-state').textContent), null, { timeout: 15_000 });

    // Preview: a server started in the sandbox opens in the browser through the page's link.
    await sandbox.files.write('/workspace/site/index.html', '<title>in the sandbox</title><h1 id="hi">served from the sandbox</h1>');
    const web = await sandbox.commands.run('python3 -m http.server 8000 --bind 127.0.0.1', { background: true, cwd: '/workspace/site' });
    try {
      await page.fill('#preview-port', '8000');
      await page.click('#preview');
      await page.waitForSelector('#preview-link[href]', { timeout: 15_000 });
      const href = await page.getAttribute('#preview-link', 'href');
      assert.match(href, new RegExp(`/sandboxes/${sandboxId}/ports/8000/\\?preview_token=`));
      const tab = await page.context().newPage();
      let opened = false;
      for (let i = 0; i < 50 && !opened; i++) {
        const res = await tab.goto(href);
        opened = res.status() === 200;
        if (!opened) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await tab.textContent('#hi'), 'served from the sandbox');
      await screenshot(tab, 'playground-preview.png');
      await tab.close();
    } finally {
      await web.kill().catch(() => {});
    }
    assert.deepEqual(browser.problems, []);
  } finally {
    await browser.close();
    await backend.stop();
  }
});

test('playground (vite dev server): the page loads the wasm and runs code', { skip, timeout: 120_000 }, async () => {
  const backend = await startScript(
    [path.join(playground, 'server.mjs'), '--port', String(devPort)],
    { SANDLOT_URL: sandlotd.url, SANDLOT_API_KEY: sandlotd.apiKey },
    /playground on (\S+?)\/? /,
  );
  const browser = await launch();
  const { page } = browser;
  try {
    await page.goto(`${backend.match[1]}/`);
    await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
    await page.fill('#code', 'print("hello from the dev server")');
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('output').textContent.includes('hello from the dev server\n'), null, { timeout: 30_000 });
    await page.waitForSelector('tr[data-status="completed"]', { timeout: 10_000 });
    assert.deepEqual(browser.problems, []);
  } finally {
    await browser.close();
    await backend.stop();
  }
});

test('the page without a --cors-origins entry for it gets a clear warning', { skip, timeout: 60_000 }, async () => {
  const port = await freePort(); // not in sandlotd's --cors-origins
  const backend = await startScript(
    [path.join(playground, 'server.mjs'), '--port', String(port), '--dist', path.join(playground, 'dist')],
    { SANDLOT_URL: sandlotd.url, SANDLOT_API_KEY: sandlotd.apiKey },
    /playground on (\S+?)\/? /,
  );
  const browser = await launch();
  try {
    await browser.page.goto(`${backend.match[1]}/`);
    await browser.page.waitForSelector('#status.error', { timeout: 30_000 });
    assert.match(await browser.page.textContent('#status'), /start it with --cors-origins http:\/\/127\.0\.0\.1:\d+/);
    // And the browser indeed refuses the agent's answers: the SDK reports a NetworkError.
    await browser.page.waitForFunction(() => document.getElementById('status').textContent.includes('listProcesses failed'), null, { timeout: 15_000 });
    assert.match(await browser.page.textContent('#status'), /NetworkError \(NETWORK_ERROR\)/);
  } finally {
    await browser.close();
    await backend.stop();
  }
});

test('examples/esm-no-bundler: a plain <script type=module> page, session from its backend', { skip, timeout: 120_000 }, async () => {
  const server = await startServer();
  const example = await startScript(
    [path.join(here, 'examples/esm-no-bundler/server.mjs'), '--port', '0', '--once'],
    { SANDLOT_URL: server.url, SANDLOT_API_KEY: server.apiKey },
    /listening on (\S+)/,
  );
  const browser = await launch();
  try {
    await browser.page.goto(example.match[1]);
    await browser.page.waitForFunction(() => /step 2/.test(document.getElementById('log').textContent), null, { timeout: 60_000 });
    const code = await Promise.race([example.exited, new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
    assert.equal(code, 0, example.output());
    assert.match(example.output(), /page reported: \{"ok":true/);
    const log = await browser.page.textContent('#log');
    assert.match(log, /^connected to \S+\nrunCode: python 3\.\d+\n/);
    await screenshot(browser.page, 'esm-no-bundler.png');
    assert.deepEqual(browser.problems, []);
  } finally {
    await browser.close();
    await example.stop();
    await server.stop();
  }
});
