//! Sandlot SDK: drive Sandlot (or any HopX-compatible service) sandboxes from JavaScript and
//! TypeScript. Compiled to WebAssembly with wasm-bindgen; the npm package wraps it in a thin
//! JS façade (`pkg-template/`) that exports the error classes, turns process records into
//! handles and stream calls into iterables, and hides the wasm init.
//!
//! Modules by concern: `config` (where the server and key come from), `http` (the single
//! request core), `errors` (taxonomy → JS error classes), `args` (reading arguments, handing
//! results back), `types` (JS-facing types and their wire mapping), `sandbox` (the class and
//! control-plane calls), `agent` (the agent token and the path of every agent call),
//! `process` (running code, background processes), `stream` (live output over Server-Sent
//! Events), `passthrough` (the generic agent calls and event feeds the façade builds files,
//! terminals and metrics on), `webhook` (callback signatures).

mod agent;
mod args;
mod config;
mod errors;
mod http;
mod passthrough;
mod process;
mod sandbox;
mod stream;
mod types;
mod webhook;

pub use sandbox::Sandbox;
pub use sandlot_protocol as protocol;
pub use stream::{ProcessStream, ProcessStreamIterator};
pub use types::*;
pub use webhook::verify_webhook_signature;
