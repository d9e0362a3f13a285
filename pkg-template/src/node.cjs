'use strict';
// Node entry (CommonJS). wasm-bindgen's `nodejs` glue loads the wasm synchronously at
// require time, so there is nothing to wait for; `initialize()` exists for parity with the
// browser entry.
const glue = require('./sandlot.cjs');
const errors = require('./errors.cjs');

glue.registerErrorClasses(errors);

exports.Sandbox = glue.Sandbox;
exports.ProcessStream = glue.ProcessStream;
exports.ProcessStreamIterator = glue.ProcessStreamIterator;
exports.verifyWebhookSignature = glue.verifyWebhookSignature;
exports.initialize = () => Promise.resolve();
exports.SandlotError = errors.SandlotError;
exports.AuthenticationError = errors.AuthenticationError;
exports.NotFoundError = errors.NotFoundError;
exports.SandboxNotFoundError = errors.SandboxNotFoundError;
exports.ProcessNotFoundError = errors.ProcessNotFoundError;
exports.ValidationError = errors.ValidationError;
exports.RateLimitError = errors.RateLimitError;
exports.TimeoutError = errors.TimeoutError;
exports.NetworkError = errors.NetworkError;
exports.ServerError = errors.ServerError;
exports.AbortError = errors.AbortError;
