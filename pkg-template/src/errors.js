// Error classes of the Sandlot SDK. They live in JS (not in the wasm) so that `instanceof`
// works against the exact objects the package exports; the wasm receives these constructors
// once at load and builds every error with them. Each is constructed as
// `new XError(message, { code, status, requestId, retryAfter, cause })`.
// This file is the single source: the build derives the CommonJS copy from it.

/** Base class of every error the SDK raises. */
export class SandlotError extends Error {
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    /** Machine-readable code: the server's (e.g. `PROCESS_NOT_FOUND`) or the SDK's. */
    this.code = details.code ?? 'SANDLOT_ERROR';
    if (details.status !== undefined) this.status = details.status;
    if (details.requestId !== undefined) this.requestId = details.requestId;
  }
}

/** 401/403: missing or wrong API key or sandbox token. */
export class AuthenticationError extends SandlotError {}

/** 404: the thing asked for does not exist. */
export class NotFoundError extends SandlotError {}

/** 404 on a sandbox (unknown id, or already killed). */
export class SandboxNotFoundError extends NotFoundError {}

/**
 * 410 `SANDBOX_LOST` (cluster mode): the node that ran the sandbox stopped answering, and the
 * sandbox with its state is gone. Create a new one. A `SandboxNotFoundError` too.
 */
export class SandboxLostError extends SandboxNotFoundError {}

/** 404 on a background process. */
export class ProcessNotFoundError extends NotFoundError {}

/** 404 on a file or directory in the sandbox (`FILE_NOT_FOUND`). */
export class FileNotFoundError extends NotFoundError {}

/**
 * 403 from the sandbox's file policy: a path outside `/workspace` and `/tmp`
 * (`PATH_NOT_ALLOWED`), or one the sandbox's user may not touch (`PERMISSION_DENIED`).
 */
export class PermissionError extends SandlotError {}

/** 400/413/422, or an argument refused before sending (`code` `INVALID_ARGUMENT`). */
export class ValidationError extends SandlotError {}

/** 429: a limit was hit; `retryAfter` says how many seconds to wait, when known. */
export class RateLimitError extends SandlotError {
  constructor(message, details = {}) {
    super(message, details);
    if (details.retryAfter !== undefined) this.retryAfter = details.retryAfter;
  }
}

/** The request (or a wait) took longer than its budget, or the server answered 408/504. */
export class TimeoutError extends SandlotError {}

/** The server could not be reached (refused connection, DNS, TLS, CORS...). */
export class NetworkError extends SandlotError {}

/** 5xx: the server failed. */
export class ServerError extends SandlotError {}

/** The caller's `AbortSignal` fired; its `reason` is this error's `cause`. */
export class AbortError extends SandlotError {}

// `name` on the prototype survives minifiers that rename classes.
for (const [name, cls] of Object.entries({
  SandlotError,
  AuthenticationError,
  NotFoundError,
  SandboxNotFoundError,
  SandboxLostError,
  ProcessNotFoundError,
  FileNotFoundError,
  PermissionError,
  ValidationError,
  RateLimitError,
  TimeoutError,
  NetworkError,
  ServerError,
  AbortError,
})) {
  Object.defineProperty(cls.prototype, 'name', { value: name, writable: true, configurable: true });
}
