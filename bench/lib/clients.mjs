// The three clients compared call for call: the Sandlot SDK, the official HopX JS SDK pointed
// at sandlotd through its `baseURL` option, and the same HTTP calls made by hand with fetch.
// Each adapter resolves with nothing the caller has to post-process, and throws on failure.
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PKG } from './server.mjs';

/** This checkout's build (pkg/, or SANDLOT_BENCH_PKG), by path: `node_modules/sandlot` may be another checkout's. */
export async function loadSandlot() {
  return import(pathToFileURL(path.join(PKG, 'dist/node/index.mjs')).href);
}

export async function loadOfficial() {
  return import('@hopx-ai/sdk');
}

export class Unsupported extends Error {}

const TEMPLATE = 'code-interpreter';

/** One HTTP exchange through fetch: `{ ok, status, text }`. */
async function sendWithFetch(url, { method, headers, body }) {
  const res = await fetch(url, { method, headers, body });
  return { ok: res.ok, status: res.status, text: await res.text() };
}

/**
 * The same exchange through node:http on a keep-alive agent: a load generator that takes
 * ~0.9 ms of CPU per create + run where fetch takes ~2.3 ms, on the cores the server shares.
 */
function httpSender() {
  const agent = new http.Agent({ keepAlive: true });
  return (url, { method, headers, body }) =>
    new Promise((resolve, reject) => {
      const h = body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) };
      const req = http.request(url, { method, headers: h, agent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          resolve({ ok: status >= 200 && status < 300, status, text: Buffer.concat(chunks).toString() });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
}

/**
 * Raw HTTP: the floor any client pays (the HTTP call plus JSON.parse of the reply), through
 * fetch, or with `{ transport: 'http' }` through node:http (the bursts' load generator).
 */
export function rawClient(server, { transport = 'fetch' } = {}) {
  const send = transport === 'http' ? httpSender() : sendWithFetch;
  async function call(url, { method = 'GET', headers = {}, body } = {}) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await send(url, init);
    if (!res.ok) throw new Error(`HTTP ${res.status} ${method} ${url}: ${res.text.slice(0, 300)}`);
    return res.text ? JSON.parse(res.text) : null;
  }
  const key = { 'X-API-Key': server.apiKey };
  const bearer = (h) => ({ Authorization: `Bearer ${h.token}` });
  return {
    name: transport === 'http' ? 'raw (node:http)' : 'raw',
    async create(extra = {}) {
      const s = await call(`${server.url}/v1/sandboxes`, { method: 'POST', headers: key, body: { template_name: TEMPLATE, ...extra } });
      return { id: s.id, token: s.auth_token, host: s.public_host };
    },
    attach(session) {
      return { id: session.id, token: session.token, host: session.host };
    },
    /** `extra`: more request fields, e.g. `{ fresh: true }` for a new process instead of the language's context. */
    async runCode(h, code, language = 'python', extra = {}) {
      const r = await call(`${h.host}/execute`, { method: 'POST', headers: bearer(h), body: { code, language, timeout: 120, ...extra } });
      if (!r.success) throw new Error(`runCode failed: ${JSON.stringify(r).slice(0, 300)}`);
      return r;
    },
    async runCommand(h, command) {
      const r = await call(`${h.host}/commands/run`, { method: 'POST', headers: bearer(h), body: { command, timeout: 120 } });
      if (!r.success) throw new Error(`commands/run failed: ${JSON.stringify(r).slice(0, 300)}`);
      return r;
    },
    async runBackground(h, code, language = 'bash') {
      const r = await call(`${h.host}/execute/background`, { method: 'POST', headers: bearer(h), body: { code, language, timeout: 300 } });
      return r.process_id;
    },
    async listProcesses(h) {
      return (await call(`${h.host}/execute/processes`, { headers: bearer(h) })).processes;
    },
    async getProcess(h, id) {
      return call(`${h.host}/execute/processes/${id}`, { headers: bearer(h) });
    },
    async killProcess(h, id) {
      return call(`${h.host}/execute/kill/${id}`, { method: 'POST', headers: bearer(h) });
    },
    async kill(h) {
      return call(`${server.url}/v1/sandboxes/${h.id}`, { method: 'DELETE', headers: key });
    },
    async health(h) {
      return call(`${h.host}/health`, { headers: bearer(h) });
    },
    call,
  };
}

/** The Sandlot SDK (wasm). */
export function sandlotClient(server, sdk) {
  const opts = { apiKey: server.apiKey, baseURL: server.url };
  return {
    name: 'sandlot',
    create: () => sdk.Sandbox.create({ template: TEMPLATE, ...opts }),
    attach: (session) => sdk.Sandbox.connect(session.id, opts),
    async runCode(h, code, language = 'python') {
      const r = await h.runCode(code, { language });
      if (!r.success) throw new Error(`runCode failed: ${JSON.stringify(r).slice(0, 300)}`);
      return r;
    },
    async runCommand(h, command) {
      const r = await call(`${h.host}/commands/run`, { method: 'POST', headers: bearer(h), body: { command, timeout: 120 } });
      if (!r.success) throw new Error(`commands/run failed: ${JSON.stringify(r).slice(0, 300)}`);
      return r;
    },
    async runBackground(h, code, language = 'bash') {
      return (await h.runCodeBackground(code, { language })).processId;
    },
    listProcesses: (h) => h.listProcesses(),
    getProcess: (h, id) => h.getProcess(id),
    killProcess: (h, id) => h.killProcess(id),
    kill: (h) => h.kill(),
  };
}

/** The official @hopx-ai/sdk, unmodified, pointed at sandlotd with `baseURL`. */
export function officialClient(server, sdk) {
  return {
    name: 'official',
    create: () => sdk.Sandbox.create({ template: TEMPLATE, apiKey: server.apiKey, baseURL: server.url }),
    attach: (session) => sdk.Sandbox.connect(session.id, server.apiKey, server.url),
    async runCode(h, code, language = 'python') {
      const r = await h.runCode(code, { language });
      if (!r.success) throw new Error(`runCode failed: ${JSON.stringify(r).slice(0, 300)}`);
      return r;
    },
    async runCommand(h, command) {
      const r = await call(`${h.host}/commands/run`, { method: 'POST', headers: bearer(h), body: { command, timeout: 120 } });
      if (!r.success) throw new Error(`commands/run failed: ${JSON.stringify(r).slice(0, 300)}`);
      return r;
    },
    async runBackground(h, code, language = 'bash') {
      return (await h.runCodeBackground(code, { language })).process_id;
    },
    listProcesses: (h) => h.listProcesses(),
    getProcess: (h) => {
      if (typeof h.getProcess !== 'function') throw new Unsupported('@hopx-ai/sdk 0.5.1 has no getProcess method');
      return h.getProcess();
    },
    killProcess: (h, id) => h.killProcess(id),
    kill: (h) => h.kill(),
  };
}
