// Runtime: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core from the
// repository's node_modules; no browser is downloaded). Run with Node from the project the
// tarball is installed in. A page on 127.0.0.1:$SANDLOT_PAGE_PORT loads the package's web
// entry without a bundler (an import map to node_modules/sandlot/dist/web/, the wasm fetched
// next to it) and runs scenario.mjs. The control plane (which takes the API key and never
// answers cross-origin) is forwarded under the page's origin; the agent is called directly,
// cross-origin, so sandlotd must run with `--cors-origins http://127.0.0.1:$SANDLOT_PAGE_PORT`.
// Prints the SMOKE line(s) and exits 0 when the scenario passed.
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

import { line } from './scenario.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const { SANDLOT_URL, SANDLOT_API_KEY, SANDLOT_PAGE_PORT, SANDLOT_REPO } = process.env;
const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
if (!SANDLOT_PAGE_PORT) {
  console.error('SANDLOT_PAGE_PORT is not set: the page port sandlotd allows with --cors-origins');
  process.exit(2);
}
if (!chromiumPath) {
  console.error('no /usr/bin/chromium (scripts/setup.sh installs Debian chromium)');
  process.exit(2);
}
const { chromium } = createRequire(path.join(SANDLOT_REPO, 'package.json'))('playwright-core');

const web = path.join(here, 'node_modules/sandlot/dist/web');
const PAGE = `<!doctype html>
<title>sandlot smoke</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "sandlot": "/sandlot/index.js" } }</script>
<script type="module">
  import * as sdk from 'sandlot';
  import { smoke } from '/scenario.mjs';
  const key = new URLSearchParams(location.search).get('key');
  window.smokeReport = smoke(sdk, { baseURL: location.origin, apiKey: key, entry: new URL('/sandlot/index.js', location.href).href });
</script>
`;
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname.startsWith('/v1/')) {
    // The control plane, same-origin for the page.
    const target = new URL(SANDLOT_URL);
    const forward = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', (e) => res.writeHead(502).end(String(e)));
    req.pipe(forward);
    return;
  }
  if (url.pathname === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  const file =
    url.pathname === '/scenario.mjs' ? path.join(here, 'scenario.mjs') : url.pathname.startsWith('/sandlot/') ? path.join(web, url.pathname.slice('/sandlot/'.length)) : null;
  if (!file || !file.startsWith(here) || !fs.existsSync(file)) return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve, reject) => server.once('error', reject).listen(Number(SANDLOT_PAGE_PORT), '127.0.0.1', resolve));

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-chromium-'));
let context;
let ok = false;
const problems = [];
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  await page.goto(`http://127.0.0.1:${SANDLOT_PAGE_PORT}/?key=${encodeURIComponent(SANDLOT_API_KEY)}`);
  await page.waitForFunction(() => window.smokeReport !== undefined, null, { timeout: 30_000 });
  const report = await page.evaluate(() => window.smokeReport);
  console.log(line(report));
  ok = report.ok && !problems.some((p) => p.startsWith('pageerror'));
} catch (e) {
  console.error(e);
} finally {
  // The scenario's own 404 (a call on the killed sandbox) shows up as a console error too.
  for (const p of problems) console.error(`[page] ${p}`);
  await context?.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
  server.closeAllConnections?.();
  server.close();
}
process.exit(ok ? 0 : 1);
