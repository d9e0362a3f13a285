// §5 Execution contexts (issue 13): what a warm python context costs per run, how soon a new
// sandbox runs its first cell, a burst of creates with first runs, and the memory of an idle
// sandbox holding a warm context. Raw HTTP throughout (the SDK's own cost is §1).
import { rawClient } from '../lib/clients.mjs';
import { readNumber, sandboxMemCgroup, startServer } from '../lib/server.mjs';
import { errorText, interleave, now, pairedDiff, settle, sleep, summarize } from '../lib/stats.mjs';

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

/** Time to interactive: create → first successful print(1), one sandbox after another. */
async function tti(server, rounds, body) {
  const raw = rawClient(server);
  const samples = [];
  const errors = [];
  for (let r = 0; r < rounds + 2; r++) {
    const t0 = now();
    let h;
    try {
      h = await raw.create();
      await post(h, '/execute', { code: 'print(1)', language: 'python', ...body });
      if (r >= 2) samples.push(now() - t0);
    } catch (e) {
      if (r >= 2) errors.push(errorText(e));
    }
    if (h) await raw.kill(h).catch(() => {});
  }
  return { ...summarize(samples), errors: errors.length, firstError: errors[0] };
}

async function burst(server, n, body) {
  const raw = rawClient(server);
  await settle();
  const handles = [];
  const t0 = now();
  const results = await Promise.all(
    Array.from({ length: n }, async () => {
      const s0 = now();
      try {
        const h = await raw.create();
        handles.push(h);
        await post(h, '/execute', { code: 'print(1)', language: 'python', ...body });
        return { ok: true, ms: now() - s0 };
      } catch (e) {
        return { ok: false, ms: now() - s0, error: errorText(e) };
      }
    }),
  );
  const wall = now() - t0;
  await Promise.all(handles.map((h) => raw.kill(h).catch(() => {})));
  const ok = results.filter((x) => x.ok).map((x) => x.ms);
  const errors = results.filter((x) => !x.ok).map((x) => x.error);
  return { ...summarize(ok), wall, successRate: ok.length / n, errors: errors.length, firstError: errors[0] };
}

export async function contexts(ctx) {
  const server = await startServer({ 'max-sandboxes': 400 });
  try {
    const raw = rawClient(server);
    // 1. A warm context: print(1) against the agent's HTTP floor, interleaved.
    const box = await raw.create();
    await post(box, '/execute', { code: 'print(1)', language: 'python' });
    const variants = {
      'agent GET /health (HTTP floor)': () => raw.health(box),
      "warm context: /execute python 'print(1)'": () => post(box, '/execute', { code: 'print(1)', language: 'python' }),
      "fresh process: /execute python 'print(1)' (fresh: true)": () => post(box, '/execute', { code: 'print(1)', language: 'python', fresh: true }),
    };
    const rounds = ctx.quick ? 50 : 300;
    const res = await interleave(Object.keys(variants), rounds, (v) => variants[v](), { warmup: 5 });
    const rows = Object.entries(res).map(([op, slot]) => ({ op, ...stat(slot) }));
    const key = (p) => Object.keys(res).find((k) => k.startsWith(p));
    const warmOverHttp = pairedDiff(res[key('warm context')].byRound, res[key('agent GET')].byRound);
    await raw.kill(box).catch(() => {});

    // 2. Time to interactive, warm start (default) against the first run in a fresh process.
    ctx.log('  time to interactive');
    const n = ctx.quick ? 15 : 60;
    const ttiWarm = await tti(server, n, {});
    const ttiFresh = await tti(server, n, { fresh: true });

    // 3. Burst of 100 creates and first runs at once.
    ctx.log('  burst of 100');
    const burstWarm = await burst(server, 100, {});
    const burstFresh = await burst(server, 100, { fresh: true });

    // 4. Memory of an idle sandbox with a warm python context (its memory cgroup), and
    // without one (a server with --warm-python-context false) in the same run.
    const memOf = async (srv, count) => {
      const c = rawClient(srv);
      const hs = [];
      for (let i = 0; i < count; i++) {
        const h = await c.create();
        await post(h, '/execute', { code: 'print(1)', language: 'python', fresh: true });
        hs.push(h);
      }
      await sleep(1500);
      const kib = [];
      for (const h of hs) {
        const dir = sandboxMemCgroup(srv.pid, h.id);
        if (!dir) continue;
        const v1 = readNumber(`${dir}/memory.usage_in_bytes`);
        const bytes = Number.isFinite(v1) ? v1 : readNumber(`${dir}/memory.current`);
        if (Number.isFinite(bytes)) kib.push(bytes / 1024);
      }
      await Promise.all(hs.map((h) => c.kill(h).catch(() => {})));
      return summarize(kib);
    };
    ctx.log('  memory per idle sandbox');
    const memWarm = await memOf(server, 10);
    const cold = await startServer({ 'warm-python-context': 'false' });
    let memCold;
    try {
      memCold = await memOf(cold, 10);
    } finally {
      await cold.stop();
    }
    return { rounds, rows, warmOverHttp, ttiRounds: n, ttiWarm, ttiFresh, burstWarm, burstFresh, memWarm, memCold };
  } finally {
    await server.stop();
  }
}
