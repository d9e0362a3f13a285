// §4 The server: create latency, exec overhead over a host spawn, background starts per second,
// listProcesses as the count grows, memory per idle sandbox and per finished process record.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadSandlot, rawClient, sandlotClient } from '../lib/clients.mjs';
import { BINARY, memAvailableKiB, readNumber, rssKiB, sandboxMemCgroup, smapsRollup, startServer } from '../lib/server.mjs';
import { errorText, interleave, now, pairedDiff, pool, ratioCI, settle, sleep, summarize } from '../lib/stats.mjs';
import { populate, waitAllFinal } from './sdk.mjs';

// A new process per run, not the language's context: what the exec path costs.
const FRESH = { fresh: true };

const stat = (slot) => ({ ...summarize(slot.samples), errors: slot.errors.length, firstError: slot.errors[0] });

function hostRun(file, args) {
  return new Promise((resolve, reject) => {
    execFile(file, args, (err) => (err ? reject(err) : resolve()));
  });
}

export async function createLatency(ctx) {
  // The default server (disk quota on: a btrfs subvolume and its limit per sandbox) and a
  // baseline with the quota off, interleaved in the same run.
  // Its own address range, so a bench run never meets a test server's sandboxes.
  const server = await startServer({ 'max-sandboxes': 500, 'network-cidr': '10.250.0.0/16' });
  const baseline = await startServer({ 'max-sandboxes': 500, 'sandbox-disk-mb': 0, 'network-cidr': '10.251.0.0/16' });
  try {
    const raw = rawClient(server);
    const rawOff = rawClient(baseline);
    const rounds = ctx.quick ? 40 : 200;
    // DELETE takes the oldest sandbox of a queue that POST feeds; a few made up front keep
    // it from ever running dry whatever the rotation.
    const toDelete = [];
    const toDeleteOff = [];
    // Sandboxes with outbound network (veth + nftables chain); nothing is sent anywhere.
    const toDeleteNet = [];
    const toDeleteNetOff = [];
    const net = { internet_access: true };
    for (let i = 0; i < 4; i++) toDeleteNet.push(await raw.create(net));
    for (let i = 0; i < 4; i++) toDeleteNetOff.push(await rawOff.create(net));
    for (let i = 0; i < 4; i++) toDelete.push(await raw.create());
    for (let i = 0; i < 4; i++) toDeleteOff.push(await rawOff.create());
    const res = await interleave(
      [
        'GET /health (HTTP floor)',
        'POST /v1/sandboxes',
        'DELETE /v1/sandboxes/{id}',
        'POST /v1/sandboxes (quota off)',
        'DELETE /v1/sandboxes/{id} (quota off)',
        'POST /v1/sandboxes (internet_access)',
        'DELETE /v1/sandboxes/{id} (internet_access)',
        'POST /v1/sandboxes (internet_access, quota off)',
        'DELETE /v1/sandboxes/{id} (internet_access, quota off)',
      ],
      rounds,
      async (v) => {
        if (v.startsWith('GET')) return raw.call(`${server.url}/health`);
        const off = v.endsWith('quota off)');
        const withNet = v.includes('(internet_access');
        const queues = { 'off,net': toDeleteNetOff, off: toDeleteOff, net: toDeleteNet, on: toDelete };
        const queue = queues[off && withNet ? 'off,net' : off ? 'off' : withNet ? 'net' : 'on'];
        const client = off ? rawOff : raw;
        if (v.startsWith('POST')) {
          queue.push(await client.create(withNet ? net : {}));
          return;
        }
        await client.kill(queue.shift());
      },
      { warmup: 3 },
    );
    for (const h of toDelete) await raw.kill(h).catch(() => {});
    for (const h of toDeleteOff) await rawOff.kill(h).catch(() => {});
    for (const h of toDeleteNet) await raw.kill(h).catch(() => {});
    for (const h of toDeleteNetOff) await rawOff.kill(h).catch(() => {});
    const rows = Object.entries(res).map(([op, slot]) => ({ op, ...stat(slot) }));
    const floor = rows[0].median;
    for (const r of rows) r.overFloor = r.median - floor;
    const mix = await createMix(raw, ctx.quick ? 60 : 180);
    return { rounds, rows, mix };
  } finally {
    await server.stop();
    await baseline.stop();
  }
}

/**
 * Plain creates on one server (the default, quota on) three ways: back to back; with every
 * other create one with internet_access; each after 50 ms without any create or delete.
 * A sandbox created is deleted before the next create. The patterns take turns in blocks,
 * so the machine's other load falls on all three alike; each ratio to "back to back" comes
 * with its 95 % bootstrap interval. Issue 14: plain creates slowed 2.7–3.7× beside
 * networked ones (a cgroup move waiting for an RCU grace period whenever creates were
 * spaced out; see bench/notes.md).
 */
async function createMix(raw, rounds) {
  const blocks = 3;
  const per = Math.ceil(rounds / blocks);
  const samples = { alone: [], mixed: [], mixedNet: [], paused: [] };
  const errors = [];
  for (let b = 0; b < blocks; b++) {
    for (const pattern of ['alone', 'mixed', 'paused']) {
      await settle(2000);
      for (let i = 0; i < per; i++) {
        const withNet = pattern === 'mixed' && i % 2 === 1;
        if (pattern === 'paused') await sleep(50);
        try {
          const t0 = now();
          const h = await raw.create(withNet ? { internet_access: true } : {});
          samples[withNet ? 'mixedNet' : pattern].push(now() - t0);
          await raw.kill(h);
        } catch (e) {
          errors.push(errorText(e));
        }
      }
    }
  }
  const ratioOf = (a, b) => ({
    ratio: summarize(samples[a]).median / summarize(samples[b]).median,
    ci: ratioCI(samples[a], samples[b]),
  });
  return {
    blocks,
    per,
    rows: [
      { op: 'POST /v1/sandboxes, back to back', ...summarize(samples.alone) },
      { op: 'POST /v1/sandboxes, every other create with internet_access', ...summarize(samples.mixed) },
      { op: 'POST /v1/sandboxes (internet_access), the other creates of that pattern', ...summarize(samples.mixedNet) },
      { op: 'POST /v1/sandboxes, each after 50 ms idle', ...summarize(samples.paused) },
    ],
    mixedVsAlone: ratioOf('mixed', 'alone'),
    pausedVsAlone: ratioOf('paused', 'alone'),
    errors: errors.length,
    firstError: errors[0],
  };
}

export async function execOverhead(ctx) {
  const server = await startServer({});
  try {
    const raw = rawClient(server);
    const box = await raw.create();
    const serverTime = { bash: [], python: [] };
    const variants = {
      'agent GET /health (HTTP floor, token auth)': () => raw.health(box),
      'host: spawn /bin/true': () => hostRun('/bin/true', []),
      "host: spawn bash -c '/bin/true'": () => hostRun('/bin/bash', ['-c', '/bin/true']),
      'sandbox: /execute bash /bin/true': async () => {
        const r = await raw.runCode(box, '/bin/true', 'bash', FRESH);
        serverTime.bash.push(r.execution_time * 1000);
      },
      "sandbox: /commands/run 'true'": () => raw.runCommand(box, 'true'),
      "host: spawn python3 -c 'pass'": () => hostRun('/usr/bin/python3', ['-c', 'pass']),
      "sandbox: /execute python 'pass'": async () => {
        const r = await raw.runCode(box, 'pass', 'python', FRESH);
        serverTime.python.push(r.execution_time * 1000);
      },
    };
    const rounds = ctx.quick ? 30 : 150;
    const res = await interleave(Object.keys(variants), rounds, (v) => variants[v](), { warmup: 3 });
    await raw.kill(box).catch(() => {});
    const rows = Object.entries(res).map(([op, slot]) => ({ op, ...stat(slot) }));
    const get = (prefix) => rows.find((r) => r.op.startsWith(prefix));
    const rounds_ = (prefix) => res[Object.keys(res).find((k) => k.startsWith(prefix))].byRound;
    const floor = get('agent GET /health');
    const sbBash = get('sandbox: /execute bash');
    const sbPy = get('sandbox: /execute python');
    const hostTrue = get('host: spawn /bin/true');
    const hostBash = get('host: spawn bash');
    const hostPy = get('host: spawn python3');
    const overhead = {
      bashVsBashC: sbBash.median - hostBash.median,
      bashVsTrue: sbBash.median - hostTrue.median,
      python: sbPy.median - hostPy.median,
      // the same differences taken round by round (both runs of a pair seconds apart)
      pairedBash: pairedDiff(rounds_('sandbox: /execute bash'), rounds_('host: spawn bash')),
      pairedPython: pairedDiff(rounds_('sandbox: /execute python'), rounds_('host: spawn python3')),
      httpFloor: floor.median,
      // A command is a bash run of one line: it should cost what /execute bash costs.
      commandVsExecute: get('sandbox: /commands/run').median / sbBash.median,
      serverExecBash: summarize(serverTime.bash),
      serverExecPython: summarize(serverTime.python),
    };
    // A tighter host floor than Node's spawn (libuv forks a large process): the same commands
    // started by a bash loop, per iteration.
    const nativeLoop = async (cmd, k) => {
      const t0 = now();
      await hostRun('/bin/bash', ['-c', `for i in $(seq ${k}); do ${cmd}; done`]);
      return (now() - t0) / k;
    };
    const native = { true: [], bash: [], python: [] };
    for (let i = 0; i < (ctx.quick ? 3 : 7); i++) {
      native.true.push(await nativeLoop('/bin/true', 200));
      native.bash.push(await nativeLoop("/bin/bash -c /bin/true", 200));
      native.python.push(await nativeLoop('/usr/bin/python3 -c pass', 40));
    }
    overhead.native = {
      true: summarize(native.true),
      bash: summarize(native.bash),
      python: summarize(native.python),
    };
    overhead.bashVsNative = sbBash.median - overhead.native.bash.median;
    overhead.pythonVsNative = sbPy.median - overhead.native.python.median;
    const cgroupProbe = await cgroupMigrationProbe(ctx.quick ? 10 : 25);
    return { rounds, rows, overhead, cgroupProbe };
  } finally {
    await server.stop();
  }
}

/**
 * What moving a process into a cgroup (a write to cgroup.procs) costs on this host, the way the
 * exec helper joins its sandbox: after 50 ms without any migration, and back to back. On
 * kernels where the cgroup threadgroup lock is a global percpu rwsem (no `favordynmods`), the
 * first write after a quiet spell waits for an RCU grace period.
 */
async function cgroupMigrationProbe(n) {
  const bases = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].filter((b) => fs.existsSync(path.join(b, 'cgroup.procs')));
  if (!bases.length) return null;
  const dir = path.join(bases[0], `sandlot-bench-probe-${process.pid}`);
  const { spawn } = await import('node:child_process');
  const measure = async (gapMs) => {
    const t = [];
    for (let i = 0; i < n; i++) {
      const child = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
      await new Promise((r) => child.once('spawn', r));
      await sleep(gapMs);
      const t0 = now();
      fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(child.pid));
      t.push(now() - t0);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    return summarize(t);
  };
  try {
    fs.mkdirSync(dir);
    return { hierarchy: bases[0], afterIdle: await measure(50), backToBack: await measure(0) };
  } catch (e) {
    return { error: errorText(e) };
  } finally {
    try {
      fs.rmdirSync(dir);
    } catch {
      /* best effort */
    }
  }
}

export async function backgroundAndList(ctx) {
  const server = await startServer({ 'max-processes': 1024, 'max-process-records': 20000 });
  try {
    const raw = rawClient(server);
    const sdk = await loadSandlot();
    const sl = sandlotClient(server, sdk);
    const box = await raw.create();
    const sbox = await sl.attach(box);
    const steps = ctx.quick ? [1, 10, 100, 1000] : [1, 10, 100, 1000, 10000];
    const concurrency = 16;
    let have = 0;
    const growth = [];
    const throughput = [];
    for (const target of steps) {
      const add = target - have;
      const t0 = now();
      await populate(raw, box, add, 'true', concurrency);
      const started = now() - t0;
      await waitAllFinal(raw, box, target, 600000);
      const finished = now() - t0;
      have = target;
      if (add >= 100) throughput.push({ count: add, startsPerSec: add / (started / 1000), completedPerSec: add / (finished / 1000), startWallMs: started, finishWallMs: finished });
      const rounds = target <= 100 ? (ctx.quick ? 15 : 40) : target <= 1000 ? (ctx.quick ? 6 : 20) : 6;
      let bytes = 0;
      const res = await interleave(
        ['raw fetch', 'sandlot SDK'],
        rounds,
        async (v) => {
          if (v === 'raw fetch') {
            const r = await fetch(`${box.host}/execute/processes`, { headers: { Authorization: `Bearer ${box.token}` } });
            const text = await r.text();
            bytes = text.length;
            const list = JSON.parse(text).processes;
            if (list.length !== target) throw new Error(`expected ${target}, got ${list.length}`);
          } else {
            const list = await sl.listProcesses(sbox);
            if (list.length !== target) throw new Error(`expected ${target}, got ${list.length}`);
          }
        },
        { warmup: 1 },
      );
      const rawS = stat(res['raw fetch']);
      const sdkS = stat(res['sandlot SDK']);
      growth.push({ count: target, bytes, raw: rawS, sdk: sdkS, ratio: sdkS.median / rawS.median, perRecordUs: (rawS.median * 1000) / target });
      ctx.log(`    ${target} records: raw ${rawS.median.toFixed(2)} ms, sdk ${sdkS.median.toFixed(2)} ms`);
    }
    await raw.kill(box).catch(() => {});
    return { growth, throughput, concurrency };
  } finally {
    await server.stop();
  }
}

function sandboxMemory(server, id) {
  const dir = sandboxMemCgroup(server.pid, id);
  if (!dir) return null;
  const pids = fs
    .readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(Number);
  let pss = 0;
  let uss = 0;
  let rss = 0;
  for (const pid of pids) {
    try {
      const m = smapsRollup(pid);
      pss += m.Pss ?? 0;
      rss += m.Rss ?? 0;
      uss += (m.Private_Clean ?? 0) + (m.Private_Dirty ?? 0);
    } catch {
      /* exited */
    }
  }
  const usage = readNumber(path.join(dir, 'memory.usage_in_bytes'));
  const current = Number.isNaN(usage) ? readNumber(path.join(dir, 'memory.current')) : usage;
  return { pids: pids.length, pssKiB: pss, ussKiB: uss, rssKiB: rss, cgroupKiB: current / 1024, cgroupDir: dir };
}

/** The memory section: idle sandboxes, then finished process records (each on its own server). */
export async function idleMemory(ctx) {
  const idle = await idleSandboxMemory(ctx);
  await settle();
  let finishedRecords;
  try {
    finishedRecords = await finishedRecordsMemory(ctx);
    ctx.log(`    ${finishedRecords.count} finished records: ${(finishedRecords.perThousandKiB / 1024).toFixed(2)} MiB of server RSS per 1,000`);
  } catch (e) {
    finishedRecords = { error: errorText(e) };
    ctx.log(`    finished records failed: ${finishedRecords.error}`);
  }
  return { ...idle, finishedRecords };
}

async function idleSandboxMemory(ctx) {
  const count = ctx.quick ? 100 : 1000;
  // The sandbox's own helpers, without the warm python context a code-interpreter sandbox
  // gets at create (§5 measures that).
  const server = await startServer({ 'max-sandboxes': count + 50, 'warm-python-context': 'false' });
  try {
    const raw = rawClient(server);
    await sleep(300);
    const rss0 = rssKiB(server.pid);
    const avail0 = memAvailableKiB();
    const first = await raw.create();
    await sleep(300);
    const alone = sandboxMemory(server, first.id);
    const t0 = now();
    const res = await pool(Array.from({ length: count - 1 }, () => () => raw.create()), 4);
    const createWall = now() - t0;
    const failed = res.filter((r) => !r.ok);
    const boxes = [first, ...res.filter((r) => r.ok).map((r) => r.value)];
    await sleep(2000);
    const rss1 = rssKiB(server.pid);
    const avail1 = memAvailableKiB();
    const per = boxes.map((b) => sandboxMemory(server, b.id)).filter(Boolean);
    const pick = (k) => summarize(per.map((p) => p[k]));
    // the agent still answers in an idle sandbox picked at random
    const probe = boxes[Math.floor(boxes.length / 2)];
    const probeOk = (await raw.runCode(probe, 'print(1)').then(() => true, () => false));
    const t1 = now();
    await pool(boxes.map((b) => () => raw.kill(b)), 4);
    const deleteWall = now() - t1;
    await sleep(1000);
    const rss2 = rssKiB(server.pid);
    return {
      count: boxes.length,
      failedCreates: failed.length,
      firstCreateError: failed[0] ? errorText(failed[0].error) : undefined,
      createPerSec: (count - 1) / (createWall / 1000),
      deletePerSec: boxes.length / (deleteWall / 1000),
      alone,
      helperPids: pick('pids'),
      pss: pick('pssKiB'),
      uss: pick('ussKiB'),
      rss: pick('rssKiB'),
      cgroup: pick('cgroupKiB'),
      serverRssBeforeKiB: rss0,
      serverRssAfterKiB: rss1,
      serverRssAfterDeleteKiB: rss2,
      serverRssPerSandboxKiB: (rss1 - rss0) / boxes.length,
      hostMemAvailableDropPerSandboxKiB: (avail0 - avail1) / boxes.length,
      probeOk,
      cgroupExample: per[0]?.cgroupDir,
    };
  } finally {
    await server.stop();
  }
}

const FINAL = new Set(['completed', 'failed', 'killed', 'timeout']);

/** Whether this sandlotd build takes a command-line flag (older builds refuse unknown ones). */
function serverHasFlag(flag) {
  try {
    return execFileSync(BINARY, ['--help'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().includes(`--${flag}`);
  } catch {
    return false;
  }
}

/** Polls the output-less list (cheap for the server being measured) until `expected` records are final. */
async function waitFinalQuietly(raw, box, expected, timeoutMs) {
  const t0 = now();
  for (;;) {
    const { processes } = await raw.call(`${box.host}/execute/processes?output=false`, { headers: { Authorization: `Bearer ${box.token}` } });
    if (processes.length >= expected && processes.every((p) => FINAL.has(p.status))) return processes;
    if (now() - t0 > timeoutMs) throw new Error(`${processes.filter((p) => !FINAL.has(p.status)).length} of ${expected} processes not final after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/**
 * sandlotd's RSS per finished process record: one sandbox, a warm-up, then N background runs
 * that each print one short line, all finished; the server's VmRSS before and after. Once a
 * process has ended (and its linger is over) its record should cost the server next to
 * nothing in RAM: the output lives in the store.
 */
export async function finishedRecordsMemory(ctx) {
  const count = ctx.quick ? 300 : 1000;
  // The first thousand records warm the allocator and SQLite's page cache (a few MB, once):
  // the figure is what the next ones cost.
  const warmup = count;
  const concurrency = 16;
  const code = 'echo finished-record';
  const lingerSecs = serverHasFlag('finished-linger-secs') ? 1 : null;
  // Starts outpace ends for a moment (each start returns at once), so room for all of them,
  // in the process table and in the sandbox's pids limit (two tasks each while they start:
  // the exec helper and its child; past the limit their forks fail with EAGAIN).
  const flags = { 'max-processes': count + warmup, 'sandbox-pids': 4 * (count + warmup) };
  if (lingerSecs !== null) flags['finished-linger-secs'] = lingerSecs;
  const server = await startServer(flags);
  try {
    const raw = rawClient(server);
    const box = await raw.create();
    await populate(raw, box, warmup, code, concurrency);
    await waitFinalQuietly(raw, box, warmup, 120000);
    // Past the linger and the store's writes, for the baseline as for the figure.
    const settleMs = 2000 + (lingerSecs ?? 0) * 1000;
    await sleep(settleMs);
    const rssBeforeKiB = rssKiB(server.pid);
    const t0 = now();
    await populate(raw, box, count, code, concurrency);
    await waitFinalQuietly(raw, box, warmup + count, 600000);
    const wallMs = now() - t0;
    await sleep(settleMs);
    const rssAfterKiB = rssKiB(server.pid);
    // Every record is still there, with its output (read after the measurement).
    const list = await raw.listProcesses(box);
    const intact = list.filter((p) => p.status === 'completed' && p.exit_code === 0 && p.stdout === 'finished-record\n').length;
    if (intact !== warmup + count) throw new Error(`expected ${warmup + count} completed records with their output, found ${intact} of ${list.length}`);
    await raw.kill(box).catch(() => {});
    return {
      count,
      warmup,
      concurrency,
      code,
      lingerSecs,
      settleMs,
      wallMs,
      rssBeforeKiB,
      rssAfterKiB,
      perThousandKiB: ((rssAfterKiB - rssBeforeKiB) / count) * 1000,
    };
  } finally {
    await server.stop();
  }
}

/**
 * What a sandbox's user namespace costs (issue 10): creates and fresh execs on the default
 * server against one started with `--user-namespace false`, interleaved round by round.
 */
export async function userNamespaceCost(ctx) {
  const withNs = await startServer({ 'max-sandboxes': 500, 'network-cidr': '10.246.0.0/16' });
  const without = await startServer({ 'max-sandboxes': 500, 'network-cidr': '10.247.0.0/16', 'user-namespace': false });
  const servers = { 'user namespace': withNs, 'no user namespace': without };
  const rounds = ctx.quick ? 40 : 150;
  try {
    const creates = { 'user namespace': { samples: [], errors: [] }, 'no user namespace': { samples: [], errors: [] } };
    for (let r = 0; r < rounds + 3; r++) {
      for (const v of r % 2 ? Object.keys(servers) : Object.keys(servers).reverse()) {
        const raw = rawClient(servers[v]);
        const t0 = now();
        const h = await raw.create();
        if (r >= 3) creates[v].samples.push(now() - t0);
        await raw.kill(h).catch(() => {});
      }
    }
    const handles = {};
    for (const [v, s] of Object.entries(servers)) handles[v] = await rawClient(s).create();
    const execs = await interleave(Object.keys(servers), rounds, (v) => rawClient(servers[v]).runCode(handles[v], '/bin/true', 'bash', FRESH), { warmup: 5 });
    for (const [v, s] of Object.entries(servers)) await rawClient(s).kill(handles[v]).catch(() => {});
    const c = { on: stat(creates['user namespace']), off: stat(creates['no user namespace']) };
    const e = { on: stat(execs['user namespace']), off: stat(execs['no user namespace']) };
    return {
      rounds,
      create: { ...c, diff: c.on.median - c.off.median, ratioCI: ratioCI(creates['user namespace'].samples, creates['no user namespace'].samples) },
      exec: { ...e, diff: pairedDiff(execs['user namespace'].byRound, execs['no user namespace'].byRound).median, ratioCI: ratioCI(execs['user namespace'].samples, execs['no user namespace'].samples) },
    };
  } finally {
    await withNs.stop();
    await without.stop();
  }
}
