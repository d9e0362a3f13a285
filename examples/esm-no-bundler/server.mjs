// A browser page driving a sandbox without ever seeing the API key.
//
// This small backend creates the sandbox with the Node SDK (the key stays here), hands the
// page a session { sandboxId, token, agentUrl }, and serves the page plus the package's
// browser build, loaded by a plain <script type="module"> through an import map (no bundler).
// It also forwards the sandbox's agent routes so the page calls its own origin (no CORS setup).
//
//   SANDLOT_URL=http://127.0.0.1:7070 SANDLOT_API_KEY=... node examples/esm-no-bundler/server.mjs [--port N] [--once]
//
// --once: stop after the page reports it has finished (used by the tests).
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

import { Sandbox } from 'sandlot';

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || 8080) || 0;
const once = args.includes('--once');
const here = path.dirname(new URL(import.meta.url).pathname);
const webBuild = path.join(path.dirname(createRequire(import.meta.url).resolve('sandlot/package.json')), 'dist/web');
const upstream = new URL(process.env.SANDLOT_URL ?? 'http://127.0.0.1:7070');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
const sandboxes = [];

function sendFile(res, file) {
  if (!fs.existsSync(file)) return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  try {
    if (url.pathname === '/api/session') {
      // The backend's job: create the sandbox with the key, give the page only a session.
      const sandbox = await Sandbox.create({ template: 'code-interpreter', timeoutSeconds: 600 });
      sandboxes.push(sandbox);
      const session = sandbox.getSession();
      session.agentUrl = `http://${req.headers.host}${new URL(session.agentUrl).pathname}`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(session));
    } else if (url.pathname === '/api/report' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const report = JSON.parse(body);
      console.log(`page reported: ${JSON.stringify(report)}`);
      res.writeHead(200).end('{}');
      if (once) await shutdown(report.ok ? 0 : 1);
    } else if (url.pathname.startsWith('/sandboxes/')) {
      // Agent calls of the page, forwarded to sandlotd with their bearer token.
      const forward = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
        (up) => {
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(forward);
    } else if (url.pathname.startsWith('/sandlot/')) {
      sendFile(res, path.join(webBuild, path.basename(url.pathname)));
    } else if (url.pathname === '/') {
      sendFile(res, path.join(here, 'index.html'));
    } else {
      res.writeHead(404).end();
    }
  } catch (error) {
    console.error(error);
    res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(error) }));
  }
});

async function shutdown(code) {
  for (const sandbox of sandboxes) await sandbox.kill().catch(() => {});
  server.close();
  server.closeAllConnections();
  process.exitCode = code;
}
process.on('SIGINT', () => shutdown(130));
process.on('SIGTERM', () => shutdown(143));

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}/`);
});
