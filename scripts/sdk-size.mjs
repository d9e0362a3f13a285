// The `sandlot` package's size budget, and the check the build runs against it.
// `node scripts/sdk-size.mjs [pkg]` prints what each way of loading the package costs and the
// npm tarball's size, and exits 1 when any is over budget. The bench's report reads the same
// budget (bench/lib/report.mjs).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

/** KB (1,024 bytes), gzip -9. */
export const BUDGET_KB = {
  /** What Node loads: the .wasm and every JS file of dist/node/. */
  node: 130,
  /** What a browser loads: the .wasm and every JS file of dist/web/. */
  web: 130,
  /** The whole `npm pack` tarball: code, types, README, the CLI. */
  tarball: 150,
};

const gzip = (file) => zlib.gzipSync(fs.readFileSync(file), { level: 9 }).length;

function files(dir) {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath ?? e.path, e.name));
}

/** Sizes in bytes: { wasm: { raw, gzip }, node, web, tarball }. */
export function measure(pkg) {
  const all = files(path.join(pkg, 'dist'));
  const wasm = all.filter((f) => f.endsWith('.wasm'));
  const js = (sub) => all.filter((f) => f.includes(`${path.sep}dist${path.sep}${sub}${path.sep}`) && /\.[cm]?js$/.test(f));
  const sum = (list) => list.reduce((n, f) => n + gzip(f), 0);
  const [info] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: pkg, stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  return {
    wasm: { raw: wasm.reduce((n, f) => n + fs.statSync(f).size, 0), gzip: sum(wasm) },
    node: sum(wasm) + sum(js('node')),
    web: sum(wasm) + sum(js('web')),
    tarball: info.size,
    unpacked: info.unpackedSize,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const pkg = path.resolve(process.argv[2] ?? 'pkg');
  const m = measure(pkg);
  const kb = (b) => `${(b / 1024).toFixed(1)} KB`;
  console.log(`sandlot_bg.wasm: ${m.wasm.raw.toLocaleString('en-US')} bytes raw, ${kb(m.wasm.gzip)} gzip -9`);
  let over = 0;
  for (const [key, label] of [['node', 'what Node loads (.wasm + dist/node JS)'], ['web', 'what a browser loads (.wasm + dist/web JS)'], ['tarball', 'npm tarball']]) {
    const ok = m[key] <= BUDGET_KB[key] * 1024;
    if (!ok) over++;
    console.log(`${ok ? 'ok  ' : 'OVER'} ${label}: ${kb(m[key])} gzip (budget ${BUDGET_KB[key]} KB, ${ok ? `${kb(BUDGET_KB[key] * 1024 - m[key])} to spare` : `${kb(m[key] - BUDGET_KB[key] * 1024)} over`})`);
  }
  if (over) {
    console.error(`error: the package is over its size budget (scripts/sdk-size.mjs)`);
    process.exit(1);
  }
}
