// Node entry (ESM): re-exports the CommonJS entry, so `import` and `require` share one wasm
// instance and the very same classes (no dual-package hazard).
import cjs from './index.cjs';

export const {
  Sandbox,
  ProcessStream,
  ProcessStreamIterator,
  verifyWebhookSignature,
  initialize,
  SandlotError,
  AuthenticationError,
  NotFoundError,
  SandboxNotFoundError,
  ProcessNotFoundError,
  ValidationError,
  RateLimitError,
  TimeoutError,
  NetworkError,
  ServerError,
  AbortError,
} = cjs;
