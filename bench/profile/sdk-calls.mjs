// Where the Sandlot SDK spends its time on a call: runs one call many times under the V8
// sampling profiler and prints the functions with the most self time.
//   node bench/profile/sdk-calls.mjs [list1000|list10|getProcess|runCodeBackground] [iterations]
// (Writes nothing to the repo: the .cpuprofile goes to a temp dir that is removed.)
import fs from 'node:fs';
import inspector from 'node:inspector';
import os from 'node:os';
import path from 'node:path';
import { loadSandlot, rawClient, sandlotClient } from '../lib/clients.mjs';
import { startServer } from '../lib/server.mjs';
import { populate, waitAllFinal } from '../sections/sdk.mjs';

const what = process.argv[2] ?? 'list1000';
const iterations = Number(process.argv[3] ?? 300);
const server = await startServer({ 'max-processes': 1024 });
try {
  const raw = rawClient(server);
  const sdk = await loadSandlot();
  const sl = sandlotClient(server, sdk);
  const box = await raw.create();
  const n = what === 'list1000' ? 1000 : 10;
  await populate(raw, box, n);
  await waitAllFinal(raw, box, n);
  const h = await sl.attach(box);
  const [pid] = (await raw.listProcesses(box)).map((p) => p.process_id);
  const call = {
    list1000: () => sl.listProcesses(h),
    list10: () => sl.listProcesses(h),
    getProcess: () => sl.getProcess(h, pid),
    runCodeBackground: () => sl.runBackground(h, 'true', 'bash'),
    rawList: () => raw.listProcesses(box),
  }[what];
  for (let i = 0; i < 20; i++) await call();
  const session = new inspector.Session();
  session.connect();
  const post = (m, p) => new Promise((res, rej) => session.post(m, p, (e, r) => (e ? rej(e) : res(r))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
  await post('Profiler.start');
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await call();
  const elapsed = performance.now() - t0;
  const { profile } = await post('Profiler.stop');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-prof-'));
  fs.writeFileSync(path.join(dir, 'p.cpuprofile'), JSON.stringify(profile));
  const self = new Map();
  const dt = (profile.endTime - profile.startTime) / profile.samples.length;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const id of profile.samples) {
    const node = byId.get(id);
    const f = node.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${path.basename(f.url || '')}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log(`${what}: ${iterations} calls, ${(elapsed / iterations).toFixed(3)} ms per call`);
  for (const [k, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / iterations / 1000).toFixed(3)} ms/call  ${k}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  await raw.kill(box).catch(() => {});
} finally {
  await server.stop();
}
