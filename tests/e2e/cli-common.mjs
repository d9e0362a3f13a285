// Shared by the `sandlot` command line's end-to-end test files: pkg/ packed with `npm pack`
// and the tarball installed into a fresh project (as run.mjs does for the SDK suites), one
// real sandlotd (with an API key) per file, and the helpers that run `npx sandlot ...` as a
// user would and check what it did through the HTTP API.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';

import { startServer } from './harness.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '../..');
process.env.SANDLOT_REPO ??= repo; // where harness.mjs finds sandlotd

/** The file's server, the temporary project the tarball is installed in, its version. */
export let server;
export let project;
export let version;

/** Installs the package and starts the file's server before its tests; cleans up after. */
export function useCli() {
  before(async () => {
    const pkgDir = path.join(repo, 'pkg');
    if (!fs.existsSync(path.join(pkgDir, 'package.json'))) throw new Error('pkg/ is missing: run scripts/build-sdk.sh');
    version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-cli-e2e-'));
    const sh = (cmd, args) => execFileSync(cmd, args, { cwd: project, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
    const tarball = path.join(project, sh('npm', ['pack', '--silent', '--pack-destination', project, pkgDir]).trim().split('\n').pop());
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'sandlot-cli-e2e', private: true, type: 'module' }));
    sh('npm', ['install', '--silent', '--no-audit', '--no-fund', '--no-package-lock', tarball]);
    server = await startServer();
  });

  after(async () => {
    // Whatever a failed test left running.
    if (server) for (const id of await sandboxIds().catch(() => [])) await api('DELETE', `/v1/sandboxes/${id}`).catch(() => {});
    await server?.stop();
    if (project) fs.rmSync(project, { recursive: true, force: true });
  });
}

/** The environment of a CLI run: the test server's URL and key, nothing inherited that matters. */
export function cliEnv(extra = {}) {
  const env = { ...process.env, SANDLOT_URL: server.url, SANDLOT_API_KEY: server.apiKey, npm_config_update_notifier: 'false' };
  for (const key of ['HOPX_API_KEY', 'NO_COLOR', 'FORCE_COLOR', 'SANDLOT_DEBUG']) delete env[key];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * Starts `npx sandlot ...args` in the project (its own process group, like a shell job), or
 * with `direct` the installed bin itself (npx re-raises a signal its child died of, where a
 * shell would see the child's 128+n exit code).
 */
export function start(args, { input = '', env, direct = false } = {}) {
  const [cmd, pre] = direct ? [path.join(project, 'node_modules/.bin/sandlot'), []] : ['npx', ['--no', '--', 'sandlot']];
  const child = spawn(cmd, [...pre, ...args], { cwd: project, env: cliEnv(env), detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const run = { child, stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (run.stdout += d));
  child.stderr.on('data', (d) => (run.stderr += d));
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  run.done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout: run.stdout, stderr: run.stderr })));
  return run;
}

/** Runs `npx sandlot ...args` to its end. Output is never coloured here (pipes, not TTYs). */
export async function cli(args, options) {
  const r = await start(args, options).done;
  assert.doesNotMatch(r.stdout + r.stderr, /\x1b/, `escape codes without a TTY: ${JSON.stringify(r)}`);
  return r;
}

/** Runs with --json: stdout must be exactly one JSON document. */
export async function cliJson(args, options) {
  const r = await cli([...args, '--json'], options);
  let doc;
  assert.doesNotThrow(() => (doc = JSON.parse(r.stdout)), `stdout is not one JSON document: ${JSON.stringify(r)}`);
  return { ...r, doc };
}

export function expectCode(r, code) {
  assert.equal(r.code, code, `exit ${r.code} (signal ${r.signal}), expected ${code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

/** The HTTP API itself, to check what the CLI did without trusting the CLI. */
export async function api(method, route) {
  const res = await fetch(`${server.url}${route}`, { method, headers: { 'X-API-Key': server.apiKey } });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status}`);
  return res.status === 204 ? null : res.json();
}

export async function sandboxIds() {
  return (await api('GET', '/v1/sandboxes?limit=100')).data.filter((s) => s.status !== 'deleted').map((s) => s.id);
}

export async function processStatus(sandboxId, processId) {
  const r = await cliJson(['logs', '--sandbox', sandboxId, processId]);
  expectCode(r, 0);
  return r.doc.status;
}

export async function createSandbox(...args) {
  const r = await cli(['create', ...args]);
  expectCode(r, 0);
  return r.stdout.trim();
}
