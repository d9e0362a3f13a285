// What every part of the JS surface shares: the wasm methods before `extend` wrapped them,
// the package's error classes, the generated record mappers, and helpers for the agent's
// routes (camelCase replies, queries, event feeds).

/** Where a process handle's prototype keeps its sandbox. */
export const SANDBOX = Symbol('sandlot.sandbox');

/** The wasm methods before `extend` wrapped them: handles call these, not the wrappers. */
export const raw = {};

/** The package's error classes (`extend` fills it). */
export const errors = {};

/** A wire record the mapper cannot read: the server's fault, as the wasm reports it. */
function unreadable(expected) {
  return new errors.SandlotError(`unexpected reply from the server: expected ${expected}`, { code: 'INVALID_RESPONSE' });
}

// `records.X(wire, proto)`: a parsed wire reply → a record of type X on `proto`, one function
// per Rust table (src/types/record.rs). The build replaces the next line with them.
export const records = undefined; // @generated records

/** Run options with `context` as the id the wire takes (a context object is accepted). */
export const withContextId = (options) =>
  options?.context !== null && typeof options?.context === 'object' ? { ...options, context: options.context.id } : options;

/** A refused argument, as the wasm side reports one. */
export function invalid(message) {
  return new errors.ValidationError(message, { code: 'INVALID_ARGUMENT' });
}

// ---------------------------------------------------------------------------------------
// Files, terminals, metrics: namespaces over the wasm's generic agent call (`agentFetch`),
// which also opens event feeds, which own the token, time budgets, signals, retries, typed errors
// and streams. Here: routes, queries, bodies, and the camelCase names of the replies.

/** `snake_case` keys to camelCase, deeply; keys that are not identifiers (routes) stay. */
export function camel(value) {
  if (Array.isArray(value)) return value.map(camel);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    out[/^[a-z0-9_]+$/.test(key) ? key.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase()) : key] = camel(v);
  }
  return out;
}

/** `camel`, without the wire's second spellings of the same fact. */
export function named(value, aliases) {
  const out = camel(value);
  for (const key of aliases) delete out[key];
  return out;
}

export const query = (params) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');

export function pathArg(path, name = 'path') {
  if (typeof path !== 'string' || path === '') throw new errors.ValidationError(`${name} must be a non-empty string`, { code: 'INVALID_ARGUMENT' });
  return path;
}

export const call = (sandbox, method, route, options, extra) =>
  sandbox.agentFetch(method, route, { signal: options?.signal, timeout: options?.timeout === undefined ? undefined : options.timeout * 1000, ...extra });

/**
 * An async iterable over a wasm event feed, each event passed through `map` (`undefined`
 * skips it); `close()` (or leaving a `for await`) closes the connection.
 */
export function events(feed, map) {
  return {
    async next() {
      for (;;) {
        const r = await feed.next();
        if (r.done) return r;
        const value = map(r.value);
        if (value !== undefined) return { value, done: false };
      }
    },
    async return(value) {
      await feed.close();
      return { value, done: true };
    },
    close: () => feed.close(),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

export function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}
