// Sandlot's javascript context driver: code runs in this process's global scope, so
// variables, functions and imports persist between runs; top-level `await` works.
//
// Commands arrive on stdin, one JSON object per line ({"type":"run","id":N,"code":...,
// "env":{...},"cwd":...}); replies go to fd 4, one JSON object per line ("ready", then per
// run "result" frames, at most one "error", and "done"). Output is the process's own
// stdout/stderr, which are synchronous pipes on Linux, so it is written before "done" is.
// SIGINT interrupts a run: synchronous code through `breakOnSigint`, an awaited promise by
// abandoning it.
// The driver's own names live in this function, out of the way of the code's globals.
(() => {
  'use strict';
  const fs = require('fs');
  const vm = require('vm');
  const util = require('util');
  const REPLY_FD = 4;

  function send(obj) {
    fs.writeSync(REPLY_FD, JSON.stringify(obj) + '\n');
  }

  let interrupt = null;
  process.on('SIGINT', () => {
    if (interrupt) interrupt();
  });

  let current = null;
  globalThis.display = (value) => {
    if (current === null) return;
    if (value && typeof value === 'object' && !Array.isArray(value) &&
        Object.keys(value).some((k) => k.includes('/'))) {
      current.results.push({ data: value, main: false });
    } else {
      current.results.push({ data: { 'text/plain': util.inspect(value) }, main: false });
    }
    send({ type: 'result', id: current.id, data: current.results.at(-1).data, main: false });
  };

  // Declarations at the top of a cell become globals, so they outlive the cell even when it is
  // wrapped in an async function for `await`.
  function hoist(code) {
    return code
      .replace(/^(\s*)(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=/gm, '$1globalThis.$2 =')
      .replace(/^(\s*)(async\s+)?function(\s*\*?\s*)([A-Za-z_$][\w$]*)\s*\(/gm,
        '$1globalThis.$4 = $2function$3$4(');
  }

  function splitLast(code) {
    const lines = code.replace(/\s+$/, '').split('\n');
    const last = lines.pop() || '';
    return [lines.join('\n'), last.replace(/;\s*$/, '')];
  }

  function compileAsync(code) {
    const body = hoist(code);
    const [head, last] = splitLast(body);
    const cut = last.lastIndexOf(';');
    const candidates = [
      `(async () => {\n${head}\nreturn (${last}\n);\n})()`,
      `(async () => {\n${head}\n${last.slice(0, cut + 1)}\nreturn (${last.slice(cut + 1)}\n);\n})()`,
      `(async () => {\n${body}\n})()`,
    ];
    for (const src of candidates) {
      try {
        return new vm.Script(src, { filename: 'cell.js' });
      } catch (e) {
        if (src === candidates[candidates.length - 1]) throw e;
      }
    }
  }

  async function run(cmd) {
    current = { id: cmd.id, results: [] };
    const env = cmd.env || {};
    const saved = {};
    for (const k of Object.keys(env)) { saved[k] = process.env[k]; process.env[k] = env[k]; }
    let before = null;
    let exitCode = 0;
    let error = null;
    try {
      if (cmd.cwd) { before = process.cwd(); process.chdir(cmd.cwd); }
      let script;
      let isAsync = false;
      try {
        script = new vm.Script(cmd.code, { filename: 'cell.js' });
      } catch (e) {
        if (!(e instanceof SyntaxError) || !/await/.test(cmd.code)) throw e;
        script = compileAsync(cmd.code);
        isAsync = true;
      }
      let value = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
      // A cell that returns a promise (an async IIFE, `main()`) ends when it settles.
      if (isAsync || (value !== null && typeof value === 'object' && typeof value.then === 'function')) {
        value = await new Promise((resolve, reject) => {
          interrupt = () => reject(Object.assign(new Error('Script execution was interrupted by `SIGINT`'), { name: 'Interrupted' }));
          value.then(resolve, reject);
        });
      }
      if (value !== undefined) {
        const data = { 'text/plain': util.inspect(value) };
        current.results.push({ data, main: true });
        send({ type: 'result', id: cmd.id, data, main: true });
      }
    } catch (e) {
      exitCode = 1;
      const err = e instanceof Error ? e : new Error(String(e));
      const interrupted = /interrupted by `SIGINT`/.test(err.message);
      error = {
        name: interrupted ? 'KeyboardInterrupt' : (err.name || 'Error'),
        value: err.message || String(e),
        traceback: err.stack || String(e),
      };
      process.stderr.write((err.stack || String(e)) + '\n');
    } finally {
      interrupt = null;
      if (before !== null && process.cwd() === cmd.cwd) {
        try { process.chdir(before); } catch (_) { /* gone */ }
      }
      for (const k of Object.keys(saved)) {
        if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
      }
    }
    if (error) send({ type: 'error', id: cmd.id, ...error });
    send({ type: 'done', id: cmd.id, exit_code: exitCode });
    current = null;
  }

  // Commands come from a private copy of stdin; the code's stdin is empty.
  let queue = Promise.resolve();
  let pending = '';
  const input = fs.createReadStream(null, { fd: 0 });
  input.setEncoding('utf8');
  input.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line.trim()) continue;
      const cmd = JSON.parse(line);
      if (cmd.type === 'run') queue = queue.then(() => run(cmd));
    }
  });
  input.on('end', () => process.exit(0));
  globalThis.require = require;
  globalThis.module = module;
  send({ type: 'ready', pid: process.pid });
})();
