// The JS surface over the wasm classes, in the spirit of a thin wrapper that adds handles and
// iterators without moving logic out of Rust:
//   - process records (runCodeBackground, getProcess, listProcesses, waitForProcess) become
//     process handles: their data stays as own properties, and methods come from one shared
//     prototype, so a list of a thousand records costs one prototype link per record. The
//     wasm hands the records of all four over as parsed wire replies (snake_case), and
//     `records.Process` (`records.BackgroundExecution`), which the build generates from the
//     Rust table `PROCESS_RECORD` (src/types/process.rs), maps each in one pass onto its handle;
//   - the results of runCode, runCodeAsync, killProcess and removeProcess are mapped alike
//     (`records.ExecutionResult`, ... : src/types/record.rs lists the tables);
//   - stream calls (runCodeStream, streamProcess) return a StreamPromise: await it for the
//     stream, or iterate it directly with `for await`.
// Every entry installs it once at load (`extend`). The build concatenates these modules into
// one `surface.js` (core, processes, commands, files, terminals, this one; the imports between
// them dropped) and derives the CommonJS copy from it.

import { call, camel, errors, invalid, named, pathArg, raw, records, withContextId } from './core.js';
import { handlePrototype, RECORD_CALLS, RESULT_CALLS, STREAM_CALLS, streaming } from './processes.js';
import { Commands } from './commands.js';
import { Files } from './files.js';
import { Terminals } from './terminals.js';

export { ProcessHandle, streaming } from './processes.js';
export { TerminalHandle } from './terminals.js';

// Network: egress rules (control plane) and ports reached through the server.

function portArg(port) {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid('port must be an integer from 1 to 65535');
  return port;
}

function networkBody(rules, what = 'updateNetwork') {
  if (rules === null || typeof rules !== 'object') throw invalid(`${what} takes { allowOut, denyOut }`);
  const list = (key) => {
    const value = rules[key] ?? [];
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw invalid(`${key} must be an array of strings`);
    return value;
  };
  return { allow_out: list('allowOut'), deny_out: list('denyOut') };
}

const networkState = (reply) => ({
  internetAccess: reply.internet_access,
  network: { allowOut: reply.network?.allow_out ?? [], denyOut: reply.network?.deny_out ?? [] },
});

/** Caches a namespace object per sandbox (the getters return the same object every time). */
function namespace(Class) {
  const cache = new WeakMap();
  return function () {
    let ns = cache.get(this);
    if (!ns) cache.set(this, (ns = new Class(this)));
    return ns;
  };
}

/**
 * Gives the wasm `Sandbox` class its JS surface. Called once per loaded glue, with the
 * package's error classes.
 */
export function extend(Sandbox, errorClasses) {
  Object.assign(errors, errorClasses);
  const proto = Sandbox.prototype;
  for (const [name, Class] of [['commands', Commands], ['files', Files], ['terminal', Terminals]]) {
    Object.defineProperty(proto, name, { get: namespace(Class), configurable: true });
  }
  for (const name of [...RECORD_CALLS, ...STREAM_CALLS, ...Object.keys(RESULT_CALLS), 'runCode', 'runCodeBackground', 'listProcesses']) {
    raw[name] = proto[name];
  }
  const define = (name, value) => Object.defineProperty(proto, name, { value, writable: true, configurable: true });
  for (const name of RECORD_CALLS) {
    define(name, async function (...args) {
      return records.Process(await raw[name].apply(this, args), handlePrototype(this));
    });
  }
  for (const [name, type] of Object.entries(RESULT_CALLS)) {
    const map = records[type];
    define(name, async function (...args) {
      return map(await raw[name].apply(this, args), Object.prototype);
    });
  }
  define('runCodeBackground', async function (...args) {
    return records.BackgroundExecution(await raw.runCodeBackground.apply(this, args), handlePrototype(this));
  });
  define('listProcesses', async function (...args) {
    const list = await raw.listProcesses.apply(this, args);
    const proto = handlePrototype(this);
    for (let i = 0; i < list.length; i++) list[i] = records.Process(list[i], proto);
    return list;
  });
  define('runCode', async function (code, options) {
    const r = records.ExecutionResult(await raw.runCode.call(this, code, withContextId(options)), Object.prototype);
    if (r.results) r.results = r.results.map((x) => records.RichResult(x, Object.prototype));
    return r;
  });
  for (const name of STREAM_CALLS) {
    define(name, function (code, options, ...rest) {
      return streaming(() => raw[name].call(this, code, withContextId(options), ...rest));
    });
  }
  // Execution contexts: interpreters whose state persists from run to run.
  const contextRoute = (id) => `/contexts/${encodeURIComponent(pathArg(typeof id === 'object' && id !== null ? id.id : id, 'context'))}`;
  define('createCodeContext', async function (options) {
    const body = {};
    if (options?.language !== undefined) body.language = options.language;
    if (options?.cwd !== undefined) body.cwd = options.cwd;
    return camel(await this.agentFetch('POST', '/contexts', { json: body, signal: options?.signal, timeout: 120_000 }));
  });
  define('listCodeContexts', async function (options) {
    return camel((await call(this, 'GET', '/contexts', options)).contexts);
  });
  define('restartCodeContext', async function (context, options) {
    return camel(await this.agentFetch('POST', `${contextRoute(context)}/restart`, { signal: options?.signal, timeout: 120_000 }));
  });
  define('removeCodeContext', async function (context, options) {
    await call(this, 'DELETE', contextRoute(context), options);
  });
  define('getMetrics', async function (options) {
    return named(await call(this, 'GET', '/metrics/snapshot', options), ['errorCount']);
  });
  // `network` at create goes to the wasm in its wire shape (checked and converted here).
  const create = Sandbox.create;
  Object.defineProperty(Sandbox, 'create', {
    value: async function (options) {
      if (options?.network != null) options = { ...options, network: networkBody(options.network, 'network') };
      return create.call(this, options);
    },
    writable: true,
    configurable: true,
  });
  // Lifecycle calls with nothing to map: the generic call (control plane) does them.
  for (const [name, method, route] of [['kill', 'DELETE', ''], ['pause', 'POST', '/pause'], ['resume', 'POST', '/resume']]) {
    define(name, async function (options) {
      await this.agentFetch(method, route, { control: true, signal: options?.signal });
    });
  }
  define('updateNetwork', async function (rules, options) {
    return networkState(await this.agentFetch('PUT', '/network', { control: true, json: networkBody(rules), idempotent: true, signal: options?.signal }));
  });
  define('getNetwork', async function (options) {
    return networkState(await this.agentFetch('GET', '/network', { control: true, signal: options?.signal }));
  });
  define('getPreviewUrl', async function (port, options) {
    const body = { port: portArg(port) };
    if (options?.ttl !== undefined) body.ttl_seconds = options.ttl;
    const { url, host, expires_at: expiresAt } = await this.agentFetch('POST', '/preview', { json: body, signal: options?.signal });
    return { url, host, port: body.port, expiresAt };
  });
  define('getHost', function (port) {
    const agent = this.agentUrl;
    if (!/\/agent\/?$/.test(agent)) throw new errors.SandlotError(`getHost needs a Sandlot server (the agent URL ${agent} does not end in /agent); use getPreviewUrl`, { code: 'UNSUPPORTED' });
    return agent.replace(/\/agent\/?$/, `/ports/${portArg(port)}/`);
  });
  define('listSystemProcesses', async function (options) {
    return camel((await call(this, 'GET', '/processes', options)).processes);
  });
}
