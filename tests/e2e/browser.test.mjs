// The package in a real browser: a Vite production build of a tiny app that imports
// 'sandlot' (so the bundler picks the `default` export: web target, lazy wasm init), served
// to headless Chromium, driving a real sandlotd. The page and the API share one origin (a
// small server serves the build and forwards /v1 and /sandboxes to sandlotd, which is told
// that origin with --public-url), and the page reports its results with a POST.
// The examples' pages (playground, no-bundler page) are in browser-playground.test.mjs.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { startServer } from './harness.mjs';

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);
const app = path.join(here, 'vite-app');
const vite = path.join(process.env.SANDLOT_REPO, 'node_modules/.bin/vite');
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
// Without chromium the browser test skips, except on CI, where a skip would hide a gap.
const skip = !chromium && !process.env.CI && 'no chromium installed (scripts/setup.sh installs it)';

const MAIN_JS = `
import { Sandbox, ProcessNotFoundError, SandlotError } from 'sandlot';

async function main() {
  const key = new URLSearchParams(location.search).get('key');
  const sandbox = await Sandbox.create({ baseURL: location.origin, apiKey: key });
  const sync = await sandbox.runCode('print(6 * 7)');
  const bg = await sandbox.runCodeBackground('print("from the background")', { name: 'browser-job' });
  const done = await sandbox.waitForProcess(bg.processId, { intervalMs: 100 });
  let typedError = null;
  try {
    await sandbox.getProcess('proc_missing');
  } catch (e) {
    typedError = { processNotFound: e instanceof ProcessNotFoundError, base: e instanceof SandlotError, status: e.status };
  }
  // A token-only session, as a backend would hand to a page.
  const client = await Sandbox.connect(sandbox.getSession());
  const viaSession = await client.runCode('echo session', { language: 'bash' });
  await sandbox.kill();
  return { ok: true, sync: sync.stdout, bg: done.stdout, status: done.status, typedError, viaSession: viaSession.stdout };
}

main()
  .catch((e) => ({ ok: false, name: e && e.name, error: String(e && e.message) }))
  .then((result) => fetch('/report', { method: 'POST', body: JSON.stringify(result) }));
`;

/** Opens `url` in headless Chromium while `until(browserExit)` runs, then kills it. */
async function withChromium(url, until) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-chromium-'));
  const browser = spawn(
    chromium,
    ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, url],
    { stdio: 'ignore', detached: true },
  );
  const exited = new Promise((resolve) => browser.once('exit', resolve));
  try {
    await until(exited);
  } finally {
    try {
      process.kill(-browser.pid, 'SIGKILL'); // its own process group: the browser and its helpers
    } catch {}
    await exited;
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

let sandlotd;
let web;
let reported;
const reports = [];

function serve(dist) {
  let upstream;
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/report') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        reports.push(JSON.parse(body));
        reported?.();
        res.end('{}');
      });
      return;
    }
    if (req.url.startsWith('/v1/') || req.url.startsWith('/sandboxes/')) {
      const target = new URL(upstream);
      const forward = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(forward);
      return;
    }
    const file = path.join(dist, req.url.split('?')[0] === '/' ? 'index.html' : req.url.split('?')[0]);
    if (!file.startsWith(dist) || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        setUpstream: (u) => (upstream = u),
        close: () => new Promise((r) => server.close(r)),
      }),
    ),
  );
}

before(async () => {
  fs.rmSync(app, { recursive: true, force: true });
  fs.mkdirSync(app, { recursive: true });
  fs.writeFileSync(path.join(app, 'index.html'), '<!doctype html><title>sandlot</title><script type="module" src="./main.js"></script>\n');
  fs.writeFileSync(path.join(app, 'main.js'), MAIN_JS);
});

after(async () => {
  await web?.close();
  await sandlotd?.stop();
});

test('vite build bundles the package for the browser, wasm as an asset', async () => {
  await run(vite, ['build', '--logLevel', 'warn'], { cwd: app, timeout: 120_000 });
  const assets = fs.readdirSync(path.join(app, 'dist/assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `a .wasm asset in ${assets}`);
  assert.ok(assets.some((f) => f.endsWith('.js')));
});

test('the Vite build drives a sandbox from headless Chromium', { skip }, async () => {
  assert.ok(chromium, 'no /usr/bin/chromium: scripts/setup.sh installs Debian chromium');
  web = await serve(path.join(app, 'dist'));
  sandlotd = await startServer(['--public-url', web.url]);
  web.setUpstream(sandlotd.url);
  await withChromium(`${web.url}/?key=${sandlotd.apiKey}`, (browserExit) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the page did not report within 60 s')), 60_000);
      reported = () => {
        clearTimeout(timer);
        resolve();
      };
      browserExit.then((code) => reject(new Error(`chromium exited (${code}) before the page reported`)));
    }),
  );
  const [result] = reports;
  assert.equal(result.ok, true, `page failed: ${result.name}: ${result.error}`);
  assert.equal(result.sync, '42\n');
  assert.equal(result.bg, 'from the background\n');
  assert.equal(result.status, 'completed');
  assert.deepEqual(result.typedError, { processNotFound: true, base: true, status: 404 });
  assert.equal(result.viaSession, 'session\n');
});
