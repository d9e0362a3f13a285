// The playground's backend: the only place that holds the API key.
//
//   POST /api/session   creates a sandbox with the API key and answers
//                       { session: { sandboxId, token, agentUrl, tokenExpiresAt }, warning? }
//
// The page then drives the sandbox itself, calling sandlotd's agent routes directly
// (cross-origin: sandlotd must be started with --cors-origins <this page's origin>). It never
// sees the API key and never calls the control plane.
//
// By default the page is served by Vite in middleware mode (development, with reloads); with
// --dist DIR a production build (`vite build`) is served instead.
//
//   SANDLOT_URL=http://127.0.0.1:7070 SANDLOT_API_KEY=... node examples/browser/server.mjs [--port 5173] [--dist DIR]
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { Sandbox } from 'sandlot';

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const port = Number(option('--port', process.env.PORT ?? 5173));
const dist = option('--dist') && path.resolve(option('--dist'));
const here = path.dirname(new URL(import.meta.url).pathname);
const sandboxes = [];

/** Creates a sandbox for one page and hands it a session (no API key in it). */
async function createSession(pageOrigin) {
  const sandbox = await Sandbox.create({ template: 'code-interpreter', timeoutSeconds: 3600 });
  sandboxes.push(sandbox);
  const session = sandbox.getSession();
  return { session, warning: await corsWarning(session.agentUrl, pageOrigin) };
}

/** Asks sandlotd the preflight question the browser will ask, to explain a refusal early. */
async function corsWarning(agentUrl, pageOrigin) {
  if (!pageOrigin) return undefined;
  const res = await fetch(`${agentUrl}/execute/background`, {
    method: 'OPTIONS',
    headers: { origin: pageOrigin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  }).catch(() => null);
  if (res?.headers.get('access-control-allow-origin')) return undefined;
  const warning = `sandlotd does not allow ${pageOrigin}: start it with --cors-origins ${pageOrigin}`;
  console.warn(warning);
  return warning;
}

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.svg': 'image/svg+xml' };

function serveBuild(req, res) {
  const urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  let file = path.join(dist, urlPath === '/' ? 'index.html' : urlPath);
  if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    file = path.join(dist, 'index.html');
  }
  res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
}

const server = http.createServer();
let pages = serveBuild;
if (dist) {
  if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error(`${dist}/index.html is missing: run vite build first`);
} else {
  const { createServer } = await import('vite');
  const vite = await createServer({ root: here, appType: 'spa', server: { middlewareMode: true, hmr: { server } } });
  pages = vite.middlewares;
}

server.on('request', async (req, res) => {
  if (req.url !== '/api/session') return pages(req, res);
  if (req.method !== 'POST') return res.writeHead(405).end();
  try {
    const body = await createSession(req.headers.origin);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  } catch (error) {
    console.error(error);
    res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `${error.name}: ${error.message}` }));
  }
});

async function shutdown() {
  await Promise.all(sandboxes.map((s) => s.kill().catch(() => {})));
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

server.listen(port, '127.0.0.1', () => {
  const origin = `http://127.0.0.1:${server.address().port}`;
  console.log(`playground on ${origin}/ (sandlotd needs --cors-origins ${origin})`);
});
