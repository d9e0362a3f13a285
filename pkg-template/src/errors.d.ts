/** What every SDK error carries besides its message. */
export interface SandlotErrorDetails {
  code?: string;
  status?: number;
  requestId?: string;
  retryAfter?: number;
  cause?: unknown;
}

/** Base class of every error the SDK raises. */
export declare class SandlotError extends Error {
  constructor(message: string, details?: SandlotErrorDetails);
  /** Machine-readable code: the server's (e.g. `PROCESS_NOT_FOUND`) or the SDK's. */
  readonly code: string;
  /** HTTP status, when the error came from a reply. */
  readonly status?: number;
  /** The server's request id (`X-Request-ID`), when the error came from a reply. */
  readonly requestId?: string;
}
/** 401/403: missing or wrong API key or sandbox token. */
export declare class AuthenticationError extends SandlotError {}
/** 404: the thing asked for does not exist. */
export declare class NotFoundError extends SandlotError {}
/** 404 on a sandbox (unknown id, or already killed). */
export declare class SandboxNotFoundError extends NotFoundError {}
/** 410 `SANDBOX_LOST` (cluster mode): the sandbox's node stopped answering; the sandbox is gone. */
export declare class SandboxLostError extends SandboxNotFoundError {}
/** 404 on a background process. */
export declare class ProcessNotFoundError extends NotFoundError {}
/** 404 on a file or directory in the sandbox (`FILE_NOT_FOUND`). */
export declare class FileNotFoundError extends NotFoundError {}
/**
 * 403 from the sandbox's file policy: a path outside `/workspace` and `/tmp`
 * (`PATH_NOT_ALLOWED`), or one the sandbox's user may not touch (`PERMISSION_DENIED`).
 */
export declare class PermissionError extends SandlotError {}
/** 400/413/422, or an argument refused before sending (`code` `INVALID_ARGUMENT`). */
export declare class ValidationError extends SandlotError {}
/** 429: a limit was hit. */
export declare class RateLimitError extends SandlotError {
  /** Seconds to wait before trying again, when the server said. */
  readonly retryAfter?: number;
}
/** The request (or a wait) took longer than its budget, or the server answered 408/504. */
export declare class TimeoutError extends SandlotError {}
/** The server could not be reached. */
export declare class NetworkError extends SandlotError {}
/** 5xx: the server failed. */
export declare class ServerError extends SandlotError {}
/** The caller's `AbortSignal` fired; its `reason` is this error's `cause`. */
export declare class AbortError extends SandlotError {}
