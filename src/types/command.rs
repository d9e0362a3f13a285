//! Options and results of `sandbox.commands.run`.

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use serde::Deserialize;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

/// `sandbox.commands.run(command, options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCommandOptions {
    /// Start it and resolve at once with its process handle (as `runCodeBackground`).
    #[serde(default)]
    #[tsify(optional)]
    pub background: Option<bool>,
    /// Arguments: `command` is then a program run with exactly these (no shell). Without
    /// them, `command` is a shell line (bash).
    #[serde(default)]
    #[tsify(optional)]
    pub args: Option<Vec<String>>,
    /// Working directory (default `/workspace`).
    #[serde(default)]
    #[tsify(optional)]
    pub cwd: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub env: Option<BTreeMap<String, String>>,
    /// Run-time limit in seconds (default 30, or 300 in the background).
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    /// A label shown in `listProcesses()` (background; default: the command line).
    #[serde(default)]
    #[tsify(optional)]
    pub name: Option<String>,
    /// Called with each piece of stdout, in order, while the command runs; in the
    /// foreground the call resolves after the last one.
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "(data: string) => void", optional)]
    pub on_stdout: JsValue,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "(data: string) => void", optional)]
    pub on_stderr: JsValue,
    /// With callbacks: whole lines instead of chunks as written.
    #[serde(default)]
    #[tsify(optional)]
    pub lines: Option<bool>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl RunCommandOptions {
    pub fn to_wire(&self, command: String) -> wire::CommandRequest {
        wire::CommandRequest {
            command: Some(command),
            args: self.args.clone(),
            timeout: self.timeout,
            workdir: self.cwd.clone(),
            working_dir: None,
            env: self.env.clone(),
            name: self.name.clone(),
        }
    }
}
