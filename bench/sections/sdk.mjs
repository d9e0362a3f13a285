// §1 SDK call cost: the Sandlot SDK, the official @hopx-ai/sdk and raw fetch, call for call,
// against one local sandlotd. Variants are interleaved round-robin inside every round.
import { loadOfficial, loadSandlot, officialClient, rawClient, sandlotClient, Unsupported } from '../lib/clients.mjs';
import { startServer } from '../lib/server.mjs';
import { errorText, now, pool, ratioCI, sleep, summarize } from '../lib/stats.mjs';

export const VARIANTS = ['sandlot', 'official', 'raw'];
const FINAL = new Set(['completed', 'failed', 'killed', 'timeout']);

export async function populate(raw, h, count, code = 'true', concurrency = 8) {
  const tasks = Array.from({ length: count }, () => () => raw.runBackground(h, code, 'bash'));
  const res = await pool(tasks, concurrency);
  const failed = res.filter((r) => !r.ok);
  if (failed.length) throw new Error(`populate: ${failed.length} starts failed: ${errorText(failed[0].error)}`);
  return res.map((r) => r.value);
}

export async function waitAllFinal(raw, h, expected, timeoutMs = 300000) {
  const t0 = now();
  for (;;) {
    const list = await raw.listProcesses(h);
    if (list.length >= expected && list.every((p) => FINAL.has(p.status))) return list;
    if (now() - t0 > timeoutMs) throw new Error(`processes not final after ${timeoutMs} ms`);
    await sleep(list.length > 2000 ? 500 : 100);
  }
}

export async function sdkCallCost(ctx) {
  const server = await startServer({ 'max-sandboxes': 300, 'max-processes': 256 });
  try {
    const [sdk, off] = await Promise.all([loadSandlot(), loadOfficial()]);
    const clients = {
      sandlot: sandlotClient(server, sdk),
      official: officialClient(server, off),
      raw: rawClient(server),
    };
    const raw = clients.raw;
    const rounds = ctx.quick ? 12 : 120;
    const warmup = 3;
    const ops = ['create', 'runCode', 'runCodeBackground', 'getProcess', 'killProcess', 'kill'];
    const acc = Object.fromEntries(ops.map((op) => [op, Object.fromEntries(VARIANTS.map((v) => [v, { samples: [], errors: [], unsupported: null }]))]));
    const leftovers = [];

    ctx.log(`  lifecycle rows: ${rounds} rounds (+${warmup} warm-up) x ${VARIANTS.length} clients`);
    for (let r = 0; r < warmup + rounds; r++) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]);
      const handles = {};
      const pids = {};
      const stage = async (op, needs, fn) => {
        for (const v of order) {
          const slot = acc[op][v];
          if (needs && !needs(v)) {
            if (r >= warmup) slot.errors.push('skipped: an earlier call of this round failed');
            continue;
          }
          const t0 = now();
          try {
            await fn(v);
            if (r >= warmup) slot.samples.push(now() - t0);
          } catch (e) {
            if (e instanceof Unsupported) slot.unsupported = e.message;
            else if (r >= warmup || !slot.errors.length) slot.errors.push(errorText(e));
          }
        }
      };
      await stage('create', null, async (v) => {
        handles[v] = await clients[v].create();
      });
      const hasSandbox = (v) => handles[v] !== undefined;
      await stage('runCode', hasSandbox, (v) => clients[v].runCode(handles[v], 'print(1)', 'python'));
      await stage('runCodeBackground', hasSandbox, async (v) => {
        pids[v] = await clients[v].runBackground(handles[v], 'sleep 60', 'bash');
      });
      const hasProcess = (v) => pids[v] !== undefined;
      await stage('getProcess', hasProcess, (v) => clients[v].getProcess(handles[v], pids[v]));
      await stage('killProcess', hasProcess, (v) => clients[v].killProcess(handles[v], pids[v]));
      await stage('kill', hasSandbox, async (v) => {
        try {
          await clients[v].kill(handles[v]);
        } catch (e) {
          leftovers.push(handles[v]);
          throw e;
        }
      });
    }

    // listProcesses against sandboxes holding N finished records, one sandbox per N, shared
    // by the three clients (each attached the way its SDK attaches to an existing sandbox).
    const sizes = ctx.quick ? [10, 100, 1000] : [10, 100, 1000];
    const listRounds = { 10: ctx.quick ? 15 : 60, 100: ctx.quick ? 10 : 40, 1000: ctx.quick ? 5 : 20 };
    const listRows = [];
    for (const n of sizes) {
      const box = await raw.create();
      try {
        await populate(raw, box, n);
        await waitAllFinal(raw, box, n);
        const hs = {};
        for (const v of VARIANTS) hs[v] = await clients[v].attach(box);
        const slot = Object.fromEntries(VARIANTS.map((v) => [v, { samples: [], errors: [] }]));
        for (let r = 0; r < 2 + listRounds[n]; r++) {
          for (let i = 0; i < VARIANTS.length; i++) {
            const v = VARIANTS[(i + r) % VARIANTS.length];
            const t0 = now();
            try {
              const list = await clients[v].listProcesses(hs[v]);
              const ms = now() - t0;
              if (!Array.isArray(list) || list.length !== n) throw new Error(`expected ${n} processes, got ${list?.length}`);
              if (r >= 2) slot[v].samples.push(ms);
            } catch (e) {
              slot[v].errors.push(errorText(e));
            }
          }
        }
        listRows.push({ op: `listProcesses (${n.toLocaleString('en-US')} processes)`, n, slot });
      } finally {
        await raw.kill(box).catch(() => {});
      }
    }
    for (const h of leftovers) await raw.kill(h.id ? h : { id: h.sandboxId }).catch(() => {});

    const rows = [];
    const label = {
      create: 'create',
      runCode: "runCode('print(1)')",
      runCodeBackground: 'runCodeBackground',
      getProcess: 'getProcess',
      killProcess: 'killProcess',
      kill: 'kill (sandbox)',
    };
    for (const op of ['create', 'runCode', 'runCodeBackground']) rows.push(row(label[op], acc[op]));
    for (const l of listRows) rows.push(row(l.op, l.slot));
    for (const op of ['getProcess', 'killProcess', 'kill']) rows.push(row(label[op], acc[op]));
    return { rows, rounds, listRounds };
  } finally {
    await server.stop();
  }
}

function row(op, slot) {
  const variants = {};
  for (const v of VARIANTS) {
    const s = slot[v];
    variants[v] = {
      ...summarize(s.samples),
      errors: s.errors.length,
      firstError: s.errors[0],
      unsupported: s.unsupported ?? undefined,
    };
  }
  const base = variants.raw.median;
  for (const v of VARIANTS) {
    variants[v].ratio = variants[v].median / base;
    variants[v].ratioP99 = variants[v].p99 / variants.raw.p99;
    variants[v].ratioCI = ratioCI(slot[v].samples, slot.raw.samples);
  }
  const vsOfficial = ratioCI(slot.sandlot.samples, slot.official.samples);
  return { op, variants, sandlotOverOfficialCI: vsOfficial };
}
