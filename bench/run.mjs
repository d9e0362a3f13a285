#!/usr/bin/env node
// Sandlot benchmark suite. `npm run bench` builds and runs it; `node bench/run.mjs --quick`
// is the short version. Options:
//   --quick             fewer rounds, smaller N (under 3 minutes)
//   --only=a,b          run only these sections: sdk, weight, tti, create, exec, background, memory, files, soak, contexts, cluster, userns
//   --out=DIR           where to write the report (default bench/results)
//   --render            rewrite report.md from report.json and bench/notes.md, measuring nothing
// Writes report.json and report.md (report-quick.* in quick mode, report-partial.* with --only).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeReport } from './lib/report.mjs';
import { ROOT, stopAll } from './lib/server.mjs';
import { settle } from './lib/stats.mjs';
import { packageWeight } from './sections/weight.mjs';
import { sdkCallCost } from './sections/sdk.mjs';
import { timeToInteractive } from './sections/tti.mjs';
import { backgroundAndList, createLatency, execOverhead, idleMemory, userNamespaceCost } from './sections/server.mjs';
import { soak } from './sections/soak.mjs';
import { fileTransfer } from './sections/files.mjs';
import { contexts } from './sections/contexts.mjs';
import { clusterMode } from './sections/cluster.mjs';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const outDir = path.resolve(args.find((a) => a.startsWith('--out='))?.slice(6) ?? path.join(ROOT, 'bench/results'));

if (args.includes('--render')) {
  const json = JSON.parse(fs.readFileSync(path.join(outDir, 'report.json'), 'utf8'));
  delete json.targets;
  delete json.verdicts;
  writeReport(json, outDir, { notesFile: path.join(ROOT, 'bench/notes.md') });
  console.log(`[bench] rendered ${path.relative(ROOT, path.join(outDir, 'report.md'))} from report.json`);
  process.exit(0);
}

if (process.getuid && process.getuid() !== 0) {
  console.error('sandlotd needs root (namespaces and cgroups): run the bench as root');
  process.exit(1);
}

const SECTIONS = [
  ['weight', '2. package weight and cold start', packageWeight],
  ['sdk', '1. SDK call cost', sdkCallCost],
  ['tti', '3. time to interactive', timeToInteractive],
  ['create', '4. create latency', createLatency],
  ['exec', '4. exec overhead', execOverhead],
  ['userns', '4. what a user namespace per sandbox costs', userNamespaceCost],
  ['background', '4. background starts and listProcesses growth', backgroundAndList],
  ['memory', '4. memory per idle sandbox and per finished record', idleMemory],
  ['files', '4. file transfer', fileTransfer],
  ['soak', '4. concurrent clients', soak],
  ['contexts', '5. execution contexts (warm interpreters)', contexts],
  ['cluster', '6. cluster mode (control plane, router, nodes)', clusterMode],
];

function git(...a) {
  try {
    return execFileSync('git', a, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

// Other work on the machine skews every figure: note any build or test run seen meanwhile.
const foreign = new Set();
function sampleForeign() {
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd;
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (/sandlot-bench-|bench\/run\.mjs/.test(cmd)) continue;
    // The program and its first argument only: an environment passed on a command line
    // (PATH=…/.cargo/bin) is not a build.
    const head = cmd.split(' ').slice(0, 2).map((w, i) => (i === 0 ? path.basename(w) : w)).join(' ');
    const m = head.match(/^(cargo|rustc|wasm-pack|wasm-opt|node --test|sandlotd --listen|chromium)\b/);
    if (m) foreign.add(m[1]);
  }
}
const fmtLoad = () => os.loadavg().map((x) => x.toFixed(2)).join(' / ');
const foreignTimer = setInterval(sampleForeign, 3000);
foreignTimer.unref();

const started = Date.now();
const ctx = { quick, log: (...m) => console.log(...m) };
// Sections that use only raw HTTP (e.g. --only=contexts) run without the npm dev dependencies.
let officialPkg = { version: 'not installed' };
try {
  officialPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/@hopx-ai/sdk/package.json'), 'utf8'));
} catch {
  /* not installed */
}
const results = {
  meta: {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    sections: only ?? SECTIONS.map((s) => s[0]),
    commit: git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--', 'server', 'crates', 'src').length ? ' (with uncommitted changes)' : ''),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    officialVersion: officialPkg.version,
    loadBefore: fmtLoad(),
  },
};

let failed = false;
for (const [key, title, fn] of SECTIONS) {
  if (only && !only.includes(key)) continue;
  await settle();
  const t0 = Date.now();
  console.log(`[bench] ${title}${quick ? ' (quick)' : ''}`);
  try {
    results[key] = await fn(ctx);
  } catch (e) {
    failed = true;
    results[key] = undefined;
    results.meta.failures = [...(results.meta.failures ?? []), `${key}: ${e.stack ?? e}`];
    console.error(`[bench] ${key} failed:`, e);
  }
  console.log(`[bench]   done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
await stopAll();
results.meta.durationS = (Date.now() - started) / 1000;
clearInterval(foreignTimer);
results.meta.loadAfter = fmtLoad();
if (foreign.size) results.meta.foreign = [...foreign].join(', ');

const suffix = only ? '-partial' : quick ? '-quick' : '';
const { verdicts } = writeReport(results, outDir, { suffix, notesFile: path.join(ROOT, 'bench/notes.md') });
console.log(`\n[bench] wrote ${path.relative(ROOT, path.join(outDir, `report${suffix}.md`))} and .json in ${results.meta.durationS.toFixed(0)} s`);
if (results.meta.foreign) console.log(`[bench] note: other work ran on the machine meanwhile (${results.meta.foreign}); figures are noisier`);
for (const v of verdicts) console.log(`  ${v.met === null ? 'n/a   ' : v.met ? 'met   ' : 'MISSED'}  ${v.figure}: ${v.value} (target ${v.target})`);
process.exit(failed ? 1 : 0);
