// Turns the results of a run into bench/results/report.{json,md}: every figure a median with
// p99, a ratio against the baseline measured in the same run, and a plain verdict per target.
import fs from 'node:fs';
import path from 'node:path';
import { BUDGET_KB } from '../../scripts/sdk-size.mjs';

export const TARGETS = {
  /** A call that is one request (issue 11, item 4). */
  sdkVsRaw: 1.1,
  /** listProcesses, at every size: one request and a mapping per record. */
  sdkListVsRaw: 1.2,
  /** gzip KB: what Node loads, what a browser loads, the npm tarball (scripts/sdk-size.mjs). */
  nodeGzipKB: BUDGET_KB.node,
  webGzipKB: BUDGET_KB.web,
  tarballGzipKB: BUDGET_KB.tarball,
  ttiP50: 40,
  burstMedian: 500,
  createP50: 8,
  createNetP50: 15,
  /** Plain creates beside networked ones ÷ alone: within noise (the interval holds 1, or ≤ this). */
  createMixRatio: 1.1,
  execOverhead: 3,
  idleSandboxMB: 2,
  warmRunOverHttp: 1.5,
  contextTtiP50: 12,
  contextBurstMedian: 300,
  /** Time to interactive through a cluster's control plane ÷ a standalone sandlotd. */
  clusterTtiRatio: 1.3,
};

const ms = (x) => (x === undefined || Number.isNaN(x) ? '—' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
const ratio = (x) => (x === undefined || Number.isNaN(x) || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`);
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const mbFromKiB = (k) => `${(k / 1024).toFixed(2)} MB`;
const pct = (x) => `${(x * 100).toFixed(1)} %`;
const ci = (c) => (c ? ` [${c[0].toFixed(2)}–${c[1].toFixed(2)}]` : '');
const yes = (ok) => (ok ? '**met**' : '**MISSED**');
const int = (x) => Math.round(x).toLocaleString('en-US');

export function verdicts(r) {
  const v = [];
  if (r.sdk) {
    for (const row of r.sdk.rows) {
      const s = row.variants.sandlot;
      const o = row.variants.official;
      const limit = row.op.startsWith('listProcesses') ? TARGETS.sdkListVsRaw : TARGETS.sdkVsRaw;
      v.push({
        figure: `SDK ${row.op}: Sandlot / raw fetch (median)`,
        target: `≤ ${limit}×`,
        value: `${ratio(s.ratio)}${ci(s.ratioCI)}${s.errors ? ` (${s.errors} errors)` : ''}`,
        met: s.ratio <= limit && !s.errors,
      });
      if (o.unsupported || (!o.n && o.errors)) {
        v.push({ figure: `SDK ${row.op}: Sandlot vs official`, target: 'faster', value: o.unsupported ? 'official SDK has no such call' : `official failed: ${o.firstError}`, met: null });
      } else {
        v.push({
          figure: `SDK ${row.op}: Sandlot vs official (median)`,
          target: 'faster',
          value: `${ms(s.median)} vs ${ms(o.median)} ms (ratio ${ratio(s.median / o.median)}${ci(row.sandlotOverOfficialCI)})`,
          met: s.median < o.median,
        });
      }
    }
  }
  if (r.weight) {
    const w = r.weight.sandlot;
    v.push({ figure: 'package: .wasm + Node JS, gzip', target: `≤ ${TARGETS.nodeGzipKB} KB`, value: kb(w.node.gzip), met: w.node.gzip <= TARGETS.nodeGzipKB * 1024 });
    v.push({ figure: 'package: .wasm + browser JS, gzip', target: `≤ ${TARGETS.webGzipKB} KB`, value: kb(w.web.gzip), met: w.web.gzip <= TARGETS.webGzipKB * 1024 });
    if (w.pack) v.push({ figure: 'package: whole npm tarball (all files, types and README included)', target: `≤ ${TARGETS.tarballGzipKB} KB`, value: kb(w.pack.tarball), met: w.pack.tarball <= TARGETS.tarballGzipKB * 1024 });
  }
  if (r.tti) {
    const s = r.tti.sequential.sandlot;
    v.push({ figure: 'TTI sequential p50 (Sandlot SDK)', target: `≤ ${TARGETS.ttiP50} ms`, value: `${ms(s.median)} ms`, met: s.median <= TARGETS.ttiP50 && !s.errors });
    const b = r.tti.burst.sandlot;
    v.push({ figure: `TTI burst of ${r.tti.burstSize}: success`, target: '100 %', value: pct(b.successRate), met: b.successRate === 1 });
    v.push({ figure: `TTI burst of ${r.tti.burstSize}: median`, target: `≤ ${TARGETS.burstMedian} ms`, value: `${ms(b.median)} ms`, met: b.median <= TARGETS.burstMedian });
  }
  if (r.create) {
    const c = r.create.rows.find((x) => x.op.startsWith('POST'));
    v.push({ figure: 'server: sandbox create p50 (raw HTTP, disk quota on)', target: `≤ ${TARGETS.createP50} ms`, value: `${ms(c.median)} ms`, met: c.median <= TARGETS.createP50 });
    const off = r.create.rows.find((x) => x.op === 'POST /v1/sandboxes (quota off)');
    if (off) v.push({ figure: 'server: sandbox create p50, quota on ÷ quota off (same run)', target: 'info', value: `${ratio(c.median / off.median)} (${ms(off.median)} ms off)`, met: null });
    const withNet = r.create.rows.find((x) => x.op === 'POST /v1/sandboxes (internet_access)');
    const netOff = r.create.rows.find((x) => x.op === 'POST /v1/sandboxes (internet_access, quota off)');
    if (netOff && off) v.push({ figure: 'server: sandbox create p50 with internet_access, quota off (same run)', target: `≤ ${TARGETS.createNetP50} ms`, value: `${ms(netOff.median)} ms (${ms(off.median)} ms without)`, met: netOff.median <= TARGETS.createNetP50 });
    if (withNet) v.push({ figure: 'server: sandbox create p50 with internet_access (veth + nftables, same run)', target: `≤ ${TARGETS.createNetP50} ms`, value: `${ms(withNet.median)} ms (${ms(c.median)} ms without)`, met: withNet.median <= TARGETS.createNetP50 });
    const mix = r.create.mix;
    if (mix) {
      const m = mix.mixedVsAlone;
      const within = (m.ci && m.ci[0] <= 1 && m.ci[1] >= 1) || m.ratio <= TARGETS.createMixRatio;
      v.push({
        figure: 'server: plain create p50 with every other create networked ÷ back to back (same server, same run)',
        target: `within noise (interval holds 1×, or ≤ ${TARGETS.createMixRatio}×)`,
        value: `${ratio(m.ratio)}${ci(m.ci)} (${ms(mix.rows[1].median)} vs ${ms(mix.rows[0].median)} ms)${mix.errors ? `, ${mix.errors} errors` : ''}`,
        met: within && !mix.errors,
      });
    }
  }
  if (r.contexts) {
    const c = r.contexts;
    v.push({ figure: "warm python context: print(1) − agent HTTP floor (median of per-round differences)", target: `≤ ${TARGETS.warmRunOverHttp} ms`, value: `${ms(c.warmOverHttp.median)} ms`, met: c.warmOverHttp.median <= TARGETS.warmRunOverHttp });
    v.push({ figure: 'time to interactive with contexts: create → first print(1), p50', target: `≤ ${TARGETS.contextTtiP50} ms`, value: `${ms(c.ttiWarm.median)} ms (p99 ${ms(c.ttiWarm.p99)})`, met: c.ttiWarm.median <= TARGETS.contextTtiP50 && !c.ttiWarm.errors });
    v.push({ figure: 'burst of 100 creates + first print(1) in a context: median (bursts pooled, node:http load generator)', target: `≤ ${TARGETS.contextBurstMedian} ms`, value: `${ms(c.burstWarm.median)} ms`, met: c.burstWarm.median <= TARGETS.contextBurstMedian });
    v.push({ figure: 'burst of 100 creates + first print(1) in a context: success', target: '100 %', value: pct(c.burstWarm.successRate), met: c.burstWarm.successRate === 1 });
    if (c.memForked) v.push({ figure: 'memory per idle sandbox with a warm (forked) python context: PSS / memory cgroup', target: 'reported', value: `${mbFromKiB(c.memForked.pss.median)} / ${mbFromKiB(c.memForked.cgroup.median)} (${c.memPooled ? `from the warm pool: ${mbFromKiB(c.memPooled.pss.median)} / ${mbFromKiB(c.memPooled.cgroup.median)}; ` : ''}exec'd context: ${mbFromKiB(c.memExecd.pss.median)} / ${mbFromKiB(c.memExecd.cgroup.median)})`, met: null });
  }
  if (r.userns) {
    const u = r.userns;
    v.push({ figure: 'user namespace per sandbox: create, median with − without', target: 'small (reported)', value: `${u.create.diff >= 0 ? '+' : ''}${ms(u.create.diff)} ms (${ms(u.create.on.median)} vs ${ms(u.create.off.median)} ms, ratio${ci(u.create.ratioCI)})`, met: null });
    v.push({ figure: 'user namespace per sandbox: fresh bash /bin/true, median of per-round differences', target: 'small (reported)', value: `${u.exec.diff >= 0 ? '+' : ''}${ms(u.exec.diff)} ms (${ms(u.exec.on.median)} vs ${ms(u.exec.off.median)} ms, ratio${ci(u.exec.ratioCI)})`, met: null });
  }
  if (r.cluster) {
    const c = r.cluster;
    v.push({ figure: 'cluster: time to interactive through the control plane ÷ standalone (median)', target: `≤ ${TARGETS.clusterTtiRatio}×`, value: `${ratio(c.tti.ratio)}${ci(c.tti.ratioCI)} (${ms(c.tti.control.median)} vs ${ms(c.tti.standalone.median)} ms)`, met: c.tti.ratio <= TARGETS.clusterTtiRatio && !c.tti.control.errors });
    v.push({ figure: 'cluster: create p50 through the control plane', target: 'reported', value: `${ms(c.create.control.median)} ms (standalone ${ms(c.create.standalone.median)} ms, ${ratio(c.create.ratio)}${ci(c.create.ratioCI)})`, met: null });
    v.push({ figure: 'cluster: router overhead per agent request (median of per-round differences)', target: 'reported', value: `${ms(c.router.overhead.median)} ms (${ms(c.router.router.median)} vs ${ms(c.router.direct.median)} ms)`, met: null });
    v.push({ figure: 'cluster: creates per second, 3 nodes ÷ 1 node', target: 'reported', value: `${ratio(c.rate.ratio)} (${c.rate.three.map((x) => x.toFixed(0)).join(', ')} vs ${c.rate.one.map((x) => x.toFixed(0)).join(', ')} /s)`, met: null });
  }
  if (r.exec) {
    const o = r.exec.overhead;
    v.push({ figure: "exec overhead: bash '/bin/true' in a sandbox − host bash -c (median of per-round differences)", target: `≤ ${TARGETS.execOverhead} ms`, value: `${ms(o.pairedBash.median)} ms`, met: o.pairedBash.median <= TARGETS.execOverhead });
    if (o.commandVsExecute) v.push({ figure: "commands.run('true') ÷ /execute bash '/bin/true' (same run)", target: '≈ 1×', value: ratio(o.commandVsExecute), met: o.commandVsExecute <= 1.15 });
    v.push({ figure: "exec overhead: python 'pass' in a sandbox − host python3 -c (median of per-round differences)", target: `≤ ${TARGETS.execOverhead} ms`, value: `${ms(o.pairedPython.median)} ms`, met: o.pairedPython.median <= TARGETS.execOverhead });
  }
  if (r.files) {
    for (const x of r.files.rows.slice(1)) {
      v.push({ figure: `files: ${x.op}, ${r.files.sizeMB} MB`, target: 'info (vs host cp)', value: `${x.mbPerSec.toFixed(0)} MB/s, ${ratio(x.vsHost)} host cp's time`, met: x.errors ? false : null });
    }
  }
  if (r.memory) {
    const m = r.memory;
    const lim = TARGETS.idleSandboxMB * 1024;
    v.push({ figure: 'idle sandbox: PSS of its helper processes (median)', target: `≤ ${TARGETS.idleSandboxMB} MB`, value: mbFromKiB(m.pss.median), met: m.pss.median <= lim });
    v.push({ figure: 'idle sandbox: memory cgroup usage (median)', target: `≤ ${TARGETS.idleSandboxMB} MB`, value: mbFromKiB(m.cgroup.median), met: m.cgroup.median <= lim });
  }
  if (r.soak) {
    const s = r.soak;
    v.push({ figure: `${s.clients} clients × ${Math.round(s.seconds)} s: errors`, target: '0', value: String(s.errors), met: s.errors === 0 });
    v.push({ figure: `${s.clients} clients × ${Math.round(s.seconds)} s: lost / unfinished / wrong records`, target: '0', value: `${s.lost} / ${s.notFinal} / ${s.wrong} of ${int(s.processes)}`, met: s.lost + s.notFinal + s.wrong === 0 });
  }
  return v;
}

export function writeReport(results, outDir, { suffix = '', notesFile } = {}) {
  fs.mkdirSync(outDir, { recursive: true });
  const v = verdicts(results);
  const json = { ...results, targets: TARGETS, verdicts: v };
  fs.writeFileSync(path.join(outDir, `report${suffix}.json`), JSON.stringify(json, null, 2) + '\n');
  const md = markdown(results, v, notesFile);
  fs.writeFileSync(path.join(outDir, `report${suffix}.md`), md);
  return { verdicts: v, md };
}

function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function markdown(r, v, notesFile) {
  const m = r.meta;
  const out = [];
  out.push('# Sandlot benchmark report', '');
  out.push(`Run ${m.date} · mode **${m.mode}** · ${m.durationS ? `${Math.round(m.durationS)} s` : ''} · commit \`${m.commit}\``);
  out.push(`Machine: ${m.cpu} × ${m.cores} cores, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}. Everything on 127.0.0.1: the clients, sandlotd and the sandboxes share the same ${m.cores} cores. Load average before the run ${m.loadBefore}, after ${m.loadAfter}${m.foreign ? `; other processes of the machine seen during the run: ${m.foreign}` : ''}.`, '');
  out.push('Every time is in milliseconds: the **median** and the **p99** (nearest rank), with the ratio of medians against the baseline named in the table, measured in the same run with the variants interleaved round-robin (the first variant of each round rotates), so machine noise hits all of them alike. Reproduce with `npm run bench` (`node bench/run.mjs --quick` for a short run).', '');

  out.push('## Targets', '');
  out.push('Brackets hold the 95 % bootstrap interval of a ratio of medians: an interval that straddles the target means the verdict is within this run\'s noise.', '');
  out.push(table(['figure', 'target', 'measured', 'verdict'], v.map((x) => [x.figure, x.target, x.value, x.met === null ? 'n/a' : yes(x.met)])));
  const missed = v.filter((x) => x.met === false);
  out.push('', missed.length ? `**${missed.length} of ${v.filter((x) => x.met !== null).length} targets missed**: ${missed.map((x) => x.figure).join('; ')}. The causes are in [Analysis](#analysis).` : '**Every target is met.**', '');

  if (r.sdk) {
    out.push('## 1. SDK call cost', '');
    out.push(`One local sandlotd; ${r.sdk.rounds} rounds of create → runCode → runCodeBackground (\`sleep 60\`, bash) → getProcess → killProcess → kill for each client, interleaved per call; listProcesses against one sandbox per size holding that many finished records (${Object.entries(r.sdk.listRounds).map(([n, k]) => `${k} rounds at ${n}`).join(', ')}). \`official\` is \`@hopx-ai/sdk\` ${r.meta.officialVersion}, unmodified, pointed at sandlotd with \`baseURL\`. \`raw\` is \`fetch\` + \`JSON.parse\` of the same endpoint: the floor. Ratios are against raw.`, '');
    out.push(
      table(
        ['call', 'Sandlot median / p99', '× raw', 'official median / p99', '× raw', 'raw median / p99'],
        r.sdk.rows.map((row) => {
          const s = row.variants.sandlot;
          const o = row.variants.official;
          const w = row.variants.raw;
          const cell = (x) => (x.unsupported ? 'no such call' : x.n ? `${ms(x.median)} / ${ms(x.p99)}${x.errors ? ` (${x.errors} errors)` : ''}` : `failed (${x.errors})`);
          return [row.op, cell(s), s.unsupported ? '—' : `${ratio(s.ratio)}${ci(s.ratioCI)}`, cell(o), o.unsupported || !o.n ? '—' : `${ratio(o.ratio)}${ci(o.ratioCI)}`, cell(w)];
        }),
      ),
    );
    const errs = r.sdk.rows.flatMap((row) => Object.entries(row.variants).filter(([, x]) => x.firstError).map(([k, x]) => `- ${row.op}, ${k}: ${x.errors} × \`${x.firstError}\``));
    if (errs.length) out.push('', 'Errors:', ...errs);
    out.push('', 'What each client does per call: the official SDK\'s `create` is `POST /v1/sandboxes` **plus** `GET /v1/sandboxes/{id}` (it reads the agent URL from a second call); both SDKs\' other calls are one request each (the Sandlot SDK checks its cached token\'s expiry locally, the official one too). `getProcess` does not exist in the official SDK.', '');
  }

  if (r.weight) {
    const w = r.weight.sandlot;
    const o = r.weight.official;
    out.push('## 2. Package weight and cold start', '');
    out.push(
      table(
        ['what', 'files', 'raw', 'gzip -9'],
        [
          ['sandlot: `.wasm`', w.wasm.files, kb(w.wasm.raw), kb(w.wasm.gzip)],
          ['sandlot: Node JS (`dist/node/*.{js,cjs,mjs}`)', w.nodeJs.files, kb(w.nodeJs.raw), kb(w.nodeJs.gzip)],
          ['sandlot: browser JS (`dist/web/*.js`)', w.webJs.files, kb(w.webJs.raw), kb(w.webJs.gzip)],
          ['sandlot: what Node loads (.wasm + Node JS)', '', kb(w.node.raw), `**${kb(w.node.gzip)}**`],
          ['sandlot: what a browser loads (.wasm + browser JS)', '', kb(w.web.raw), `**${kb(w.web.gzip)}**`],
          ['sandlot: type declarations', w.types.files, kb(w.types.raw), kb(w.types.gzip)],
          ['sandlot: installed (all of pkg/)', w.installed.files, kb(w.installed.raw), kb(w.installed.gzip)],
          ...(w.pack ? [['sandlot: `npm pack` tarball', w.pack.entries, kb(w.pack.unpacked), kb(w.pack.tarball)]] : []),
          ['@hopx-ai/sdk alone', o.sdkOnly.files, kb(o.sdkOnly.raw), kb(o.sdkOnly.gzip)],
          [`@hopx-ai/sdk installed with its ${o.packages.length - 1} dependencies`, o.installed.files, kb(o.installed.raw), kb(o.installed.gzip)],
          ['… of which JS files', o.js.files, kb(o.js.raw), kb(o.js.gzip)],
        ],
      ),
    );
    out.push('', `Installed size ratio: @hopx-ai/sdk with dependencies / sandlot = ${ratio(o.installed.raw / w.installed.raw)} (raw). Gzip sizes are per file, summed. The official SDK's dependency closure: ${o.packages.join(', ')}.`, '');
    out.push(`Cold start: a fresh \`node\` process per sample (${r.weight.rounds} rounds, interleaved). "in-process" is \`performance.now()\` around the \`import\`/\`require\` alone (the Sandlot SDK compiles and instantiates its .wasm there); "process" is the wall time of the whole \`node\` process, and its difference from a process that imports nothing.`, '');
    out.push(
      table(
        ['variant', 'in-process median / p99', 'process wall median / p99', 'wall over bare node'],
        r.weight.coldStart.map((c) => [c.variant, `${ms(c.inside.median)} / ${ms(c.inside.p99)}`, `${ms(c.wall.median)} / ${ms(c.wall.p99)}`, c.variant.startsWith('node') ? '—' : `+${ms(c.wallOverNode)}`]),
      ),
      '',
    );
  }

  if (r.tti) {
    const t = r.tti;
    out.push('## 3. Time to interactive', '');
    out.push(`As computesdk/benchmarks measures cloud sandboxes: from \`create\` to the first successful \`runCode('print(1)')\` (python), through each client. Sequential: ${t.rounds} rounds per client, interleaved; each sandbox is killed after its sample (not timed). Ratios are against raw fetch.`, '');
    out.push(
      table(
        ['client', 'p50', 'p95', 'p99', '× raw (p50)', 'success'],
        Object.entries(t.sequential).map(([k, s]) => [k, ms(s.median), ms(s.p95), ms(s.p99), ratio(s.ratio), pct(s.successRate)]),
      ),
    );
    out.push('', `Burst: ${t.burstSize} × (create → runCode) started at once, per client, one client after the other with a pause between; in a full run each client bursts twice (the second time in reverse order) and its samples are pooled. Each time runs from the burst's start to that sandbox's first successful run.`, '');
    out.push(
      table(
        ['client', 'bursts', 'success', 'median', 'p95', 'p99', '× raw (median)', 'median of each burst', 'wall for all 100'],
        Object.entries(t.burst).map(([k, b]) => [k, b.bursts ?? 1, pct(b.successRate), ms(b.median), ms(b.p95), ms(b.p99), ratio(b.ratio), (b.medians ?? [b.median]).map(ms).join(', '), ms(b.wall)]),
      ),
    );
    const be = Object.entries(t.burst).filter(([, b]) => b.firstError);
    if (be.length) out.push('', ...be.map(([k, b]) => `- ${k}: ${b.errors} failures, first: \`${b.firstError}\``));
    out.push('', 'For scale, computesdk\'s published cloud figures (2026-05-05, `node -v` as the command, real network): sequential median Daytona 186 ms, E2B 491 ms, HopX 1,422 ms; burst of 100 median Daytona 367 ms, E2B 822 ms, HopX 15,101 ms (99 % success). Ours has no network hop, so it is a floor for the server, not a like-for-like comparison.', '');
  }

  if (r.create || r.exec || r.background || r.memory || r.files || r.soak) out.push('## 4. Server', '');
  if (r.create) {
    out.push('### Sandbox create and delete (raw HTTP, control plane)', '');
    out.push(`${r.create.rounds} rounds, interleaved with the control plane's \`GET /health\` as the HTTP floor (same connection pool).`, '');
    out.push(table(['call', 'median', 'p95', 'p99', 'median − floor'], r.create.rows.map((x) => [x.op, ms(x.median), ms(x.p95), ms(x.p99), x.op.startsWith('GET') ? '—' : ms(x.overFloor)])), '');
    const mix = r.create.mix;
    if (mix) {
      out.push('#### Plain creates alone, beside networked ones, and after a pause', '');
      out.push(`The same server (quota on), one create at a time, each sandbox deleted before the next create (not timed). Three patterns take turns in ${mix.blocks} blocks of ${mix.per} creates: back to back; every other create with \`internet_access\`; each create after 50 ms without any create or delete.${mix.errors ? ` ${mix.errors} calls failed; first: \`${mix.firstError}\`.` : ''}`, '');
      out.push(table(['call', 'median', 'p95', 'p99'], mix.rows.map((x) => [x.op, ms(x.median), ms(x.p95), ms(x.p99)])), '');
      out.push(`Beside networked creates ÷ back to back: **${ratio(mix.mixedVsAlone.ratio)}**${ci(mix.mixedVsAlone.ci)}; after a pause ÷ back to back: ${ratio(mix.pausedVsAlone.ratio)}${ci(mix.pausedVsAlone.ci)} (95 % bootstrap intervals of the ratio of medians).`, '');
    }
  }
  if (r.exec) {
    const e = r.exec;
    out.push('### Exec overhead: a sandbox against a direct spawn on the host', '');
    out.push(`${e.rounds} rounds, all six interleaved. Host rows are \`child_process.execFile\` from the bench's Node process (output captured, like the server does). Sandbox rows are a full \`POST /execute\` with the agent token, timed at the client.`, '');
    out.push(table(['what', 'median', 'p95', 'p99'], e.rows.map((x) => [x.op, ms(x.median), ms(x.p95), ms(x.p99)])), '');
    out.push(
      `Overhead, as the median of the per-round differences (p99 in brackets): bash \`/bin/true\` **${ms(e.overhead.pairedBash.median)} ms** (${ms(e.overhead.pairedBash.p99)}) over host \`bash -c /bin/true\`; python \`pass\` **${ms(e.overhead.pairedPython.median)} ms** (${ms(e.overhead.pairedPython.p99)}) over host \`python3 -c pass\`. As a difference of medians: bash ${ms(e.overhead.bashVsBashC)} ms (${ms(e.overhead.bashVsTrue)} ms over a bare host \`/bin/true\`), python ${ms(e.overhead.python)} ms. ` +
        `What the overhead includes: the HTTP round trip with token check and JSON in and out (the agent's \`GET /health\` alone: ${ms(e.overhead.httpFloor)} ms), the server's bookkeeping (a process record written to SQLite at start and end, output buffers), spawning the \`sandlotd __sandbox-exec\` helper (a re-exec of the server binary), joining the sandbox's cgroups and namespaces (\`setns\` on the init's pidfd), a fork into the sandbox's pid namespace, dropping privileges and installing seccomp, and passing the program through a memfd. ` +
        `The server's own \`execution_time\` for these runs: bash median ${ms(e.overhead.serverExecBash.median)} ms, python ${ms(e.overhead.serverExecPython.median)} ms (millisecond resolution).`,
      '',
    );
    const nat = e.overhead.native;
    if (nat) {
      out.push(
        `Node's \`execFile\` is not the machine's floor (libuv forks a large process and wires up pipes and an exit watcher). Started by a bash loop instead, per iteration: \`/bin/true\` ${ms(nat.true.median)} ms, \`bash -c /bin/true\` ${ms(nat.bash.median)} ms, \`python3 -c pass\` ${ms(nat.python.median)} ms. Against that floor the sandbox costs **${ms(e.overhead.bashVsNative)} ms** more for bash and **${ms(e.overhead.pythonVsNative)} ms** more for python (differences of medians)${Math.max(e.overhead.bashVsNative, e.overhead.pythonVsNative) > TARGETS.execOverhead ? ` — **over the ${TARGETS.execOverhead} ms target by this stricter measure**` : ''}.`,
        '',
      );
    }
    const cp = e.cgroupProbe;
    if (cp && !cp.error) {
      out.push(
        `Host probe — what joining a cgroup costs here (a write of a fresh process's pid to \`cgroup.procs\` in \`${cp.hierarchy}\`, which the exec helper does for each of the sandbox's cgroups): **${ms(cp.afterIdle.median)} ms** median (p99 ${ms(cp.afterIdle.p99)}) after 50 ms without any migration, ${ms(cp.backToBack.median)} ms back to back. Several milliseconds after a quiet spell means this kernel still takes the global cgroup threadgroup lock with an RCU grace period per migration (no \`favordynmods\`); a fraction of a millisecond means it does not. See [Analysis](#analysis).`,
        '',
      );
    } else if (cp?.error) out.push(`Host cgroup probe failed: ${cp.error}`, '');
  }
  if (r.background) {
    const b = r.background;
    out.push('### Background starts and listProcesses as the count grows', '');
    out.push(`One sandbox; \`runCodeBackground('true', bash)\` with ${b.concurrency} requests in flight, then wait until all are finished.`, '');
    out.push(table(['starts', 'accepted / s', 'finished / s', 'wall to accept', 'wall to finish'], b.throughput.map((x) => [int(x.count), int(x.startsPerSec), int(x.completedPerSec), `${ms(x.startWallMs)} ms`, `${ms(x.finishWallMs)} ms`])), '');
    out.push('listProcesses of all the sandbox\'s records (finished), raw fetch + JSON.parse against the Sandlot SDK, interleaved:', '');
    out.push(table(['records', 'reply size', 'raw median / p99', 'SDK median / p99', 'SDK × raw', 'raw µs per record'], b.growth.map((g) => [int(g.count), kb(g.bytes), `${ms(g.raw.median)} / ${ms(g.raw.p99)}`, `${ms(g.sdk.median)} / ${ms(g.sdk.p99)}`, ratio(g.ratio), g.perRecordUs.toFixed(1)])), '');
  }
  if (r.files) {
    const f = r.files;
    out.push('### File transfer through sandlotd against a host `cp`', '');
    out.push(`${f.sizeMB} MB of random bytes, ${f.rounds} rounds interleaved. Upload: \`POST /files/upload\` (multipart, streamed to the sandbox's quota volume); download: \`GET /files/download\`, read to the end. Both through loopback HTTP with the sandbox token.`, '');
    out.push(table(['transfer', 'median', 'p99', 'MB/s (median)', '× host cp'], f.rows.map((x) => [x.op, `${ms(x.median)} ms`, `${ms(x.p99)} ms`, x.mbPerSec.toFixed(0), ratio(x.vsHost)])), '');
  }
  if (r.memory) {
    const mm = r.memory;
    out.push('### Memory per idle sandbox', '');
    out.push(`${int(mm.count)} idle sandboxes in one server (${mm.failedCreates} creates failed${mm.firstCreateError ? `: \`${mm.firstCreateError}\`` : ''}); created at ${int(mm.createPerSec)}/s with 4 in flight, deleted at ${int(mm.deletePerSec)}/s. Per sandbox (median over all of them): its helper processes (from its memory cgroup's \`cgroup.procs\`; median ${mm.helperPids.median}), their \`smaps_rollup\`, and the cgroup's \`memory.usage_in_bytes\` (e.g. \`${mm.cgroupExample}\`).`, '');
    out.push(
      table(
        ['per idle sandbox', 'median', 'p99', 'alone (first sandbox, before the others)'],
        [
          ['PSS of its helpers', mbFromKiB(mm.pss.median), mbFromKiB(mm.pss.p99), mm.alone ? mbFromKiB(mm.alone.pssKiB) : '—'],
          ['USS (private pages) of its helpers', mbFromKiB(mm.uss.median), mbFromKiB(mm.uss.p99), mm.alone ? mbFromKiB(mm.alone.ussKiB) : '—'],
          ['RSS of its helpers (shared pages counted in full)', mbFromKiB(mm.rss.median), mbFromKiB(mm.rss.p99), mm.alone ? mbFromKiB(mm.alone.rssKiB) : '—'],
          ['memory cgroup usage', mbFromKiB(mm.cgroup.median), mbFromKiB(mm.cgroup.p99), mm.alone ? mbFromKiB(mm.alone.cgroupKiB) : '—'],
        ],
      ),
      '',
    );
    out.push(
      `sandlotd RSS: ${mbFromKiB(mm.serverRssBeforeKiB)} before, **${mbFromKiB(mm.serverRssAfterKiB)} with ${int(mm.count)} idle sandboxes** (${(mm.serverRssPerSandboxKiB).toFixed(1)} KiB each), ${mbFromKiB(mm.serverRssAfterDeleteKiB)} after deleting them. ` +
        `The host's MemAvailable fell by ${mbFromKiB(mm.hostMemAvailableDropPerSandboxKiB)} per sandbox: that also counts what no process owns (kernel namespaces, mounts, page tables, cgroup structures, the tmpfs roots, page cache) and other activity on the host, so it is an upper bound. A sandbox picked from the middle still ran code at the end: ${mm.probeOk ? 'yes' : '**no**'}.`,
      '',
    );
    const fr = mm.finishedRecords;
    if (fr) {
      out.push('### Memory per finished process record', '');
      if (fr.error) out.push(`Not measured: \`${fr.error}\``, '');
      else {
        out.push(
          `A fresh server, one sandbox: ${fr.warmup} warm-up runs, then ${int(fr.count)} background runs of \`${fr.code}\` (bash, ${fr.concurrency} in flight), all finished in ${ms(fr.wallMs)} ms. sandlotd's VmRSS is read ${(fr.settleMs / 1000).toFixed(0)} s after the last warm-up run and ${(fr.settleMs / 1000).toFixed(0)} s after the last run ended (${fr.lingerSecs === null ? 'this build has no `--finished-linger-secs`' : `\`--finished-linger-secs ${fr.lingerSecs}\``}); every record is then still listed, completed, with its output.`,
          '',
        );
        out.push(table(['finished records', 'sandlotd RSS before', 'after', 'server RSS per 1,000 finished records'], [[int(fr.count), mbFromKiB(fr.rssBeforeKiB), mbFromKiB(fr.rssAfterKiB), `**${mbFromKiB(fr.perThousandKiB)}**`]]), '');
      }
    }
  }
  if (r.soak) {
    const s = r.soak;
    out.push(`### ${s.clients} concurrent clients for ${Math.round(s.seconds)} s`, '');
    out.push(`${s.clients} clients (the Sandlot SDK, one handle each) over ${s.sandboxes} shared sandboxes, each looping on a seeded mix: runCode python (20 %), runCode bash (10 %), runCodeBackground \`sleep 0–0.5; echo tag\` (25 %), listProcesses (15 %), getProcess (15 %), runCodeBackground \`sleep 30\` + killProcess (10 %), create + runCode + kill of a fresh sandbox (5 %). At the end every started process must be listed, final, with the expected status (and output).`, '');
    out.push(`**${int(s.calls)} calls** (${int(s.callsPerSec)}/s), **${s.errors} errors**, ${int(s.processes)} processes started: **${s.lost} lost**, ${s.notFinal} not final, ${s.wrong} with a wrong status or output. sandlotd RSS ${mbFromKiB(s.serverRssStartKiB)} at start, ${mbFromKiB(s.serverRssPeakKiB)} at peak.`, '');
    if (s.errorSamples.length) out.push('Errors:', ...s.errorSamples.map((e) => `- \`${e}\``), '');
    if (s.problems.length) out.push('Records:', ...s.problems.map((e) => `- ${e}`), '');
    out.push(table(['call', 'n', 'median', 'p95', 'p99'], s.ops.map((o) => [o.op, int(o.n), ms(o.median), ms(o.p95), ms(o.p99)])), '');
  }

  if (r.cluster) {
    const c = r.cluster;
    out.push('## 6. Cluster mode', '');
    out.push(`A local cluster from \`scripts/cluster.sh\` (Postgres, three \`sandlotd node\` agents each in its own network namespace, one \`sandlotd control\`) against a standalone sandlotd on the same machine, ${c.rounds} rounds each, alternating. All of it shares the machine's cores: the cluster's extra work (Postgres, the control plane, the internal hop) is on the same CPUs as the sandboxes.`, '');
    out.push(table(['figure', 'through the control plane', 'standalone / direct', 'ratio or difference'], [
      ['create → first print(1)', `${ms(c.tti.control.median)} (p99 ${ms(c.tti.control.p99)})`, `${ms(c.tti.standalone.median)} (p99 ${ms(c.tti.standalone.p99)})`, `${ratio(c.tti.ratio)}${ci(c.tti.ratioCI)}`],
      ['create', `${ms(c.create.control.median)} (p99 ${ms(c.create.control.p99)})`, `${ms(c.create.standalone.median)} (p99 ${ms(c.create.standalone.p99)})`, `${ratio(c.create.ratio)}${ci(c.create.ratioCI)}`],
      ['agent GET /health (router vs node direct)', ms(c.router.router.median), ms(c.router.direct.median), `+${ms(c.router.overhead.median)} ms`],
    ]), '');
    out.push(`Creates per second (${c.rate.n} creates, ${c.rate.concurrency} at a time, through the control plane): 3 nodes ${c.rate.three.map((x) => x.toFixed(0)).join(', ')} /s; 1 node (two drained) ${c.rate.one.map((x) => x.toFixed(0)).join(', ')} /s; ratio ${ratio(c.rate.ratio)}. On one ${r.meta.cores}-core machine the three nodes share the same CPUs, so this shows the control plane is not the bottleneck rather than how a real cluster scales.`, '');
  }
  if (r.contexts) {
    const c = r.contexts;
    out.push('## 5. Execution contexts', '');
    out.push(`Python contexts are forked from the fork server; the baselines are a server started with \`--context-zygote false\` (every context a new interpreter through the exec helper) and \`fresh: true\` runs (a new process, no context).`, '');
    out.push(`One sandbox, ${c.rounds} interleaved rounds (raw HTTP):`, '');
    out.push(table(['call', 'median', 'p99'], c.rows.map((x) => [x.op, `${ms(x.median)} ms`, `${ms(x.p99)} ms`])), '');
    out.push(`Warm context − HTTP floor, per round: median **${ms(c.warmOverHttp.median)} ms**, p99 ${ms(c.warmOverHttp.p99)} ms.`, '');
    if (c.tti) {
      out.push(`Time to interactive (create → first successful \`print(1)\`), one sandbox after another: ${c.ttiRounds} rounds with the default server (its warm pool, then contexts forked at create), one without a pool, a fresh process and a create alone interleaved round by round; the exec'd context (no pool) in a block of ${c.tti.execd.n} of its own:`, '');
      const row = (name, x) => [name, ms(x.median), ms(x.p95), ms(x.p99), x.errors ? String(x.errors) : '0'];
      out.push(
        table(
          ['first run in', 'p50 ms', 'p95 ms', 'p99 ms', 'errors'],
          [
            row('the default python context, from the warm pool when it has a sandbox ready (the default)', c.tti.forked),
            ...(c.tti.forkedNoPool ? [row('the default python context, forked at create (`--warm-pool 0`)', c.tti.forkedNoPool)] : []),
            row('the default python context, exec\'d (`--context-zygote false --warm-pool 0`)', c.tti.execd),
            row('a fresh process (`fresh: true`)', c.tti.fresh),
            row('— create alone (no run)', c.tti.create),
          ],
        ),
        '',
      );
      out.push(`Default ÷ fresh: ${ratio(c.tti.forked.median / c.tti.fresh.median)}${ci(c.ttiRatios.forkedVsFresh)} (95 % interval of the ratio of medians); default ÷ exec'd: ${ratio(c.tti.forked.median / c.tti.execd.median)}${ci(c.ttiRatios.forkedVsExecd)}${c.ttiRatios.poolVsNoPool ? `; default ÷ no pool: ${ratio(c.tti.forked.median / c.tti.forkedNoPool.median)}${ci(c.ttiRatios.poolVsNoPool)}` : ''}. TTI − create, per round: median ${ms(c.ttiOverCreate.median)} ms. The rounds run back to back, so the pool (2 sandboxes) is refilled while the next rounds run: some creates find it empty.`, '');
    }
    out.push('Burst of 100 creates + first runs at once (the default and `--warm-pool 0` servers burst in turn, A B then B A, and each pools its samples; each time runs from the burst\'s start to that sandbox\'s first successful run). The load generator runs on the server\'s two cores: it uses node:http with keep-alive (~0.9 ms of CPU per create + run), and the same burst through fetch (~2.3 ms, taken from the server) is a row of its own:', '');
    const brow = (name, b) =>
      b ? [name, b.bursts ?? 1, ms(b.median), ms(b.p99), (b.medians ?? [b.median]).map(ms).join(', '), ms(b.wall), pct(b.successRate)] : [name, '—', '—', '—', '—', '—', '—'];
    out.push(
      table(
        ['first run in', 'bursts', 'median ms (pooled)', 'p99 ms', 'median of each burst', 'wall ms', 'success'],
        [
          brow('the default python context (the default: the warm pool, then forked at create)', c.burstWarm),
          ...(c.burstNoPool ? [brow('the default python context, forked at create (`--warm-pool 0`)', c.burstNoPool)] : []),
          ...(c.burstFetch ? [brow('the default python context, the load generator using fetch', c.burstFetch)] : []),
          brow("the default python context, exec'd", c.burstExecd),
          brow('a fresh process (`fresh: true`)', c.burstFresh),
        ],
      ),
      '',
    );
    if (c.memForked) {
      const m = (x) => [mbFromKiB(x.pss.median), mbFromKiB(x.cgroup.median)];
      out.push('Memory per idle sandbox after one `print(1)` (medians; PSS counts pages shared with the fork server and the other contexts by their share, so it is larger where fewer contexts share them, as for the 10 pooled ones; the memory cgroup counts what each sandbox holds alone):', '');
      out.push(
        table(
          ['sandbox', 'n', 'PSS of its processes', 'memory cgroup'],
          [
            [`forked python context (forked at create, \`--warm-pool 0\`)`, String(c.memForked.count), ...m(c.memForked)],
            ...(c.memPooled ? [[`forked python context, from the warm pool (warmed up before it was handed out)`, String(c.memPooled.count), ...m(c.memPooled)]] : []),
            [`exec'd python context`, String(c.memExecd.count), ...m(c.memExecd)],
            ['no context (`--warm-python-context false`, a fresh run)', String(c.memCold.count), ...m(c.memCold)],
          ],
        ),
        '',
      );
      out.push(`The fork server itself: RSS ${mbFromKiB(c.memForked.zygoteRssKiB)}, PSS ${mbFromKiB(c.memForked.zygotePssKiB)} with ${c.memForked.count} contexts forked from it (${mbFromKiB(c.memForked.zygotePssKiB / c.memForked.count)} per sandbox).`, '');
    }
    if (c.scale) {
      const x = c.scale;
      out.push(`${x.n.toLocaleString('en-US')} sandboxes, each with a warm python context (${x.errors} errors, created in ${x.createSecs.toFixed(1)} s): the host's MemAvailable fell by **${mbFromKiB(x.perSandboxKiB)} per sandbox**, sandlotd RSS ${mbFromKiB(x.serverRssKiB)}; a warm run among them ${ms(x.warmRun.median)} ms median. After \`--context-idle-secs ${x.idleSecs}\` the idle stop gave back ${mbFromKiB(x.freedPerSandboxKiB)} per sandbox, and the next run restarted its context quietly in ${ms(x.runAfterIdleStop.median)} ms median (p99 ${ms(x.runAfterIdleStop.p99)}).`, '');
    }
  }

  out.push('## Analysis', '');
  if (notesFile && fs.existsSync(notesFile)) out.push(fs.readFileSync(notesFile, 'utf8').trim(), '');
  else out.push('_No analysis notes._', '');
  return out.join('\n');
}
