// Runtime: Cloudflare's workerd (the npm package `workerd`, the runtime of Cloudflare
// Workers). Run with Node from the project the tarball is installed in; $WORKERD is the
// binary. Writes a workerd config next to this file, with the Worker of workerd-worker.mjs:
// its modules are that file, scenario.mjs, the package's web entry (dist/web/*.js) and the
// wasm as a wasm module. The Worker's fetch() goes out through a `network` service allowed to
// reach `local` addresses only: workerd's default outbound allows public addresses alone, and
// sandlotd listens on loopback. Serves it on a free loopback port, POSTs the sandlotd URL and
// key to it, prints the SMOKE line and exits 0 when the scenario passed.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { line } from './scenario.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const workerd = process.env.WORKERD ?? path.join(process.env.SANDLOT_REPO ?? '.', 'node_modules/.bin/workerd');
// The newest compatibility date this workerd supports is its release date: `workerd 2026-11-17`.
const compatibilityDate = execFileSync(workerd, ['--version'], { encoding: 'utf8' }).match(/\d{4}-\d{2}-\d{2}/)[0];

const port = await new Promise((resolve, reject) => {
  const srv = net.createServer().once('error', reject);
  srv.listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  });
});

const web = 'node_modules/sandlot/dist/web';
const jsModules = fs.readdirSync(path.join(here, web)).filter((f) => f.endsWith('.js'));
const modules = [
  `(name = "worker.mjs", esModule = embed "workerd-worker.mjs")`,
  `(name = "scenario.mjs", esModule = embed "scenario.mjs")`,
  ...jsModules.map((f) => `(name = "sandlot/${f}", esModule = embed "${web}/${f}")`),
  `(name = "sandlot/sandlot_bg.wasm", wasm = embed "${web}/sandlot_bg.wasm")`,
];
const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [
    ${modules.join(',\n    ')},
  ],
  compatibilityDate = "${compatibilityDate}",
  globalOutbound = "loopback",
);
`;
const configPath = path.join(here, 'workerd.capnp');
fs.writeFileSync(configPath, config);

const child = spawn(workerd, ['serve', configPath], { cwd: here, stdio: ['ignore', 'pipe', 'pipe'] });
let output = '';
child.stdout.on('data', (d) => (output += d));
child.stderr.on('data', (d) => (output += d));
const url = `http://127.0.0.1:${port}/`;
let ok = false;
try {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited (${child.exitCode})`);
    if (Date.now() > deadline) throw new Error('workerd did not serve the Worker within 20 s');
    try {
      if ((await fetch(url)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  const res = await fetch(url, {
    method: 'POST',
    body: JSON.stringify({ baseURL: process.env.SANDLOT_URL, apiKey: process.env.SANDLOT_API_KEY }),
    signal: AbortSignal.timeout(90_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`the Worker answered ${res.status}: ${text}`);
  const report = JSON.parse(text);
  console.log(line(report));
  ok = report.ok;
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
} finally {
  child.kill('SIGTERM');
  if (output.trim()) console.error(`[workerd] ${output.trim()}`);
}
process.exit(ok ? 0 : 1);
