// §2 Package weight and cold start: the files of pkg/ raw and gzip, against the installed
// official SDK with its dependencies; cold `import`/`require` time in fresh Node processes.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { PKG, ROOT } from '../lib/server.mjs';
import { summarize } from '../lib/stats.mjs';

const gz = (buf) => zlib.gzipSync(buf, { level: 9 }).length;

function walk(dir, { skipNodeModules = true } = {}) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (skipNodeModules && e.name === 'node_modules') continue;
      out.push(...walk(p, { skipNodeModules }));
    } else if (e.isFile()) out.push(p);
  }
  return out;
}

function weigh(files) {
  let raw = 0;
  let gzip = 0;
  for (const f of files) {
    const b = fs.readFileSync(f);
    raw += b.length;
    gzip += gz(b);
  }
  return { files: files.length, raw, gzip };
}

/** The official SDK and every package it pulls in, resolved the way Node resolves them. */
function dependencyClosure(name, fromDir) {
  const seen = new Map();
  const visit = (pkgName, dir) => {
    const req = createRequire(path.join(dir, 'noop.js'));
    let pjPath;
    try {
      pjPath = req.resolve(`${pkgName}/package.json`);
    } catch {
      // packages whose `exports` hide package.json: walk up node_modules by hand
      let d = dir;
      for (;;) {
        const cand = path.join(d, 'node_modules', pkgName, 'package.json');
        if (fs.existsSync(cand)) {
          pjPath = cand;
          break;
        }
        const up = path.dirname(d);
        if (up === d) return;
        d = up;
      }
    }
    const pkgDir = path.dirname(pjPath);
    if (seen.has(pkgDir)) return;
    const pj = JSON.parse(fs.readFileSync(pjPath, 'utf8'));
    seen.set(pkgDir, `${pj.name}@${pj.version}`);
    for (const dep of Object.keys({ ...pj.dependencies, ...pj.optionalDependencies })) visit(dep, pkgDir);
  };
  visit(name, fromDir);
  return seen;
}

function packDryRun(dir) {
  try {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
    const [info] = JSON.parse(out.toString());
    return { tarball: info.size, unpacked: info.unpackedSize, entries: info.entryCount };
  } catch {
    return null;
  }
}

function childTime(script) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) return reject(new Error(`child exited ${code}: ${err.slice(0, 400)}`));
      resolve({ wall, inside: Number(out.trim()) });
    });
  });
}

export async function packageWeight(ctx) {
  const pkg = PKG;
  const all = walk(pkg);
  const isTypes = (f) => /\.d\.(ts|mts|cts)$/.test(f);
  const wasm = all.filter((f) => f.endsWith('.wasm'));
  const nodeJs = all.filter((f) => f.includes('/dist/node/') && /\.(cjs|mjs|js)$/.test(f));
  const webJs = all.filter((f) => f.includes('/dist/web/') && /\.(cjs|mjs|js)$/.test(f));
  const types = all.filter(isTypes);
  const sandlot = {
    wasm: weigh(wasm),
    nodeJs: weigh(nodeJs),
    webJs: weigh(webJs),
    types: weigh(types),
    installed: weigh(all),
    pack: packDryRun(pkg),
  };
  sandlot.node = { raw: sandlot.wasm.raw + sandlot.nodeJs.raw, gzip: sandlot.wasm.gzip + sandlot.nodeJs.gzip };
  sandlot.web = { raw: sandlot.wasm.raw + sandlot.webJs.raw, gzip: sandlot.wasm.gzip + sandlot.webJs.gzip };
  sandlot.runtime = {
    raw: sandlot.wasm.raw + sandlot.nodeJs.raw + sandlot.webJs.raw,
    gzip: sandlot.wasm.gzip + sandlot.nodeJs.gzip + sandlot.webJs.gzip,
  };

  const closure = dependencyClosure('@hopx-ai/sdk', ROOT);
  const officialFiles = [...closure.keys()].flatMap((d) => walk(d));
  const officialSelf = [...closure.entries()].find(([, id]) => id.startsWith('@hopx-ai/sdk@'));
  const official = {
    packages: [...closure.values()],
    installed: weigh(officialFiles),
    sdkOnly: weigh(walk(officialSelf[0])),
    js: weigh(officialFiles.filter((f) => /\.(c|m)?js$/.test(f))),
  };

  // Cold start: fresh node processes, interleaved round-robin. This checkout's pkg/, by path
  // (`node_modules/sandlot` may be another checkout's build).
  const esm = pathToFileURL(path.join(PKG, 'dist/node/index.mjs')).href;
  const cjs = path.join(PKG, 'dist/node/index.cjs');
  const scripts = {
    'node (no import)': "const t=performance.now(); await import('node:path'); console.log(performance.now()-t)",
    'sandlot: import': `const t=performance.now(); await import(${JSON.stringify(esm)}); console.log(performance.now()-t)`,
    "@hopx-ai/sdk: import": "const t=performance.now(); await import('@hopx-ai/sdk'); console.log(performance.now()-t)",
    'sandlot: require': `import {createRequire} from 'node:module'; const r=createRequire(process.cwd()+'/x.js'); const t=performance.now(); r(${JSON.stringify(cjs)}); console.log(performance.now()-t)`,
    "@hopx-ai/sdk: require": "import {createRequire} from 'node:module'; const r=createRequire(process.cwd()+'/x.js'); const t=performance.now(); r('@hopx-ai/sdk'); console.log(performance.now()-t)",
  };
  const names = Object.keys(scripts);
  const rounds = ctx.quick ? 6 : 20;
  const acc = Object.fromEntries(names.map((n) => [n, { inside: [], wall: [], errors: [] }]));
  for (let r = 0; r < rounds + 1; r++) {
    for (let i = 0; i < names.length; i++) {
      const n = names[(i + r) % names.length];
      try {
        const t = await childTime(scripts[n]);
        if (r > 0) {
          acc[n].inside.push(t.inside);
          acc[n].wall.push(t.wall);
        }
      } catch (e) {
        acc[n].errors.push(e.message);
      }
    }
  }
  const coldStart = names.map((n) => ({
    variant: n,
    inside: summarize(acc[n].inside),
    wall: summarize(acc[n].wall),
    errors: acc[n].errors,
  }));
  const base = coldStart[0].wall.median;
  for (const c of coldStart) c.wallOverNode = c.wall.median - base;
  return { sandlot, official, coldStart, rounds };
}
