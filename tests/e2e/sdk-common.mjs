// Shared by the SDK's end-to-end test files: one real sandlotd per file (started before its
// tests, stopped after them with every sandbox they made), and the helpers they use.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { Sandbox, SandlotError } from 'sandlot';
import { callbackHost, startServer } from './harness.mjs';

/** The file's server and the options that reach it (`{ baseURL, apiKey }`), once started. */
export let server;
export let opts;
/** Sandboxes to kill after the file's tests. */
export const cleanup = [];

/** Starts the file's server before its tests and removes it (and its sandboxes) after. */
export function useServer() {
  before(async () => {
    // With an API key, sandlotd calls no callback host until the operator allows one; the
    // webhook tests' receivers listen on `callbackHost` (127.0.0.1 but in a cluster).
    server = await startServer(['--webhook-allow-hosts', callbackHost]);
    opts = { baseURL: server.url, apiKey: server.apiKey };
  });
  after(async () => {
    for (const s of cleanup) await s.kill().catch(() => {});
    await server?.stop();
  });
}

/** A new sandbox, killed after the file's tests. */
export async function fresh(extra = {}) {
  const sandbox = await Sandbox.create({ ...opts, ...extra });
  cleanup.push(sandbox);
  return sandbox;
}

/** `sandbox` reached through `proxy` (a fault proxy in front of the file's server), for its
 * agent calls and its control-plane calls alike. */
export function throughProxy(sandbox, proxy) {
  const s = sandbox.getSession();
  return Sandbox.connect({ ...s, agentUrl: s.agentUrl.replace(server.url, proxy.url) }, { baseURL: proxy.url, apiKey: server.apiKey });
}

/** Asserts that `promise` rejects with exactly the error class `cls`; returns the error. */
export async function rejects(promise, cls, check = () => {}) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error, `expected a ${cls.name}, but the call succeeded`);
  assert.ok(error instanceof cls, `expected ${cls.name}, got ${error?.name}: ${error?.message}`);
  assert.ok(error instanceof SandlotError && error instanceof Error);
  assert.equal(error.name, cls.name);
  check(error);
  return error;
}

/** Runs `fn` with no API key in the environment (a run against a cluster exports one, which
 * the SDK would otherwise pick up), then puts back what was there. */
export async function withoutKeyInEnv(fn) {
  const saved = { SANDLOT_API_KEY: process.env.SANDLOT_API_KEY, HOPX_API_KEY: process.env.HOPX_API_KEY };
  delete process.env.SANDLOT_API_KEY;
  delete process.env.HOPX_API_KEY;
  try {
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value;
  }
}
