// Plain sandbox creates alone, beside networked ones, and after a pause, for one or more
// sandlotd builds: each build runs every pattern in blocks, and the builds take turns block
// by block, so the machine's other load falls on all of them alike.
//   node bench/profile/netns.mjs [rounds per block] [binary ...]
// Without binaries: this checkout's release build (or SANDLOT_BENCH_BINARY).
// Patterns (each round is create + delete, timed at the client, raw HTTP):
//   alone   plain creates back to back
//   mixed   every other create has internet_access (veth + nftables)
//   paused  plain creates, each after 50 ms without any create or delete
import { rawClient } from '../lib/clients.mjs';
import { BINARY, startServer } from '../lib/server.mjs';
import { ratioCI, settle, sleep, now, summarize } from '../lib/stats.mjs';

const args = process.argv.slice(2);
const rounds = Number(args[0] ?? 40);
const binaries = args.length > 1 ? args.slice(1) : [BINARY];
const blocks = 3;

async function block(server, pattern, out) {
  const raw = rawClient(server);
  for (let i = 0; i < rounds; i++) {
    const withNet = pattern === 'mixed' && i % 2 === 1;
    if (pattern === 'paused') await sleep(50);
    const t0 = now();
    const h = await raw.create(withNet ? { internet_access: true } : {});
    out[withNet ? 'mixed: networked' : pattern].push(now() - t0);
    await raw.kill(h);
  }
}

const results = binaries.map(() => ({ alone: [], mixed: [], 'mixed: networked': [], paused: [] }));
for (let b = 0; b < blocks; b++) {
  for (const pattern of ['alone', 'mixed', 'paused']) {
    for (let k = 0; k < binaries.length; k++) {
      const which = (k + b) % binaries.length;
      const server = await startServer({ 'max-sandboxes': 500, 'network-cidr': `10.${252 + which}.0.0/16` }, binaries[which]);
      try {
        await settle();
        await block(server, pattern, results[which]);
      } finally {
        await server.stop();
      }
    }
  }
}
const fmt = (s) => `p50 ${s.median.toFixed(2)}  p95 ${s.p95.toFixed(2)}  (n=${s.n})`;
for (let k = 0; k < binaries.length; k++) {
  const r = results[k];
  console.log(`\n${binaries[k]}`);
  for (const [name, samples] of Object.entries(r)) console.log(`  ${name.padEnd(18)} ${fmt(summarize(samples))}`);
  const ci = (a, b) => ratioCI(r[a], r[b]).map((x) => x.toFixed(2)).join('–');
  const ratio = (a, b) => (summarize(r[a]).median / summarize(r[b]).median).toFixed(2);
  console.log(`  mixed / alone      ${ratio('mixed', 'alone')}× [${ci('mixed', 'alone')}]`);
  console.log(`  paused / alone     ${ratio('paused', 'alone')}× [${ci('paused', 'alone')}]`);
}
