// Splits the TTI burst into its parts: N creates at once (raw HTTP), then N first runs at
// once in those sandboxes (python print(1), then bash true), then N deletes at once, and
// prints the server's CPU time for each phase (utime+stime of sandlotd and its children).
//   node bench/profile/burst.mjs [N]
import fs from 'node:fs';
import { rawClient } from '../lib/clients.mjs';
import { startServer } from '../lib/server.mjs';
import { now, summarize } from '../lib/stats.mjs';

const n = Number(process.argv[2] ?? 100);
const ticks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime, stime, cutime, cstime (fields 14-17, here offset by the 2 skipped)
  return f.slice(11, 15).map(Number).reduce((a, b) => a + b, 0) * 10; // ms at 100 Hz
};
const server = await startServer({ 'max-sandboxes': n + 20 });
try {
  const raw = rawClient(server);
  const phase = async (name, fn) => {
    const c0 = ticks(server.pid);
    const t0 = now();
    const res = await Promise.all(Array.from({ length: n }, (_, i) => (async () => {
      const s = now();
      const value = await fn(i);
      return { ms: now() - s, value };
    })()));
    const wall = now() - t0;
    const cpu = ticks(server.pid) - c0;
    const s = summarize(res.map((r) => r.ms));
    console.log(`${name.padEnd(28)} median ${s.median.toFixed(0)} ms  p99 ${s.p99.toFixed(0)} ms  wall ${wall.toFixed(0)} ms  server+children CPU ${cpu} ms (${(cpu / n).toFixed(1)} ms each)`);
    return res.map((r) => r.value);
  };
  const boxes = await phase(`${n} x create`, () => raw.create());
  await phase(`${n} x runCode python`, (i) => raw.runCode(boxes[i], 'print(1)', 'python'));
  await phase(`${n} x runCode bash true`, (i) => raw.runCode(boxes[i], 'true', 'bash'));
  await phase(`${n} x GET /health (agent)`, (i) => raw.health(boxes[i]));
  await phase(`${n} x delete`, (i) => raw.kill(boxes[i]));

  // The whole TTI (create → first python run), all N asked for at once, timed from the burst's
  // start: once with everything in flight (fair sharing of the CPU), once with at most K in
  // flight (first come, first served: what a server-side semaphore would do).
  for (const k of [n, 8, 4]) {
    const t0 = now();
    let next = 0;
    const done = [];
    const worker = async () => {
      while (next < n) {
        next++;
        const h = await raw.create();
        await raw.runCode(h, 'print(1)', 'python');
        done.push({ ms: now() - t0, h });
      }
    };
    await Promise.all(Array.from({ length: k }, worker));
    const s = summarize(done.map((d) => d.ms));
    console.log(`TTI burst, at most ${String(k).padEnd(3)} in flight: median ${s.median.toFixed(0)} ms  p99 ${s.p99.toFixed(0)} ms  wall ${(now() - t0).toFixed(0)} ms`);
    await Promise.all(done.map((d) => raw.kill(d.h)));
  }
} finally {
  await server.stop();
}
