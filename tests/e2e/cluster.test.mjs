// Cluster mode end to end (docs/cluster.md): a real local cluster from scripts/cluster.sh —
// Postgres, three `sandlotd node` agents each in its own network namespace, two
// `sandlotd control` replicas sharing a port — with short leases, driven through the
// control plane. Placement, node failure (SIGKILL, SIGSTOP, link down) with fencing and no
// orphan left, a control replica lost, streams through the router, a stale router cache.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Sandbox, SandboxLostError, SandboxNotFoundError } from 'sandlot';

const repo = process.env.SANDLOT_REPO;
const dir = '/tmp/sandlot-cluster-test';
const clusterEnv = {
  ...process.env,
  SANDLOT_CLUSTER_DIR: dir,
  SANDLOT_CLUSTER_PREFIX: 'slt',
  SANDLOT_CLUSTER_SUBNET: '10.232.0',
  SANDLOT_CLUSTER_CONTROLS: '2',
  SANDLOT_CLUSTER_LEASE_SECS: '2',
  SANDLOT_CLUSTER_HEARTBEAT_SECS: '1',
  SANDLOT_CLUSTER_NODE_CAPACITY: '16',
  SANDLOT_LOG: 'info',
};
const cluster = (...args) =>
  execFileSync('bash', [path.join(repo, 'scripts/cluster.sh'), ...args], { env: clusterEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8').trim();

let url; // the shared port: either replica answers
let apiKey;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, route, body, base = url) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { 'X-API-Key': apiKey, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const create = async () => {
  const r = await api('POST', '/v1/sandboxes', { template_name: 'code-interpreter' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
};
const nodes = async () => Object.fromEntries((await api('GET', '/v1/cluster/nodes')).body.nodes.map((n) => [n.name, n]));
const until = async (what, check, ms = 15_000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
};
const psql = (sql) =>
  execFileSync('/usr/bin/psql', [read('database-url'), '-Atc', sql], { encoding: 'utf8' }).trim();
/** Host processes whose command line contains `marker` (a sandbox's processes are host processes). */
const running = (marker) => spawnSync('pgrep', ['-f', marker]).stdout.toString().trim().split('\n').filter(Boolean);

async function startMarker(sandbox, marker) {
  const sb = await Sandbox.connect(sandbox.id, { baseURL: url, apiKey });
  await sb.runCodeBackground(`sleep ${marker}`, { language: 'bash' });
  await until(`marker ${marker} running`, () => running(`sleep ${marker}`).length > 0);
}

before(() => {
  cluster('down');
  const out = cluster('up');
  assert.match(out, /^export SANDLOT_URL=http:\/\/127\.0\.0\.1:\d+\nexport SANDLOT_API_KEY=\S+\n$/);
  url = out.match(/SANDLOT_URL=(\S+)/)[1];
  apiKey = out.match(/SANDLOT_API_KEY=(\S+)/)[1];
});
after(() => {
  for (const m of ['8881', '8882', '8883']) spawnSync('pkill', ['-f', `sleep ${m}`]);
  // The logs outlive the cluster, for a failure's post-mortem.
  const logs = '/tmp/sandlot-cluster-test-logs';
  fs.rmSync(logs, { recursive: true, force: true });
  fs.mkdirSync(logs);
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.log'))) fs.copyFileSync(path.join(dir, f), path.join(logs, f));
  cluster('down');
});

describe('cluster', () => {
  test('placement spreads 30 sandboxes over the 3 nodes; the catalog counts them', async () => {
    const made = await Promise.all(Array.from({ length: 30 }, create));
    const per = {};
    for (const s of made) per[s.node_id] = (per[s.node_id] ?? 0) + 1;
    assert.deepEqual(Object.keys(per).sort(), ['node1', 'node2', 'node3']);
    for (const n of Object.values(per)) assert.ok(n >= 6, `uneven spread: ${JSON.stringify(per)}`);
    const seen = await nodes();
    assert.equal(seen.node1.allocated + seen.node2.allocated + seen.node3.allocated, 30);
    const list = await api('GET', '/v1/sandboxes?limit=1000');
    assert.equal(list.body.data.length, 30);
    await Promise.all(made.map((s) => api('DELETE', `/v1/sandboxes/${s.id}`)));
    const after = await nodes();
    assert.equal(after.node1.allocated + after.node2.allocated + after.node3.allocated, 0);
  });

  test('concurrent creates never overfill a node: past the capacity they get NO_CAPACITY', async () => {
    psql('UPDATE nodes SET capacity = 4');
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, () => api('POST', '/v1/sandboxes', { template_name: 'base' })),
      );
      const made = results.filter((r) => r.status === 201).map((r) => r.body);
      const refused = results.filter((r) => r.status !== 201);
      assert.equal(made.length, 12, 'exactly the 3 × 4 there is room for');
      assert.ok(refused.every((r) => r.status === 503 && r.body.code === 'NO_CAPACITY'), JSON.stringify(refused[0]?.body));
      const per = {};
      for (const s of made) per[s.node_id] = (per[s.node_id] ?? 0) + 1;
      assert.deepEqual(per, { node1: 4, node2: 4, node3: 4 });
      await Promise.all(made.map((s) => api('DELETE', `/v1/sandboxes/${s.id}`)));
    } finally {
      psql('UPDATE nodes SET capacity = 16');
    }
  });

  test('a node that refuses (full) is skipped: the create lands on another node', async () => {
    // The catalog believes node1 is nearly empty (a drifted count); the node itself takes
    // only its --max-sandboxes (16). Creates try node1 first, are refused, go elsewhere.
    psql("UPDATE nodes SET capacity = 100000 WHERE id = 'node1'");
    const made = [];
    try {
      for (let i = 0; i < 20; i++) made.push(await create());
      const onNode1 = made.filter((s) => s.node_id === 'node1').length;
      assert.equal(onNode1, 16, 'node1 took exactly what it has room for');
      assert.equal(made.length, 20);
    } finally {
      await Promise.all(made.map((s) => api('DELETE', `/v1/sandboxes/${s.id}`)));
      psql("UPDATE nodes SET capacity = 16 WHERE id = 'node1'");
    }
  });

  test('draining a node stops placements on it', async () => {
    const r = await api('POST', '/v1/cluster/nodes/node3/drain');
    assert.equal(r.status, 200);
    assert.equal(r.body.nodes.find((n) => n.name === 'node3').state, 'draining');
    const made = await Promise.all(Array.from({ length: 6 }, create));
    assert.ok(made.every((s) => s.node_id !== 'node3'), JSON.stringify(made.map((s) => s.node_id)));
    await Promise.all(made.map((s) => api('DELETE', `/v1/sandboxes/${s.id}`)));
    // A restart re-registers it as ready (a drained node is upgraded by restarting it).
    cluster('node-stop', '3');
    cluster('node-start', '3');
    await until('node3 ready again', async () => (await nodes()).node3.state === 'ready');
  });

  test('metrics: the cluster from the catalog, and one node\'s own through the control plane', async () => {
    const s = await create();
    const page = await fetch(`${url}/metrics`, { headers: { 'X-API-Key': apiKey } }).then((r) => r.text());
    assert.match(page, /^sandlot_cluster_nodes\{state="ready"\} 3$/m);
    assert.match(page, /^sandlot_cluster_sandboxes\{state="running"\} 1$/m);
    assert.match(page, new RegExp(`^sandlot_cluster_node_allocated\\{node="${s.node_id}"\\} 1$`, 'm'));
    assert.equal((await fetch(`${url}/metrics`)).status, 401);
    const res = await fetch(`${url}/v1/cluster/nodes/${s.node_id}/metrics`, { headers: { 'X-API-Key': apiKey } });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^sandlot_up_seconds \d/m);
    await api('DELETE', `/v1/sandboxes/${s.id}`);
  });

  test('SSE resume (Last-Event-ID) and a WebSocket stream through the router', async () => {
    const s = await create();
    const auth = { Authorization: `Bearer ${s.auth_token}` };
    const started = await fetch(`${s.public_host}/execute/background`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: 'for i in 1 2 3 4 5 6; do echo line$i; sleep 0.2; done', language: 'bash' }),
    }).then((r) => r.json());
    const events = async (headers) => {
      const res = await fetch(`${s.public_host}/execute/processes/${started.process_id}/stream`, { headers: { ...auth, ...headers } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /text\/event-stream/);
      const text = await res.text();
      return [...text.matchAll(/^id: (\d+)\nevent: (\w+)\ndata: (.*)$/gm)].map((m) => ({ id: Number(m[1]), event: m[2], data: m[3] }));
    };
    const all = await events({});
    const out = all.filter((e) => e.event === 'stdout' || e.event === 'output');
    assert.ok(out.length >= 1, JSON.stringify(all));
    const cut = all[1].id;
    const resumed = await events({ 'Last-Event-ID': String(cut) });
    assert.deepEqual(resumed.map((e) => e.id), all.filter((e) => e.id > cut).map((e) => e.id));

    const { default: WebSocket } = await import('ws').catch(() => ({ default: globalThis.WebSocket }));
    const ws = new WebSocket(`${s.public_host.replace('http', 'ws')}/execute/stream`, { headers: auth });
    const frames = [];
    await new Promise((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: 'execute', code: 'print("over ws")', language: 'python' }));
      ws.onmessage = (m) => {
        frames.push(JSON.parse(m.data));
        if (frames.at(-1).type === 'complete' || frames.at(-1).type === 'exit') resolve();
      };
      ws.onerror = (e) => reject(e.error ?? new Error('websocket error'));
      setTimeout(() => reject(new Error(`no completion: ${JSON.stringify(frames)}`)), 15_000);
    });
    ws.close();
    assert.ok(frames.some((f) => JSON.stringify(f).includes('over ws')), JSON.stringify(frames));
    await api('DELETE', `/v1/sandboxes/${s.id}`);
  });

  test('a stale router cache is corrected on the next request', async () => {
    const own1 = read('control1.own-url');
    const own2 = read('control2.own-url');
    const s = await create();
    const agent = (base) => fetch(`${base}/sandboxes/${s.id}/agent/health`, { headers: { Authorization: `Bearer ${s.auth_token}` } });
    assert.equal((await agent(own2)).status, 200); // replica 2 caches where it lives
    assert.equal((await api('DELETE', `/v1/sandboxes/${s.id}`, null, own1)).status, 200);
    const res = await agent(own2);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).code, 'SANDBOX_NOT_FOUND');
  });

  for (const [how, node, fail, heal] of [
    ['SIGKILL', '2', () => cluster('node-stop', '2'), () => cluster('node-start', '2')],
    ['SIGSTOP', '3', () => process.kill(Number(read('node3.pid')), 'SIGSTOP'), () => process.kill(Number(read('node3.pid')), 'SIGCONT')],
    ['link down', '1', () => execFileSync('ip', ['link', 'set', 'slt-veth1', 'down']), () => execFileSync('ip', ['link', 'set', 'slt-veth1', 'up'])],
  ]) {
    test(`node failure by ${how}: its sandboxes are lost, the others carry on, it returns fenced with no orphan`, async () => {
      const name = `node${node}`;
      const made = await Promise.all(Array.from({ length: 9 }, create));
      const victim = made.find((s) => s.node_id === name);
      const survivor = made.find((s) => s.node_id !== name);
      assert.ok(victim && survivor, 'sandboxes on both sides');
      const marker = `888${node}`;
      await startMarker(victim, marker);
      const epoch = (await nodes())[name].epoch;
      // Warm both replicas' caches for the victim, so staleness is exercised too.
      for (const base of [read('control1.own-url'), read('control2.own-url')]) {
        await fetch(`${base}/sandboxes/${victim.id}/agent/health`, { headers: { Authorization: `Bearer ${victim.auth_token}` } });
      }

      fail();
      await until(`${name} lost`, async () => (await nodes())[name].state === 'lost');
      const gone = await api('GET', `/v1/sandboxes/${victim.id}`);
      assert.equal(gone.status, 410);
      assert.equal(gone.body.code, 'SANDBOX_LOST');
      for (const base of [read('control1.own-url'), read('control2.own-url')]) {
        const res = await fetch(`${base}/sandboxes/${victim.id}/agent/health`, { headers: { Authorization: `Bearer ${victim.auth_token}` } });
        assert.equal(res.status, 410, `replica ${base}`);
      }
      const sdk = await Sandbox.connect(survivor.id, { baseURL: url, apiKey });
      assert.equal((await sdk.runCode('print(2 + 2)')).stdout, '4\n');
      const lostHandle = await Sandbox.connect(victim.id, { baseURL: url, apiKey }).catch((e) => e);
      const err = lostHandle instanceof Error ? lostHandle : await lostHandle.runCode('1').catch((e) => e);
      assert.ok(err instanceof SandboxLostError && err instanceof SandboxNotFoundError, `${err?.name}: ${err?.message}`);
      const listed = (await api('GET', '/v1/sandboxes?limit=1000')).body.data.find((s) => s.id === victim.id);
      assert.equal(listed.status, 'lost');
      const fresh = await Promise.all(Array.from({ length: 4 }, create));
      assert.ok(fresh.every((s) => s.node_id !== name), 'new creates avoid the lost node');

      heal();
      await until(`${name} back`, async () => {
        const n = (await nodes())[name];
        return n.state === 'ready' && n.epoch > epoch;
      });
      await until('no orphan process', () => running(`sleep ${marker}`).length === 0);
      assert.equal((await api('GET', `/v1/sandboxes/${victim.id}`)).status, 410, 'lost stays lost');
      assert.equal((await api('DELETE', `/v1/sandboxes/${victim.id}`)).status, 200, 'a lost sandbox can be deleted');
      assert.equal((await api('GET', `/v1/sandboxes/${victim.id}`)).status, 404);
      await Promise.all([...made, ...fresh].filter((s) => s.id !== victim.id).map((s) => api('DELETE', `/v1/sandboxes/${s.id}`)));
    });
  }

  test('the catalog is reached over verified TLS: a CA that did not sign its certificate is refused', async () => {
    assert.match(read('database-url'), /sslmode=require/);
    const wrong = path.join(dir, 'wrong-ca');
    fs.mkdirSync(wrong, { recursive: true });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=not the cluster CA', '-keyout', path.join(wrong, 'ca.key'), '-out', path.join(wrong, 'ca.crt')], { stdio: 'ignore' });
    const binary = [process.env.SANDLOTD, path.join(repo, 'target/release/sandlotd'), path.join(repo, 'target/debug/sandlotd')].find((b) => b && fs.existsSync(b));
    const args = ['control', '--listen', '127.0.0.1:0', '--database-url', read('database-url'), '--api-key-file', path.join(dir, 'api-key'),
      '--join-token-file', path.join(dir, 'join-token'), '--token-private-key-file', path.join(dir, 'keys/token-private.key')];
    const refused = spawnSync(binary, [...args, '--database-ca-file', path.join(wrong, 'ca.crt')], { encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(refused.status, 0, 'it must not start');
    assert.match(refused.stderr, /certificate|UnknownIssuer/i, refused.stderr);
    // Without TLS the server's certificate is never checked: sslmode=require on this
    // cluster's URL is what makes a control plane insist on it (tested above by the suite).
  });

  test('who may speak: nodes answer control tokens for themselves only, and a live node cannot be impersonated', async () => {
    const n = await nodes();
    const joinToken = read('join-token');
    const internal = read('control1.internal-url').replace(/:\d+$/, `:${new URL(url).port}`);
    // The join token alone cannot take a live node's name, nor renew its lease.
    const squat = await fetch(`${url}/internal/v1/nodes/register`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${joinToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'node1', addr: 'http://127.0.0.1:9', capacity: 1, templates: ['base'], version: 'x' }),
    });
    assert.equal(squat.status, 409);
    const forged = await fetch(`${url}/internal/v1/nodes/node1/heartbeat`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${joinToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ epoch: n.node1.epoch, session: 'guess', sandboxes: [] }),
    });
    assert.equal(forged.status, 409, 'a heartbeat without the session is refused');
    const after = await nodes();
    assert.equal(after.node1.state, 'ready');
    assert.equal(after.node1.epoch, n.node1.epoch, 'the real node1 is untouched');
    assert.equal((await fetch(`${internal}/internal/v1/nodes/register`, { method: 'POST' })).status, 401);

    // A node: no API key works there, an agent token opens no internal route, and a control
    // token opens only the node it names.
    const s = await create();
    const node = n[s.node_id].addr;
    assert.equal((await fetch(`${node}/v1/sandboxes`)).status, 401);
    assert.equal((await fetch(`${node}/v1/sandboxes`, { headers: { 'X-API-Key': apiKey } })).status, 401);
    assert.equal((await fetch(`${node}/internal/v1/sandboxes/${s.id}`, { headers: { Authorization: `Bearer ${s.auth_token}` } })).status, 401);
    const { createPrivateKey, sign } = await import('node:crypto');
    const seed = Buffer.from(read('keys/token-private.key'), 'base64');
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
    const b64 = (x) => Buffer.from(x).toString('base64url');
    const controlToken = (aud) => {
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64('{"alg":"EdDSA","typ":"JWT"}')}.${b64(JSON.stringify({ sid: '', iat: now, exp: now + 60, gen: 0, typ: 'control', aud }))}`;
      return `${input}.${b64(sign(null, Buffer.from(input), key))}`;
    };
    const other = Object.keys(n).find((name) => name !== s.node_id);
    const asOther = await fetch(`${node}/internal/v1/sandboxes/${s.id}`, { headers: { Authorization: `Bearer ${controlToken(other)}` } });
    assert.equal(asOther.status, 401, 'a control token for another node');
    const asSelf = await fetch(`${node}/internal/v1/sandboxes/${s.id}`, { headers: { Authorization: `Bearer ${controlToken(s.node_id)}` } });
    assert.equal(asSelf.status, 200, 'the same token for this node');
    await api('DELETE', `/v1/sandboxes/${s.id}`);
  });

  test('one of two control replicas killed: clients carry on through the other', async () => {
    const s = await create();
    cluster('control-stop', '1');
    try {
      // The shared port now reaches replica 2 only; the sandbox made through either works.
      const sdk = await Sandbox.connect(s.id, { baseURL: url, apiKey });
      assert.equal((await sdk.runCode('print("still here")')).stdout, 'still here\n');
      const made = await Sandbox.create({ baseURL: url, apiKey, template: 'code-interpreter' });
      assert.equal((await made.runCode('print(1)')).stdout, '1\n');
      await made.kill();
      await sdk.kill();
    } finally {
      cluster('control-start', '1');
    }
  });
});
