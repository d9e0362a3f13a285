// §4 (end) 50 concurrent clients mixing calls through the Sandlot SDK for a fixed time, then a
// check that every process any client started is listed with a final status (and the output
// or status it must have): zero errors and zero lost records is the target.
import { loadSandlot, rawClient } from '../lib/clients.mjs';
import { rssKiB, startServer } from '../lib/server.mjs';
import { errorText, now, sleep, summarize } from '../lib/stats.mjs';

const FINAL = new Set(['completed', 'failed', 'killed', 'timeout']);

function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

export async function soak(ctx) {
  const clients = 50;
  const sandboxes = 10;
  const durationMs = (ctx.quick ? 15 : 60) * 1000;
  const server = await startServer({ 'max-sandboxes': 200 });
  try {
    const { Sandbox } = await loadSandlot();
    const opts = { apiKey: server.apiKey, baseURL: server.url };
    const raw = rawClient(server);
    const boxes = [];
    for (let i = 0; i < sandboxes; i++) boxes.push(await raw.create());
    const started = []; // { box, processId, expect: 'completed' | 'killed', stdout }
    const lat = {};
    const errors = [];
    const record = (op, ms) => (lat[op] ??= []).push(ms);
    const rssStart = rssKiB(server.pid);
    let rssPeak = rssStart;
    const rssTimer = setInterval(() => {
      try {
        rssPeak = Math.max(rssPeak, rssKiB(server.pid));
      } catch {
        /* gone */
      }
    }, 500);
    const deadline = now() + durationMs;

    async function client(c) {
      const rand = rng(c * 7919 + 17);
      const box = boxes[c % sandboxes];
      const sb = await Sandbox.connect(box.id, opts);
      const mine = [];
      let k = 0;
      while (now() < deadline) {
        const x = rand();
        k++;
        let op;
        const t0 = now();
        try {
          if (x < 0.2) {
            op = 'runCode python';
            const r = await sb.runCode(`print(${c * 100000 + k})`, { language: 'python' });
            if (r.stdout !== `${c * 100000 + k}\n` || !r.success) throw new Error(`wrong result ${JSON.stringify(r)}`);
          } else if (x < 0.3) {
            op = 'runCode bash';
            const r = await sb.runCode(`echo b${c}-${k}`, { language: 'bash' });
            if (r.stdout !== `b${c}-${k}\n`) throw new Error(`wrong result ${JSON.stringify(r)}`);
          } else if (x < 0.55) {
            op = 'runCodeBackground';
            const tag = `c${c}-${k}`;
            const delay = (rand() * 0.5).toFixed(2);
            const r = await sb.runCodeBackground(`sleep ${delay}; echo ${tag}`, { language: 'bash', name: tag });
            const rec = { box, processId: r.processId, expect: 'completed', stdout: `${tag}\n` };
            started.push(rec);
            mine.push(rec);
          } else if (x < 0.7) {
            op = 'listProcesses';
            await sb.listProcesses();
          } else if (x < 0.85) {
            op = 'getProcess';
            const rec = mine[Math.floor(rand() * mine.length)];
            if (rec) {
              const p = await sb.getProcess(rec.processId);
              if (p.processId !== rec.processId) throw new Error('getProcess returned another process');
            }
          } else if (x < 0.95) {
            op = 'runCodeBackground + killProcess';
            const r = await sb.runCodeBackground('sleep 30', { language: 'bash', name: `kill-${c}-${k}` });
            const rec = { box, processId: r.processId, expect: 'killed' };
            started.push(rec);
            mine.push(rec);
            const kr = await sb.killProcess(r.processId);
            if (kr.status !== 'killed') throw new Error(`kill answered ${JSON.stringify(kr)}`);
          } else {
            op = 'create + runCode + kill';
            const s2 = await Sandbox.create({ template: 'code-interpreter', ...opts });
            const r = await s2.runCode('print(7)', { language: 'python' });
            if (r.stdout !== '7\n') throw new Error(`wrong result ${JSON.stringify(r)}`);
            await s2.kill();
          }
          record(op, now() - t0);
        } catch (e) {
          errors.push(`${op}: ${errorText(e)}`);
        }
      }
    }
    ctx.log(`  ${clients} clients on ${sandboxes} sandboxes for ${durationMs / 1000} s`);
    const t0 = now();
    await Promise.all(Array.from({ length: clients }, (_, c) => client(c).catch((e) => errors.push(`client ${c}: ${errorText(e)}`))));
    const wall = now() - t0;
    clearInterval(rssTimer);

    // Every started process: listed, final, with the status (and output) it must have.
    let lost = 0;
    let notFinal = 0;
    let wrong = 0;
    const problems = [];
    const waitUntil = now() + 60000;
    for (const box of boxes) {
      const mine = started.filter((s) => s.box === box);
      let list;
      for (;;) {
        list = new Map((await raw.listProcesses(box)).map((p) => [p.process_id, p]));
        const pending = mine.filter((s) => list.has(s.processId) && !FINAL.has(list.get(s.processId).status));
        if (!pending.length || now() > waitUntil) break;
        await sleep(200);
      }
      for (const s of mine) {
        const p = list.get(s.processId);
        if (!p) {
          lost++;
          if (problems.length < 5) problems.push(`lost ${s.processId}`);
        } else if (!FINAL.has(p.status)) {
          notFinal++;
          if (problems.length < 5) problems.push(`${s.processId} still ${p.status}`);
        } else if (p.status !== s.expect || (s.stdout !== undefined && p.stdout !== s.stdout)) {
          wrong++;
          if (problems.length < 5) problems.push(`${s.processId}: ${p.status} ${JSON.stringify(p.stdout)} (expected ${s.expect})`);
        }
      }
    }
    for (const b of boxes) await raw.kill(b).catch(() => {});
    const ops = Object.entries(lat).map(([op, s]) => ({ op, ...summarize(s) }));
    const total = ops.reduce((a, o) => a + o.n, 0);
    return {
      clients,
      sandboxes,
      seconds: wall / 1000,
      calls: total,
      callsPerSec: total / (wall / 1000),
      errors: errors.length,
      errorSamples: errors.slice(0, 5),
      processes: started.length,
      lost,
      notFinal,
      wrong,
      problems,
      ops,
      serverRssStartKiB: rssStart,
      serverRssPeakKiB: rssPeak,
    };
  } finally {
    await server.stop();
  }
}
