// §3 Time to interactive, measured like computesdk/benchmarks: from create to the first
// successful run (here runCode('print(1)'), python). Sequential (interleaved clients) and a
// burst of 100 creates at once per client.
import { loadOfficial, loadSandlot, officialClient, rawClient, sandlotClient } from '../lib/clients.mjs';
import { startServer } from '../lib/server.mjs';
import { burstOnce, PooledBursts } from '../lib/bursts.mjs';
import { errorText, now, summarize } from '../lib/stats.mjs';
import { VARIANTS } from './sdk.mjs';

export async function timeToInteractive(ctx) {
  const server = await startServer({ 'max-sandboxes': 400 });
  try {
    const [sdk, off] = await Promise.all([loadSandlot(), loadOfficial()]);
    const clients = { sandlot: sandlotClient(server, sdk), official: officialClient(server, off), raw: rawClient(server) };
    const raw = clients.raw;
    const idOf = (h) => h.id ?? h.sandboxId;

    const rounds = ctx.quick ? 20 : 100;
    const warmup = 3;
    const seq = Object.fromEntries(VARIANTS.map((v) => [v, { samples: [], errors: [] }]));
    ctx.log(`  sequential: ${rounds} rounds x ${VARIANTS.length} clients`);
    for (let r = 0; r < warmup + rounds; r++) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const v = VARIANTS[(i + r) % VARIANTS.length];
        let h;
        const t0 = now();
        try {
          h = await clients[v].create();
          await clients[v].runCode(h, 'print(1)', 'python');
          if (r >= warmup) seq[v].samples.push(now() - t0);
        } catch (e) {
          if (r >= warmup) seq[v].errors.push(errorText(e));
        }
        if (h) await raw.kill({ id: idOf(h) }).catch(() => {});
      }
    }
    const sequential = {};
    for (const v of VARIANTS) {
      sequential[v] = { ...summarize(seq[v].samples), errors: seq[v].errors.length, firstError: seq[v].errors[0] };
      sequential[v].successRate = seq[v].samples.length / (seq[v].samples.length + seq[v].errors.length);
    }
    for (const v of VARIANTS) sequential[v].ratio = sequential[v].median / sequential.raw.median;

    // Burst: N × (create → runCode) at once, each client in turn; all sandboxes killed after.
    // Full mode runs every client twice, the second time in reverse order, and pools the two.
    const n = 100;
    const clientsInBurst = ctx.quick ? ['sandlot', 'raw'] : ['sandlot', 'official', 'raw'];
    const order = ctx.quick ? clientsInBurst : [...clientsInBurst, ...[...clientsInBurst].reverse()];
    const pooled = Object.fromEntries(clientsInBurst.map((v) => [v, new PooledBursts()]));
    for (const v of order) {
      pooled[v].add(
        await burstOnce(n, {
          create: () => clients[v].create(),
          run: (h) => clients[v].runCode(h, 'print(1)', 'python'),
          kill: (h) => raw.kill({ id: idOf(h) }),
        }),
      );
    }
    const burst = Object.fromEntries(clientsInBurst.map((v) => [v, pooled[v].summary()]));
    for (const v of Object.keys(burst)) burst[v].ratio = burst[v].median / burst.raw.median;
    return { rounds, sequential, burst, burstSize: n };
  } finally {
    await server.stop();
  }
}
