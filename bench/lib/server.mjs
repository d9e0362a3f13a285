// A throwaway sandlotd for the benchmark: a free loopback port, a temporary data dir, its own
// API key. Every server started here is stopped (SIGTERM, then SIGKILL) and its data dir
// removed, also when the bench is interrupted.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './stats.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// SANDLOT_BENCH_BINARY compares another build (e.g. the previous commit's) on the same machine.
export const BINARY = process.env.SANDLOT_BENCH_BINARY ?? path.join(ROOT, 'target/release/sandlotd');
// SANDLOT_BENCH_PKG compares another build of the SDK package (default: this checkout's pkg/).
export const PKG = path.resolve(process.env.SANDLOT_BENCH_PKG ?? path.join(ROOT, 'pkg'));

const live = new Set();

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function startServer(flags = {}, binary = BINARY) {
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run cargo build --release -p sandlot-server`);
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-bench-'));
  const apiKey = `bench-${Math.random().toString(36).slice(2)}`;
  const args = ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--api-key', apiKey];
  for (const [k, v] of Object.entries(flags)) args.push(`--${k}`, String(v));
  const child = spawn(binary, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SANDLOT_LOG: process.env.SANDLOT_LOG ?? 'warn' },
  });
  let log = '';
  child.stderr.on('data', (d) => {
    log = (log + d).slice(-20000);
  });
  const url = `http://127.0.0.1:${port}`;
  const server = {
    url,
    apiKey,
    pid: child.pid,
    dataDir,
    child,
    flags,
    get log() {
      return log;
    },
    exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal }))),
    async stop() {
      live.delete(server);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const done = await Promise.race([server.exited, sleep(20000).then(() => null)]);
        if (!done) {
          child.kill('SIGKILL');
          await server.exited;
        }
      }
      removeDataDir(dataDir);
    },
  };
  live.add(server);
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`sandlotd exited at start:\n${log}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) {
        await r.arrayBuffer();
        return server;
      }
    } catch {
      /* not up yet */
    }
    await sleep(25);
  }
  await server.stop();
  throw new Error(`sandlotd did not become healthy:\n${log}`);
}

export async function stopAll() {
  for (const s of [...live]) await s.stop().catch(() => {});
}

/**
 * On the way out without `stopAll` (an uncaught error, `process.exit`): SIGTERM, so each
 * server takes its own shutdown path and removes what it made in the kernel (a SIGKILLed
 * one leaves its cgroups behind, named after a data dir that is then gone); SIGKILL for any
 * still running after 10 s. Synchronous, as an exit handler must be.
 */
function killAllSync() {
  const signal = (s, sig) => {
    try {
      s.child.kill(sig);
    } catch {
      /* gone */
    }
  };
  // Node reaps nothing in an exit handler: an exited server is a zombie (or gone).
  const running = (s) => s.child.exitCode === null && s.child.signalCode === null && !/\) Z /.test(readStat(s.pid));
  for (const s of live) signal(s, 'SIGTERM');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < 10000 && [...live].some(running); waited += 20) Atomics.wait(nap, 0, 0, 20);
  for (const s of live) {
    if (running(s)) signal(s, 'SIGKILL');
    try {
      removeDataDir(s.dataDir);
    } catch {
      /* best effort */
    }
  }
}

/** `/proc/<pid>/stat`, or a zombie's when the process is gone. */
function readStat(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return ') Z ';
  }
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await stopAll();
    process.exit(130);
  });
}

/** VmRSS of a process in KiB. */
export function rssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
  return m ? Number(m[1]) : NaN;
}

/** Fields of /proc/<pid>/smaps_rollup in KiB (Rss, Pss, Private_Clean, Private_Dirty, ...). */
export function smapsRollup(pid) {
  const out = {};
  for (const line of fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
    const m = line.match(/^(\w+):\s+(\d+) kB/);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** MemAvailable of the host in KiB. */
export function memAvailableKiB() {
  const m = fs.readFileSync('/proc/meminfo', 'utf8').match(/^MemAvailable:\s+(\d+)/m);
  return Number(m[1]);
}

/**
 * The memory-cgroup directory of a sandbox: /sys/fs/cgroup/memory/(server cgroup)/sandlot-(instance)/(id)
 * (cgroup v1), or the unified one on a pure v2 host. null when not found.
 */
export function sandboxMemCgroup(serverPid, sandboxId) {
  const lines = fs.readFileSync(`/proc/${serverPid}/cgroup`, 'utf8').split('\n');
  const candidates = [];
  const v1 = lines.find((l) => /^\d+:memory:/.test(l));
  if (v1) candidates.push(path.join('/sys/fs/cgroup/memory', v1.split(':')[2]));
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2) candidates.push(path.join('/sys/fs/cgroup', v2.slice(3)), path.join('/sys/fs/cgroup/unified', v2.slice(3)));
  for (const base of candidates) {
    let entries;
    try {
      entries = fs.readdirSync(base);
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.startsWith('sandlot-')) continue;
      const dir = path.join(base, e, sandboxId);
      if (fs.existsSync(dir)) return dir;
    }
  }
  return null;
}

export function readNumber(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return NaN;
  }
}

/** Removes a server's data dir; a server that was killed leaves its quota volume mounted. */
function removeDataDir(dataDir) {
  spawnSync('umount', ['-l', path.join(dataDir, 'volume')], { stdio: 'ignore' });
  fs.rmSync(dataDir, { recursive: true, force: true });
}
