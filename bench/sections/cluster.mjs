// §6 Cluster mode (issue 15): a real local cluster from scripts/cluster.sh (Postgres, three
// `sandlotd node` agents in network namespaces, one `sandlotd control`) against a standalone
// sandlotd on the same machine (what one node does without a control plane), interleaved
// round by round. Time to interactive and create through the control plane; the router's
// cost per agent request (the same sandbox's /health through the control plane and straight
// at its node, the node verifying the same token); creates per second with 3 nodes and with
// 1 (the other two drained). Raw HTTP throughout.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { rawClient } from '../lib/clients.mjs';
import { BINARY, ROOT, startServer } from '../lib/server.mjs';
import { interleave, now, pairedDiff, pool, ratioCI, settle, summarize } from '../lib/stats.mjs';

const env = {
  ...process.env,
  SANDLOTD: BINARY,
  SANDLOT_CLUSTER_DIR: '/tmp/sandlot-cluster-bench',
  SANDLOT_CLUSTER_PREFIX: 'slb',
  SANDLOT_CLUSTER_SUBNET: '10.234.0',
  SANDLOT_LOG: 'warn',
};
const cluster = (...a) => execFileSync('bash', [path.join(ROOT, 'scripts/cluster.sh'), ...a], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const stat = (slot) => ({ ...summarize(slot.samples), errors: slot.errors.length, firstError: slot.errors[0] });

async function tti(server) {
  const raw = rawClient(server);
  const h = await raw.create();
  try {
    const r = await raw.runCode(h, 'print(1)');
    if (r.stdout !== '1\n') throw new Error(`unexpected output ${JSON.stringify(r.stdout)}`);
  } finally {
    await raw.kill(h).catch(() => {});
  }
}

/** Creates per second: `n` creates, `concurrency` at a time; the sandboxes are killed after. */
async function createRate(server, n, concurrency) {
  const raw = rawClient(server);
  await settle();
  const made = [];
  const t0 = now();
  await pool(Array.from({ length: n }, () => async () => made.push(await raw.create({ template_name: 'base' }))), concurrency);
  const seconds = (now() - t0) / 1000;
  await pool(made.map((h) => () => raw.kill(h).catch(() => {})), 8);
  return n / seconds;
}

export async function clusterMode({ quick, log }) {
  const rounds = quick ? 15 : 60;
  cluster('down');
  const out = cluster('up');
  const control = { url: out.match(/SANDLOT_URL=(\S+)/)[1], apiKey: out.match(/SANDLOT_API_KEY=(\S+)/)[1] };
  // Without a warm pool, as the nodes run (their creates carry the control plane's ids): the
  // ratio is then the control plane's and the router's cost, not the pool's absence.
  const standalone = await startServer({ 'warm-pool': 0 });
  const servers = { control, standalone };
  try {
    log(`  time to interactive and create, ${rounds} rounds`);
    const ttiRuns = await interleave(['control', 'standalone'], rounds, (v) => tti(servers[v]), { warmup: 3 });
    // A create alone (its kill untimed), the variants alternating.
    const createRuns = { control: { samples: [], errors: [] }, standalone: { samples: [], errors: [] } };
    for (let r = 0; r < rounds + 3; r++) {
      for (const v of r % 2 ? ['control', 'standalone'] : ['standalone', 'control']) {
        const client = rawClient(servers[v]);
        const t0 = now();
        const made = await client.create();
        if (r >= 3) createRuns[v].samples.push(now() - t0);
        await client.kill(made).catch(() => {});
      }
    }

    log('  router overhead per agent request');
    const raw = rawClient(control);
    const h = await raw.create();
    const info = await raw.call(`${control.url}/v1/sandboxes/${h.id}`, { headers: { 'X-API-Key': control.apiKey } });
    const nodeAddr = JSON.parse(cluster('status').split('\n').find((l) => l.startsWith('{'))).nodes.find((n) => n.name === info.node_id).addr;
    const direct = { ...h, host: `${nodeAddr}/sandboxes/${h.id}/agent` };
    const routerRuns = await interleave(['router', 'direct'], rounds * 5, (v) => raw.health(v === 'router' ? h : direct), { warmup: 10 });
    await raw.kill(h).catch(() => {});

    log('  creates per second: 3 nodes, then 1');
    const n = quick ? 30 : 90;
    const three = [];
    for (let i = 0; i < (quick ? 1 : 2); i++) three.push(await createRate(control, n, 12));
    for (const node of ['node2', 'node3']) await raw.call(`${control.url}/v1/cluster/nodes/${node}/drain`, { method: 'POST', headers: { 'X-API-Key': control.apiKey } });
    const one = [];
    for (let i = 0; i < (quick ? 1 : 2); i++) one.push(await createRate(control, n, 12));

    const t = { control: stat(ttiRuns.control), standalone: stat(ttiRuns.standalone) };
    const c = { control: stat(createRuns.control), standalone: stat(createRuns.standalone) };
    const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    return {
      rounds,
      tti: { ...t, ratio: t.control.median / t.standalone.median, ratioCI: ratioCI(ttiRuns.control.samples, ttiRuns.standalone.samples) },
      create: { ...c, ratio: c.control.median / c.standalone.median, ratioCI: ratioCI(createRuns.control.samples, createRuns.standalone.samples) },
      router: { router: stat(routerRuns.router), direct: stat(routerRuns.direct), overhead: pairedDiff(routerRuns.router.byRound, routerRuns.direct.byRound) },
      rate: { n, concurrency: 12, three, one, ratio: median(three) / median(one) },
    };
  } finally {
    await standalone.stop();
    cluster('down');
  }
}
