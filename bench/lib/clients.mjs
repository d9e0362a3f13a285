// The three clients compared call for call: the Sandlot SDK, the official HopX JS SDK pointed
// at sandlotd through its `baseURL` option, and the same HTTP calls made by hand with fetch.
// Each adapter resolves with nothing the caller has to post-process, and throws on failure.
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

/** Raw fetch: the floor any client pays (the HTTP call plus JSON.parse of the reply). */
export function rawClient(server) {
  async function call(url, { method = 'GET', headers = {}, body } = {}) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(url, init);
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status} ${method} ${url}: ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  }
  const key = { 'X-API-Key': server.apiKey };
  const bearer = (h) => ({ Authorization: `Bearer ${h.token}` });
  return {
    name: 'raw',
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
