// The `sandlot` commands about sandboxes as a whole: sandboxes (list, kill, timeout),
// exec (a command to its end) and files.

import fs from 'node:fs';
import path from 'node:path';

import { Sandbox, SandboxNotFoundError } from 'sandlot';

import { UsageError, processExitCode } from './output.mjs';
import { positiveInt, envVars, relative } from './values.mjs';
import { follow, endNote } from './processes.mjs';

export async function cmdSandboxes(ctx, v, args) {
  const out = ctx.out;
  const [sub = 'ls', id, ...extra] = args;
  const want = { ls: 0, list: 0, info: 1, kill: 1 }[sub];
  if (want === undefined) throw new UsageError(`unknown subcommand '${sub}' (ls, info ID, kill ID)`, 'sandboxes');
  if ((id === undefined ? 0 : 1) + extra.length !== want) throw new UsageError(want ? `sandboxes ${sub} takes one sandbox ID` : `sandboxes ${sub} takes no argument`, 'sandboxes');
  if (v.status !== undefined && want) throw new UsageError('--status goes with sandboxes ls', 'sandboxes');

  if (sub === 'kill') {
    const sandbox = await ctx.connect(id);
    await out.spin(`Killing ${id}`, () => sandbox.kill({ signal: ctx.signal }));
    if (ctx.json) return out.emit({ sandboxId: id, killed: true });
    return out.line(`${id} killed`);
  }
  const list = await out.spin('Listing sandboxes', () => Sandbox.list({ ...ctx.conn, ...(v.status !== undefined && { status: v.status }), signal: ctx.signal }));
  if (sub === 'info') {
    // From the list, not Sandbox.connect: looking must not resume a paused sandbox.
    const info = list.find((s) => s.sandboxId === id);
    if (!info) throw new SandboxNotFoundError(`sandbox ${id} not found`, { code: 'SANDBOX_NOT_FOUND' });
    if (ctx.json) return out.emit(info);
    const r = info.resources;
    const fields = [
      ['id', info.sandboxId],
      ['status', out.status(info.status)],
      ['template', [info.templateName, info.templateId && `(id ${info.templateId})`].filter(Boolean).join(' ') || '-'],
      ['region', info.region ?? '-'],
      ['resources', r ? `${r.vcpu} vCPU, ${r.memoryMb} MB memory, ${r.diskMb} MB disk` : '-'],
      ['internet', info.internetAccess ? 'yes' : 'no'],
      ['created', info.createdAt ? `${info.createdAt} (${relative(info.createdAt)})` : '-'],
      ['timeout', info.timeoutSeconds !== undefined ? `${info.timeoutSeconds}s` : 'none'],
      ['expires', info.expiresAt ? `${info.expiresAt} (${relative(info.expiresAt)})` : '-'],
      ['agent', info.publicHost ?? '-'],
    ];
    return out.out(fields.map(([k, val]) => `${out.c.bold(k.padEnd(10))}${val}\n`).join(''));
  }
  if (ctx.json) return out.emit(list);
  const rows = list.map((s) => [s.sandboxId, s.status, s.templateName ?? s.templateId ?? '-', relative(s.createdAt), s.expiresAt ? relative(s.expiresAt) : '-']);
  out.out(out.table(['SANDBOX ID', 'STATUS', 'TEMPLATE', 'CREATED', 'EXPIRES'], rows, (n, col, text) => (col === 1 ? out.status(text, list[n].status) : text)));
}

/** A sandbox created for one command (killed when it ends), or the one --sandbox names. */
async function sandboxFor(ctx, v) {
  if (v.sandbox !== undefined) return { sandbox: await ctx.connect(v.sandbox), created: false };
  const creating = Sandbox.create({ ...ctx.conn, ...(v.template !== undefined && { template: v.template }) }); // no signal: see cmdCreate
  ctx.onInterrupt(async () => (await creating.catch(() => null))?.kill());
  return { sandbox: await ctx.out.spin('Creating sandbox', () => creating), created: true };
}

export async function cmdExec(ctx, v, words) {
  const out = ctx.out;
  if (v.template !== undefined && v.sandbox !== undefined) throw new UsageError('--template is for the sandbox exec creates; not with --sandbox', 'exec');
  const options = { background: true };
  if (words.length > 1) options.args = words.slice(1);
  if (v.cwd !== undefined) options.cwd = v.cwd;
  if (v.timeout !== undefined) options.timeout = positiveInt(v.timeout, '--timeout', 'exec');
  const env = envVars(v.env, 'exec');
  if (env) options.env = env;
  const { sandbox, created } = await sandboxFor(ctx, v);
  try {
    // No signal here: once started, the command must be known (its handle) to be killed.
    const starting = sandbox.commands.run(words[0], options);
    if (!created) ctx.onInterrupt(async () => (await starting).kill());
    const run = await out.spin('Starting', () => starting);
    const signal = ctx.signal;
    const result = await follow(ctx, run.stream({ signal }), () => run.wait({ signal }), { live: !ctx.json, spinnerText: 'Running' });
    if (ctx.json) out.emit({ sandboxId: sandbox.sandboxId, processId: run.processId, ...result, sandboxCreated: created });
    else endNote(out, run.processId, result);
    return processExitCode(result);
  } finally {
    if (created && !ctx.interrupted) {
      await out.spin('Removing sandbox', () => sandbox.kill()).catch((e) => out.note(`could not kill sandbox ${sandbox.sandboxId}: ${e.message}`));
    }
  }
}

/** `sandbox:ID:/path` → { id, path }; `sandbox:/path` → { path } (the --sandbox one); else undefined. */
function remotePath(arg) {
  const m = /^sandbox:(?:([^:/]+):)?(\/.*)$/.exec(arg);
  return m && { id: m[1], path: m[2] };
}

/** The sandbox and path an ls/rm argument names. */
function filesTarget(v, arg, sub) {
  const remote = remotePath(arg) ?? (arg.startsWith('/') ? { path: arg } : undefined);
  if (!remote) throw new UsageError(`'${arg}' is not a sandbox path (sandbox:ID:/path, or /path with --sandbox)`, 'files');
  const id = remote.id ?? v.sandbox;
  if (id === undefined) throw new UsageError(`files ${sub}: which sandbox? (--sandbox ID, or sandbox:ID:${remote.path})`, 'files');
  if (remote.id !== undefined && v.sandbox !== undefined && remote.id !== v.sandbox) throw new UsageError(`'${arg}' names another sandbox than --sandbox ${v.sandbox}`, 'files');
  return { id, path: remote.path };
}

export async function cmdFiles(ctx, v, [sub, ...args]) {
  const out = ctx.out;
  const sandboxes = new Map();
  const open = async (id) => {
    if (!sandboxes.has(id)) sandboxes.set(id, await ctx.connect(id));
    return sandboxes.get(id);
  };
  if (sub === 'ls' || sub === 'list') {
    if (args.length > 1) throw new UsageError('files ls takes one PATH', 'files');
    const { id, path } = filesTarget(v, args[0] ?? '/workspace', 'ls');
    const entries = await out.spin(`Listing ${path}`, async () => (await open(id)).files.list(path, { signal: ctx.signal }));
    if (ctx.json) return out.emit(entries);
    const rows = entries.map((e) => [`${e.isDir ? 'd' : e.isSymlink ? 'l' : '-'}${e.permissions}`, e.size, e.modifiedTime.replace(/\.\d+Z$/, 'Z'), e.isDir ? out.c.cyan(`${e.name}/`) : e.name]);
    return out.out(rows.length ? out.table(['MODE', 'SIZE', 'MODIFIED', 'NAME'], rows) : '');
  }
  if (sub === 'rm') {
    if (!args.length) throw new UsageError('files rm takes at least one PATH', 'files');
    const targets = args.map((a) => filesTarget(v, a, 'rm'));
    if (new Set(targets.map((t) => t.id)).size > 1) throw new UsageError('files rm: every PATH in one sandbox', 'files');
    const sandbox = await open(targets[0].id);
    for (const t of targets) {
      await out.spin(`Removing ${t.path}`, () => sandbox.files.remove(t.path, { signal: ctx.signal }));
      if (!ctx.json) out.line(`removed ${t.path}`);
    }
    if (ctx.json) out.emit({ sandboxId: sandbox.sandboxId, removed: targets.map((t) => t.path) });
    return;
  }
  if (sub === 'cp') {
    if (args.length !== 2) throw new UsageError('files cp takes SRC and DST', 'files');
    const [src, dst] = args;
    const [from, to] = [remotePath(src), remotePath(dst)];
    if (!from === !to) throw new UsageError('files cp: one side in a sandbox (sandbox:ID:/path), the other local', 'files');
    const remote = from ?? to;
    const id = remote.id ?? v.sandbox;
    if (id === undefined) throw new UsageError(`files cp: which sandbox? (--sandbox ID, or sandbox:ID:${remote.path})`, 'files');
    const sandbox = await open(id);
    const signal = ctx.signal;
    let bytes;
    if (to) {
      let data;
      if (src === '-') {
        const chunks = [];
        for await (const chunk of process.stdin) chunks.push(chunk);
        data = new Blob(chunks);
      }
      else {
        try {
          if (!fs.statSync(src).isFile()) throw new UsageError(`cannot copy ${src}: not a file`, 'files');
        } catch (e) {
          if (e instanceof UsageError) throw e;
          throw new UsageError(`cannot read ${src}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, 'files');
        }
        data = await fs.openAsBlob(src); // read from disk as it is sent
      }
      bytes = data.size;
      await out.spin(`Uploading to ${to.path}`, () => sandbox.files.upload(data, to.path, { signal }));
    } else {
      const stream = await out.spin(`Downloading ${from.path}`, () => sandbox.files.read(from.path, { format: 'stream', signal }));
      const sink = dst === '-' ? process.stdout : fs.createWriteStream(fs.existsSync(dst) && fs.statSync(dst).isDirectory() ? `${dst.replace(/\/$/, '')}/${from.path.split('/').pop()}` : dst);
      bytes = 0;
      for await (const chunk of stream) {
        bytes += chunk.length;
        if (!sink.write(chunk)) await new Promise((r) => sink.once('drain', r));
      }
      if (sink !== process.stdout) await new Promise((resolve, reject) => sink.end((e) => (e ? reject(e) : resolve())));
    }
    if (ctx.json) return out.emit({ sandboxId: sandbox.sandboxId, source: src, destination: dst, bytes });
    if (dst !== '-') out.note(`copied ${bytes} bytes: ${src} -> ${dst}`);
    return;
  }
  throw new UsageError(`unknown subcommand '${sub}' (ls, cp, rm)`, 'files');
}
