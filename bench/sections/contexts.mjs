// §5 Execution contexts (issue 13): what a warm python context costs per run, how soon a new
// sandbox runs its first cell, a burst of creates with first runs, the memory of an idle
// sandbox holding a warm context, and 1,000 such sandboxes on one host. Raw HTTP throughout
// (the SDK's own cost is §1).
//
// Python contexts are forked from the fork server (the default), and creates take sandboxes
// from the warm pool when it has one (also the default). The same measurements on a
// server started with `--context-zygote false` (every context a new interpreter through the
// exec helper, as before the fork server) and with `fresh: true` (a new process per run, no
// context) are the baselines, interleaved with it round by round.
import fs from 'node:fs';
import { burstOnce, PooledBursts } from '../lib/bursts.mjs';
import { rawClient } from '../lib/clients.mjs';
import { memAvailableKiB, readNumber, rssKiB, sandboxMemCgroup, smapsRollup, startServer } from '../lib/server.mjs';
import { errorText, interleave, now, pairedDiff, ratioCI, settle, sleep, summarize } from '../lib/stats.mjs';

const stat = (slot) => ({ ...summarize(slot.samples), errors: slot.errors.length, firstError: slot.errors[0] });

async function post(h, path, body) {
  const res = await fetch(`${h.host}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${h.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const r = await res.json();
  if (!res.ok || !r.success) throw new Error(`${path}: ${JSON.stringify(r).slice(0, 300)}`);
  return r;
}

const PRINT = { code: 'print(1)', language: 'python' };

/** One time to interactive: create → first successful print(1); the sandbox is then killed. */
async function ttiOnce(server, body) {
  const raw = rawClient(server);
  const t0 = now();
  let h;
  try {
    h = await raw.create();
    const r = await post(h, '/execute', { ...PRINT, ...body });
    if (r.stdout !== '1\n') throw new Error(`unexpected output ${JSON.stringify(r.stdout)}`);
    return now() - t0;
  } finally {
    if (h) await raw.kill(h).catch(() => {});
  }
}

/** A create alone (and its kill): the part of a TTI that is not the first run. */
async function createOnce(server) {
  const raw = rawClient(server);
  const t0 = now();
  const h = await raw.create();
  const ms = now() - t0;
  await raw.kill(h).catch(() => {});
  return ms;
}

/**
 * `times` bursts of `n` creates, each followed by its first `body` run, for each variant (a
 * server, or `{ server, transport }`), alternating between them (A B, B A, ...) so that they
 * share the machine's moods; each variant's samples are pooled (one burst's median moves by
 * ±20 ms on this shared machine). The load generator is node:http unless `transport` says
 * 'fetch': it shares the server's two cores, and fetch costs 2.5× its CPU.
 */
async function bursts(variants, n, body, times = 1) {
  const once = (variant, size) => {
    const { server, transport = 'http' } = variant.server ? variant : { server: variant };
    const raw = rawClient(server, { transport });
    return burstOnce(size, {
      create: () => raw.create(),
      run: async (h) => {
        const r = await raw.runCode(h, PRINT.code, PRINT.language, body);
        if (r.stdout !== '1\n') throw new Error(`unexpected output ${JSON.stringify(r.stdout)}`);
      },
      kill: (h) => raw.kill(h),
    });
  };
  const pooled = variants.map(() => new PooledBursts());
  // A first, smaller burst each, not counted: the first burst after a quiet spell pays for
  // kernel caches (namespaces, cgroups, slabs) the later ones find ready.
  for (const variant of variants) await once(variant, 30);
  for (let r = 0; r < times; r++) {
    for (let i = 0; i < variants.length; i++) {
      const j = r % 2 ? variants.length - 1 - i : i;
      pooled[j].add(await once(variants[j], n));
    }
  }
  return pooled.map((p) => p.summary());
}

/**
 * Like `interleave`, but each call returns its own measurement (a TTI, without the kill that
 * follows it).
 */
async function interleaveValues(variants, rounds, fn, warmup) {
  const out = Object.fromEntries(variants.map((v) => [v, { samples: [], errors: [], byRound: [] }]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + r) % variants.length];
      try {
        const ms = await fn(v);
        if (r >= warmup) {
          out[v].samples.push(ms);
          out[v].byRound[r - warmup] = ms;
        }
      } catch (e) {
        if (r >= warmup) {
          out[v].errors.push(errorText(e));
          out[v].byRound[r - warmup] = NaN;
        }
      }
    }
  }
  return out;
}

/** Host pids in a sandbox's memory cgroup (its init, its contexts, its processes). */
function sandboxPids(server, id) {
  const dir = sandboxMemCgroup(server.pid, id);
  if (!dir) return [];
  try {
    return fs.readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The fork server: the server's child started with SANDLOT_ZYGOTE=1. */
function zygotePid(server) {
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== server.pid) continue;
      if (fs.readFileSync(`/proc/${e}/environ`, 'utf8').includes('SANDLOT_ZYGOTE=1')) return Number(e);
    } catch {
      /* gone */
    }
  }
  return null;
}

/** Waits (up to 10 s) until the server's warm pool holds a sandbox (its `/metrics` gauge). */
async function poolRefilled(server) {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.apiKey}` } });
    const ready = Number((await res.text()).match(/^sandlot_warm_pool_ready (\d+)/m)?.[1] ?? 0);
    if (ready > 0) return;
    await sleep(50);
  }
  throw new Error('the warm pool did not refill within 10 s');
}

/**
 * Memory of `count` idle sandboxes, each after one print(1) in its default python context
 * (or, with `body.fresh`, in a fresh process): per sandbox, the PSS of its processes (forked
 * pages shared with the fork server and the other contexts count by their share) and its
 * memory cgroup's usage; and the fork server's own PSS, shared by all.
 */
async function idleMemory(server, count, body = {}, { fromPool = false } = {}) {
  const c = rawClient(server);
  const hs = [];
  for (let i = 0; i < count; i++) {
    if (fromPool) await poolRefilled(server);
    const h = await c.create();
    await post(h, '/execute', { ...PRINT, ...body });
    hs.push(h);
  }
  await sleep(1500);
  const pss = [];
  const cgroup = [];
  for (const h of hs) {
    const pids = sandboxPids(server, h.id);
    let kib = 0;
    for (const pid of pids) {
      try {
        kib += smapsRollup(pid).Pss ?? 0;
      } catch {
        /* exited */
      }
    }
    if (pids.length) pss.push(kib);
    const dir = sandboxMemCgroup(server.pid, h.id);
    if (dir) {
      const v1 = readNumber(`${dir}/memory.usage_in_bytes`);
      const bytes = Number.isFinite(v1) ? v1 : readNumber(`${dir}/memory.current`);
      if (Number.isFinite(bytes)) cgroup.push(bytes / 1024);
    }
  }
  const z = zygotePid(server);
  const zygote = z ? smapsRollup(z) : null;
  await Promise.all(hs.map((h) => c.kill(h).catch(() => {})));
  return { count, pss: summarize(pss), cgroup: summarize(cgroup), zygotePssKiB: zygote?.Pss ?? 0, zygoteRssKiB: zygote?.Rss ?? 0 };
}

/**
 * 1,000 sandboxes with a warm python context each, then the idle stop: what the host gives
 * up per sandbox (MemAvailable), the server's RSS, and what comes back once the contexts
 * have been idle for `--context-idle-secs`; a run after that restarts its context quietly.
 */
async function thousand(ctx, n) {
  const idleSecs = 20;
  const server = await startServer({ 'max-sandboxes': n + 50, 'context-idle-secs': idleSecs });
  const c = rawClient(server);
  const hs = [];
  try {
    await settle();
    const before = memAvailableKiB();
    const t0 = now();
    let errors = 0;
    for (let i = 0; i < n; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, n - i) }, async () => {
          try {
            const h = await c.create();
            await post(h, '/execute', PRINT);
            return h;
          } catch {
            errors++;
            return null;
          }
        }),
      );
      hs.push(...batch.filter(Boolean));
      if (i % 200 === 0) ctx.log(`    ${hs.length} sandboxes`);
    }
    const createSecs = (now() - t0) / 1000;
    await sleep(2000);
    const warm = memAvailableKiB();
    const serverRss = rssKiB(server.pid);
    // A warm run across the 1,000: still quick.
    const runs = [];
    for (const h of hs.slice(0, 50)) {
      const s0 = now();
      await post(h, '/execute', PRINT);
      runs.push(now() - s0);
    }
    ctx.log(`    waiting ${idleSecs + 5} s for the idle stop`);
    await sleep((idleSecs + 5) * 1000);
    const stopped = memAvailableKiB();
    const afterStop = [];
    for (const h of hs.slice(0, 20)) {
      const s0 = now();
      const r = await post(h, '/execute', PRINT);
      if (r.execution_error) errors++;
      afterStop.push(now() - s0);
    }
    return {
      n: hs.length,
      errors,
      createSecs,
      perSandboxKiB: (before - warm) / hs.length,
      serverRssKiB: serverRss,
      freedPerSandboxKiB: (stopped - warm) / hs.length,
      warmRun: summarize(runs),
      runAfterIdleStop: summarize(afterStop),
      idleSecs,
    };
  } finally {
    for (let i = 0; i < hs.length; i += 50) await Promise.all(hs.slice(i, i + 50).map((h) => c.kill(h).catch(() => {})));
    await server.stop();
  }
}

export async function contexts(ctx) {
  const server = await startServer({ 'max-sandboxes': 400 });
  const execd = await startServer({ 'max-sandboxes': 400, 'context-zygote': 'false', 'warm-pool': 0 });
  // The default server takes sandboxes from its warm pool; this one forks every sandbox's
  // context at create (the path a create takes when the pool is empty or not eligible).
  const nopool = await startServer({ 'max-sandboxes': 400, 'warm-pool': 0 });
  try {
    const raw = rawClient(server);
    // 1. A warm context: print(1) against the agent's HTTP floor, interleaved.
    const box = await raw.create();
    await post(box, '/execute', PRINT);
    const variants = {
      'agent GET /health (HTTP floor)': () => raw.health(box),
      "warm context: /execute python 'print(1)'": () => post(box, '/execute', PRINT),
      "fresh process: /execute python 'print(1)' (fresh: true)": () => post(box, '/execute', { ...PRINT, fresh: true }),
    };
    const rounds = ctx.quick ? 50 : 300;
    const res = await interleave(Object.keys(variants), rounds, (v) => variants[v](), { warmup: 5 });
    const rows = Object.entries(res).map(([op, slot]) => ({ op, ...stat(slot) }));
    const key = (p) => Object.keys(res).find((k) => k.startsWith(p));
    const warmOverHttp = pairedDiff(res[key('warm context')].byRound, res[key('agent GET')].byRound);
    await raw.kill(box).catch(() => {});

    // 2. Time to interactive, one sandbox after another (as §3): the forked context, a fresh
    // process and a create alone interleaved round by round on one server; the exec'd
    // context (a quarter of a second each) in a block of its own on the other, so that its
    // long starts do not leave the machine quiet before the others' creates (a quiet spell
    // makes the next cgroup move wait for an RCU grace period; see the report's host probe).
    ctx.log('  time to interactive');
    const n = ctx.quick ? 20 : 100;
    await settle();
    const ttiVariants = {
      forked: () => ttiOnce(server, {}),
      forkedNoPool: () => ttiOnce(nopool, {}),
      fresh: () => ttiOnce(server, { fresh: true }),
      create: () => createOnce(server),
    };
    const ttiRes = await interleaveValues(Object.keys(ttiVariants), n, (v) => ttiVariants[v](), 3);
    const execdRes = await interleaveValues(['execd'], Math.ceil(n / 4), () => ttiOnce(execd, {}), 2);
    ttiRes.execd = execdRes.execd;
    const tti = Object.fromEntries(Object.entries(ttiRes).map(([k, slot]) => [k, stat(slot)]));
    const ttiRatios = {
      forkedVsFresh: ratioCI(ttiRes.forked.samples, ttiRes.fresh.samples),
      forkedVsExecd: ratioCI(ttiRes.forked.samples, ttiRes.execd.samples),
      poolVsNoPool: ratioCI(ttiRes.forked.samples, ttiRes.forkedNoPool.samples),
    };
    const ttiOverCreate = pairedDiff(ttiRes.forked.byRound, ttiRes.create.byRound);

    // 3. Burst of 100 creates and first runs at once.
    ctx.log('  burst of 100');
    const [burstWarm, burstNoPool, burstFetch] = await bursts(
      [server, nopool, ...(ctx.quick ? [] : [{ server, transport: 'fetch' }])],
      100,
      {},
      ctx.quick ? 1 : 4,
    );
    const [burstFresh] = await bursts([server], 100, { fresh: true });
    const [burstExecd] = ctx.quick ? [null] : await bursts([execd], 100, {});

    // 4. Memory of idle sandboxes: with a context forked at create, with one from the warm
    // pool (which carries its warm-up's pages), with an exec'd one, without one.
    ctx.log('  memory per idle sandbox');
    const memCount = ctx.quick ? 20 : 50;
    const memForked = await idleMemory(nopool, memCount);
    await nopool.stop();
    const memPooled = await idleMemory(server, 10, {}, { fromPool: true });
    const memExecd = await idleMemory(execd, ctx.quick ? 5 : 10);
    const cold = await startServer({ 'warm-python-context': 'false' });
    let memCold;
    try {
      memCold = await idleMemory(cold, 10, { fresh: true });
    } finally {
      await cold.stop();
    }
    await execd.stop();
    await server.stop();

    // 5. A host with 1,000 of them, and the idle stop.
    let scale = null;
    if (!ctx.quick) {
      ctx.log('  1,000 sandboxes with warm contexts');
      scale = await thousand(ctx, 1000);
    }
    return {
      rounds,
      rows,
      warmOverHttp,
      ttiRounds: n,
      tti,
      ttiRatios,
      ttiOverCreate,
      // Kept under their former names for the report's verdicts.
      ttiWarm: tti.forked,
      ttiFresh: tti.fresh,
      burstWarm,
      burstFresh,
      burstExecd,
      burstNoPool,
      burstFetch,
      memForked,
      memPooled,
      memExecd,
      memCold,
      scale,
    };
  } finally {
    await execd.stop().catch(() => {});
    await nopool.stop().catch(() => {});
    await server.stop().catch(() => {});
  }
}
