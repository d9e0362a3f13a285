// Node entry (ESM): re-exports the CommonJS entry, so `import` and `require` share one wasm
// instance and the very same classes (no dual-package hazard). The build fills in the names:
// every name the CommonJS entry exports.
import cjs from './index.cjs';

export const {} = cjs;
