//! The SDK's public JS types and their mapping from and to the wire.
//!
//! The wire (`sandlot_protocol`) is snake_case and carries every alias the HopX sources use;
//! JS callers get camelCase objects with one name per fact. This module is the only place
//! that mapping happens, so the exported API files read as plain API. Every type derives
//! `Tsify`, which writes its TypeScript declaration into the generated `.d.ts`; optional
//! fields are skipped when absent so they are `field?: T` in the types and missing (never an
//! `undefined` key) at run time.
//!
//! Split by the noun a type belongs to: `sandbox` (lifecycle calls), `run` (running code),
//! `process` (background process records), `stream` (live output), `status` (the unions).

use crate::args::FromJs;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

mod process;
pub(crate) mod record;
mod run;
mod sandbox;
mod status;
mod stream;

pub use process::*;
pub use run::*;
pub use sandbox::*;
pub use status::*;
pub use stream::*;

/// Options of calls that take nothing else.
#[derive(Tsify, FromJs, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallOptions {
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}
