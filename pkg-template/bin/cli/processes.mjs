// The `sandlot` commands about code and its processes: create, run (following a process's
// output, saving rich results), ps, logs, wait, preview, kill.

import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { NetworkError, NotFoundError, Sandbox, TimeoutError } from 'sandlot';

import { EXIT, UsageError, processExitCode } from './output.mjs';
import { LANGUAGE_BY_EXTENSION, envVars, formatSeconds, positiveInt, positiveSeconds, processDuration, readCode, withoutOutput } from './values.mjs';

// Following a process's output.

/** File extension and content of a rich result worth a file: images, then HTML tables. */
function resultFile(result) {
  if (result.png) return ['png', Buffer.from(result.png, 'base64')];
  if (result.jpeg) return ['jpg', Buffer.from(result.jpeg, 'base64')];
  if (result.svg) return ['svg', result.svg];
  if (result.html) return ['html', result.html];
  return null;
}

/** `run --save-results DIR`: the run in the default context, its results written to DIR. */
async function runSavingResults(ctx, sandbox, code, options, dir, created) {
  const out = ctx.out;
  fs.mkdirSync(dir, { recursive: true });
  const stream = await out.spin('Starting', () => sandbox.runCodeStream(code, options));
  let processId;
  if (!created) ctx.onInterrupt(async () => processId && sandbox.killProcess(processId));
  const saved = [];
  const events = (async function* () {
    for await (const event of stream) {
      if (event.type === 'start') processId = event.processId;
      else if (event.type === 'result') {
        const file = resultFile(event.result);
        if (!file) continue;
        const target = path.join(dir, `result-${saved.length + 1}.${file[0]}`);
        fs.writeFileSync(target, file[1]);
        saved.push(target);
        if (!ctx.json) out.note(`saved ${target}`);
      } else yield event;
    }
  })();
  const signal = ctx.signal;
  const result = await follow(ctx, events, () => sandbox.waitForProcess(processId, { signal }), { live: !ctx.json, spinnerText: 'Running' });
  if (ctx.json) out.emit({ sandboxId: sandbox.sandboxId, processId, ...result, savedResults: saved, sandboxCreated: created });
  else endNote(out, processId, result);
  return processExitCode(result);
}

/**
 * Prints a process's output stream (`events`: what `streamProcess` or a process handle's
 * `stream()` returns) until the process ends: live to stdout/stderr, or collected (--json).
 * Resolves with the final state `{ status, exitCode?, executionTime?, error?, stdout, stderr,
 * droppedBytes }`; `record()` reads it should the stream end without its exit event.
 */
export async function follow(ctx, events, record, { live, spinnerText }) {
  const out = ctx.out;
  const output = { stdout: '', stderr: '', droppedBytes: 0 };
  let exit;
  if (spinnerText) out.startSpinner(spinnerText);
  try {
    for await (const event of events) {
      out.stopSpinner();
      if (event.type === 'stdout' || event.type === 'stderr') {
        if (live) (event.type === 'stdout' ? process.stdout : process.stderr).write(event.data);
        else output[event.type] += event.data;
      } else if (event.type === 'truncated') {
        output.droppedBytes += event.droppedBytes;
        if (live) out.note(`${event.droppedBytes} bytes of output were dropped here (the server's output cap)`);
      } else if (event.type === 'exit') {
        exit = event;
      }
    }
  } finally {
    out.stopSpinner();
  }
  // A stream always ends with its exit event; should one not, the record has the final state.
  const final = exit ?? (await record());
  const result = {};
  for (const key of ['status', 'exitCode', 'executionTime', 'error']) if (final[key] !== undefined) result[key] = final[key];
  return Object.assign(result, output);
}

export function endNote(out, processId, { status, error }) {
  if (status === 'timeout' || status === 'killed') out.note(`process ${processId} ${status === 'timeout' ? 'timed out' : 'was killed'}${error ? `: ${error}` : ''}`);
  else if (status === 'failed' && error) out.note(`process ${processId} failed: ${error}`);
}

// ---------------------------------------------------------------------------------------
// The commands.

export async function cmdCreate(ctx, v) {
  // No abort signal: a create cut short on our side may still happen on the server's, and
  // then its id is needed to kill it (see onInterrupt below).
  const options = { ...ctx.conn };
  if (v.template !== undefined) options.template = v.template;
  if (v.timeout !== undefined) options.timeoutSeconds = positiveInt(v.timeout, '--timeout', 'create');
  const env = envVars(v.env, 'create');
  if (env) options.envVars = env;
  if (v.internet) options.internetAccess = true;
  if (v['allow-out'] || v['deny-out']) {
    if (!v.internet) throw new UsageError('--allow-out and --deny-out need --internet', 'create');
    options.network = { allowOut: v['allow-out'] ?? [], denyOut: v['deny-out'] ?? [] };
  }
  const creating = Sandbox.create(options);
  // Ctrl-C while the server creates it: wait for the sandbox, then kill it.
  ctx.onInterrupt(async () => (await creating.catch(() => null))?.kill());
  const sandbox = await ctx.out.spin('Creating sandbox', () => creating);
  ctx.disarm();
  if (!ctx.json) return ctx.out.line(sandbox.sandboxId);
  let info = { sandboxId: sandbox.sandboxId };
  try {
    info = await sandbox.getInfo();
  } catch {
    // The sandbox exists either way: its id is what matters.
  }
  ctx.out.emit(info);
}

export async function cmdRun(ctx, v, [file]) {
  const out = ctx.out;
  if (v.template !== undefined && v.sandbox !== undefined) throw new UsageError('--template is for the sandbox run creates; not with --sandbox', 'run');
  const options = {};
  const language = v.language ?? LANGUAGE_BY_EXTENSION[/\.([^./]+)$/.exec(file)?.[1]?.toLowerCase()];
  if (language !== undefined) options.language = language;
  if (v.name !== undefined) options.name = v.name;
  if (v.timeout !== undefined) options.timeout = positiveInt(v.timeout, '--timeout', 'run');
  if (v.workdir !== undefined) options.workdir = v.workdir;
  const env = envVars(v.env, 'run');
  if (env) options.env = env;
  const code = await readCode(file, out);
  const saveDir = v['save-results'];
  if (saveDir !== undefined && v.background) throw new UsageError('--save-results waits for the results; not with --background', 'run');

  let sandbox;
  const created = v.sandbox === undefined;
  if (created) {
    const creating = Sandbox.create({ ...ctx.conn, ...(v.template !== undefined && { template: v.template }) }); // no signal: see cmdCreate
    ctx.onInterrupt(async () => (await creating.catch(() => null))?.kill());
    sandbox = await out.spin('Creating sandbox', () => creating);
  } else {
    sandbox = await ctx.connect(v.sandbox);
  }

  let keepSandbox = false;
  try {
    if (saveDir !== undefined) return await runSavingResults(ctx, sandbox, code, options, saveDir, created);
    // No signal here: once started, the process must be known (its handle) to be killed.
    const starting = sandbox.runCodeBackground(code, options);
    if (!created) ctx.onInterrupt(async () => (await starting).kill());
    const run = await out.spin('Starting', () => starting);

    if (v.background) {
      keepSandbox = true;
      ctx.disarm();
      if (ctx.json) {
        const doc = { sandboxId: sandbox.sandboxId, processId: run.processId, executionId: run.executionId, status: run.status };
        for (const key of ['name', 'timeout', 'startedAt']) if (run[key] !== undefined) doc[key] = run[key];
        doc.sandboxCreated = created;
        return out.emit(doc);
      }
      out.line(created ? `${sandbox.sandboxId} ${run.processId}` : run.processId);
      if (created && process.stderr.isTTY) out.note(`sandbox ${sandbox.sandboxId} stays up for the process; remove it with: sandlot sandboxes kill ${sandbox.sandboxId}`);
      return EXIT.OK;
    }

    const signal = ctx.signal;
    const result = await follow(ctx, run.stream({ signal }), () => run.wait({ signal }), { live: !ctx.json, spinnerText: 'Running' });
    if (ctx.json) {
      const doc = { sandboxId: sandbox.sandboxId, processId: run.processId, executionId: run.executionId };
      if (run.name !== undefined) doc.name = run.name;
      Object.assign(doc, result, { sandboxCreated: created }); // status, exitCode, ..., stdout, stderr
      out.emit(doc);
    } else {
      endNote(out, run.processId, result);
    }
    return processExitCode(result);
  } finally {
    if (created && !keepSandbox && !ctx.interrupted) {
      await out.spin('Removing sandbox', () => sandbox.kill()).catch((e) => out.note(`could not kill sandbox ${sandbox.sandboxId}: ${e.message}`));
    }
  }
}

/** A listing leaves the output out (`output: false`: the server does not send it). */
const LIST_OPTIONS = (ctx) => ({ output: false, signal: ctx.signal });

async function processRows(ctx, sandboxId, handles) {
  if (sandboxId !== undefined) {
    handles.one ??= await ctx.connect(sandboxId);
    return (await handles.one.listProcesses(LIST_OPTIONS(ctx))).map((p) => ({ sandboxId, ...withoutOutput(p) }));
  }
  const running = await Sandbox.list({ ...ctx.conn, status: 'running', signal: ctx.signal });
  const rows = [];
  // A few sandboxes at a time; one killed meanwhile is skipped.
  const queue = [...running];
  const lists = new Map();
  const worker = async () => {
    for (let info; (info = queue.shift()); ) {
      try {
        let handle = handles.all.get(info.sandboxId);
        if (!handle) {
          handle = await Sandbox.connect(info.sandboxId, { ...ctx.conn, signal: ctx.signal });
          handles.all.set(info.sandboxId, handle);
        }
        lists.set(info.sandboxId, await handle.listProcesses(LIST_OPTIONS(ctx)));
      } catch (e) {
        if (!(e instanceof NotFoundError) && e?.code !== 'SANDBOX_NOT_RUNNING') throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, running.length) }, worker));
  for (const info of running) for (const p of lists.get(info.sandboxId) ?? []) rows.push({ sandboxId: info.sandboxId, ...withoutOutput(p) });
  return rows;
}

function processTable(out, rows, allSandboxes) {
  const header = [...(allSandboxes ? ['SANDBOX'] : []), 'PROCESS ID', 'NAME', 'STATUS', 'EXIT', 'DURATION'];
  const statusCol = allSandboxes ? 3 : 2;
  const cells = rows.map((p) => [
    ...(allSandboxes ? [p.sandboxId] : []),
    p.processId,
    p.name ?? '-',
    p.status,
    p.exitCode ?? '-',
    formatSeconds(processDuration(p)),
  ]);
  return out.table(header, cells, (n, col, text) => (col === statusCol ? out.status(text, rows[n].status) : text));
}

export async function cmdPs(ctx, v) {
  const out = ctx.out;
  if (v.interval !== undefined && !v.watch) throw new UsageError('--interval goes with --watch', 'ps');
  const interval = v.interval === undefined ? 2 : positiveSeconds(v.interval, '--interval', 'ps');
  if (v.watch && ctx.json) throw new UsageError('--watch redraws a table; with --json, poll `sandlot ps --json` instead', 'ps');
  const handles = { one: undefined, all: new Map() };
  const all = v.sandbox === undefined;
  if (!v.watch) {
    const rows = await out.spin('Listing processes', () => processRows(ctx, v.sandbox, handles));
    if (ctx.json) return out.emit(rows);
    return out.out(processTable(out, rows, all));
  }
  const tty = Boolean(process.stdout.isTTY);
  for (;;) {
    let body;
    try {
      body = processTable(out, await processRows(ctx, v.sandbox, handles), all);
    } catch (e) {
      // Passing trouble (network, overload) is shown and retried; anything else ends the watch.
      if (ctx.interrupted || !(e instanceof NetworkError || e instanceof TimeoutError || e?.status === 429 || e?.status >= 500)) throw e;
      body = `${out.c.red('error:')} ${e.message}\n`;
    }
    const title = out.c.dim(`Every ${interval}s: sandlot ps${all ? '' : ` --sandbox ${v.sandbox}`}   ${new Date().toLocaleTimeString()}`);
    out.out(tty ? `\x1b[H\x1b[2J${title}\n\n${body}` : `${body}\n`);
    await sleep(interval * 1000, undefined, { signal: ctx.signal });
  }
}

export async function cmdLogs(ctx, v, [processId]) {
  const out = ctx.out;
  const sandbox = await ctx.connect(v.sandbox);
  if (v.follow) {
    const signal = ctx.signal;
    const events = sandbox.streamProcess(processId, { signal });
    const result = await follow(ctx, events, () => sandbox.waitForProcess(processId, { signal }), { live: !ctx.json });
    if (ctx.json) return out.emit({ sandboxId: sandbox.sandboxId, processId, ...result });
    return EXIT.OK;
  }
  const p = await sandbox.getProcess(processId, { signal: ctx.signal });
  if (ctx.json) return out.emit({ sandboxId: sandbox.sandboxId, ...p });
  process.stdout.write(p.stdout);
  process.stderr.write(p.stderr);
  if (p.stdoutTruncated || p.stderrTruncated) out.note(`the middle of this output was dropped (the server's output cap); ${p.stdoutBytes} + ${p.stderrBytes} bytes were written`);
  if (p.outputEvicted) out.note(`the server no longer keeps this finished process's output`);
}

export async function cmdWait(ctx, v, [processId]) {
  const options = { signal: ctx.signal };
  if (v.timeout !== undefined) options.timeout = positiveSeconds(v.timeout, '--timeout', 'wait');
  const sandbox = await ctx.connect(v.sandbox);
  const p = await ctx.out.spin(`Waiting for ${processId}`, () => sandbox.waitForProcess(processId, options));
  if (ctx.json) ctx.out.emit({ sandboxId: sandbox.sandboxId, ...p });
  else ctx.out.line(`${processId} ${ctx.out.status(p.status)}  exit ${p.exitCode ?? '-'}  ${formatSeconds(processDuration(p))}${p.error ? `  (${p.error})` : ''}`);
  return processExitCode(p);
}

export async function cmdPreview(ctx, v, [port]) {
  const number = positiveInt(port, 'PORT', 'preview');
  if (number > 65535) throw new UsageError('PORT must be from 1 to 65535', 'preview');
  const options = { signal: ctx.signal };
  if (v.ttl !== undefined) options.ttl = positiveInt(v.ttl, '--ttl', 'preview');
  const sandbox = await ctx.connect(v.sandbox);
  const p = await sandbox.getPreviewUrl(number, options);
  if (ctx.json) return ctx.out.emit({ sandboxId: sandbox.sandboxId, ...p });
  ctx.out.line(p.url);
}

export async function cmdKill(ctx, v, [processId]) {
  const sandbox = await ctx.connect(v.sandbox);
  const r = await sandbox.killProcess(processId, { signal: ctx.signal });
  if (ctx.json) return ctx.out.emit({ sandboxId: sandbox.sandboxId, ...r });
  ctx.out.line(`${processId} ${ctx.out.status(r.status)}`);
}
