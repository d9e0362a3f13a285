// Helpers for the SDK's end-to-end tests: a real sandlotd on a free loopback port, and a
// fault-injecting proxy in front of it (for the client behaviours a healthy server never
// triggers: 5xx, 429 on reads, retries). Nothing here imitates sandlotd: every request the
// proxy does not fail on purpose is forwarded to the real server.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** The sandlotd binary: $SANDLOTD, else the release build, else the debug build. */
export function sandlotdPath() {
  const root = process.env.SANDLOT_REPO;
  const candidates = [
    process.env.SANDLOTD,
    root && path.join(root, 'target/release/sandlotd'),
    root && path.join(root, 'target/debug/sandlotd'),
  ].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`no sandlotd binary (looked at ${candidates.join(', ')}); run cargo build --release -p sandlot-server`);
  return found;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The address webhook receivers listen on and give in callback URLs: loopback, or the
 * address a cluster's nodes reach the host at (`SANDLOT_E2E_CALLBACK_HOST`).
 */
export const callbackHost = process.env.SANDLOT_E2E_CALLBACK_HOST ?? '127.0.0.1';

/**
 * Starts sandlotd with an API key and extra flags; resolves once /health answers. With
 * `SANDLOT_E2E_URL` and `SANDLOT_E2E_API_KEY` set (a cluster's control plane, from
 * scripts/cluster.sh, whose nodes allow callbacks to `callbackHost`), a call without extra
 * flags, or with only `--webhook-allow-hosts`, uses that server instead.
 */
export async function startServer(extraArgs = []) {
  const onlyCallbacks = extraArgs.length === 2 && extraArgs[0] === '--webhook-allow-hosts';
  if (process.env.SANDLOT_E2E_URL && (extraArgs.length === 0 || onlyCallbacks)) {
    const url = process.env.SANDLOT_E2E_URL;
    return { url, apiKey: process.env.SANDLOT_E2E_API_KEY, port: Number(new URL(url).port), external: true, async stop() {} };
  }
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-e2e-'));
  const apiKey = `e2e-key-${process.pid}-${port}`;
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    sandlotdPath(),
    ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--api-key', apiKey, ...extraArgs],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SANDLOT_LOG: process.env.SANDLOT_LOG ?? 'warn' } },
  );
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sandlotd exited (${child.exitCode}): ${stderr}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`sandlotd did not become healthy: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    apiKey,
    port,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            r();
          }, 5000);
          child.once('exit', () => {
            clearTimeout(t);
            r();
          });
        });
      }
      // A server that had to be killed leaves its quota volume mounted.
      spawnSync('umount', ['-l', path.join(dataDir, 'volume')], { stdio: 'ignore' });
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A proxy to `upstream` that fails chosen requests. `fail(rule)` queues a rule
 * `{ method?, path (RegExp), status, headers?, body?, times }`, or
 * `{ method?, path, cutAfterBytes, times }` to forward but drop the connection mid-body, or
 * `{ method?, path, drop: true, times }` to close the connection before any answer, or
 * `{ method?, path, delayMs, times }` to forward it that much later; the first matching
 * request consumes one `times`. `hits(path RegExp)` counts requests seen, failed or forwarded.
 */
export async function startFaultProxy(upstream) {
  const rules = [];
  const seen = [];
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, path: req.url });
    const rule = rules.find((r) => r.times > 0 && (!r.method || r.method === req.method) && r.path.test(req.url));
    if (rule?.delayMs !== undefined) {
      rule.times -= 1;
      req.pause(); // pipe() in forwardAll resumes it
      setTimeout(() => forwardAll(req, res), rule.delayMs);
      return;
    }
    if (rule?.drop) {
      rule.times -= 1;
      req.socket.destroy();
      return;
    }
    if (rule?.cutAfterBytes !== undefined) {
      // Forward, but drop the connection once this many body bytes went through.
      rule.times -= 1;
      const forward = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (up) => {
          res.writeHead(up.statusCode, up.headers);
          let sent = 0;
          up.on('data', (chunk) => {
            sent += chunk.length;
            if (sent < rule.cutAfterBytes) {
              res.write(chunk);
              return;
            }
            // The bytes reach the client first (the response's first write is corked
            // until the next tick: destroying at once would drop it, headers and all).
            up.destroy();
            res.write(chunk, () => res.socket?.destroy());
          });
          up.on('end', () => res.end());
        },
      );
      req.pipe(forward);
      return;
    }
    if (rule) {
      rule.times -= 1;
      req.resume();
      const body = JSON.stringify(rule.body ?? { error: 'injected failure', code: rule.code ?? 'INJECTED', message: 'injected failure' });
      res.writeHead(rule.status, { 'content-type': 'application/json', 'x-request-id': 'req_injected', ...rule.headers });
      res.end(body);
      return;
    }
    forwardAll(req, res);
  });
  function forwardAll(req, res) {
    const forward = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', (e) => {
      res.writeHead(599);
      res.end(String(e));
    });
    req.pipe(forward);
  }
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    fail(rule) {
      rules.push({ times: 1, ...rule });
    },
    hits(pathRe, method) {
      return seen.filter((s) => pathRe.test(s.path) && (!method || s.method === method)).length;
    },
    reset() {
      rules.length = 0;
      seen.length = 0;
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(r));
    },
  };
}

/** Polls `fn` until it returns a truthy value (or throws after `ms`). */
export async function eventually(fn, ms = 15_000, every = 100) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, every));
  }
}
