'use strict';
// Node entry (CommonJS). The glue (the web glue as CommonJS, see scripts/assemble-sdk.mjs)
// loads the wasm synchronously at require time, so there is nothing to wait for; `initialize()` exists for parity with the
// browser entry. The build (scripts/assemble-sdk.mjs) replaces the marked line with one
// `exports.X = ...` line per public name of the glue, errors.cjs and surface.js.
const glue = require('./sandlot.js');
const errors = require('./errors.cjs');
const surface = require('./surface.js');

glue.registerErrorClasses(errors);
surface.extend(glue.Sandbox, errors);

// @exports: glue, errors, surface
exports.initialize = () => Promise.resolve();
