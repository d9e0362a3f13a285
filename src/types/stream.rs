//! Options of the output streams and the events they yield.

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use serde::Serialize;

use crate::args::FromJs;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use super::ProcessStatus;

/// `sandbox.streamProcess(id, options)`.
#[derive(Tsify, FromJs, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamOptions {
    /// Resume after this event `seq` (events up to it are not sent again). Default: from
    /// the start of the process's kept output.
    #[serde(default)]
    #[tsify(optional)]
    pub since: Option<u64>,
    /// Yield whole lines: each `stdout`/`stderr` event's `data` is one line ending in `\n`
    /// (a last line without one comes just before `exit`). Default: chunks as written.
    #[serde(default)]
    #[tsify(optional)]
    pub lines: Option<bool>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// `sandbox.runCodeStream(code, options)`.
#[derive(Tsify, FromJs, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeStreamOptions {
    #[serde(default)]
    #[tsify(type = "Language", optional)]
    pub language: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub name: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub env: Option<BTreeMap<String, String>>,
    /// Run-time limit in seconds (default 60).
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    #[serde(default)]
    #[tsify(optional)]
    pub workdir: Option<String>,
    /// Yield whole lines (see `StreamOptions.lines`).
    #[serde(default)]
    #[tsify(optional)]
    pub lines: Option<bool>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl RunCodeStreamOptions {
    pub fn to_wire(&self, code: String) -> wire::BackgroundExecuteRequest {
        wire::BackgroundExecuteRequest {
            code: Some(code),
            language: self.language.clone(),
            timeout: self.timeout,
            workdir: self.workdir.clone(),
            working_dir: None,
            env: self.env.clone(),
            name: self.name.clone(),
        }
    }
}

/// One event of a process's live output (`streamProcess`, `runCodeStream`).
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamEvent {
    /// First event of `runCodeStream`: the process that was started.
    Start {
        #[serde(rename = "processId")]
        process_id: String,
        #[serde(rename = "executionId")]
        execution_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        name: Option<String>,
        /// Effective run-time limit in seconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        timeout: Option<u64>,
    },
    /// A piece of stdout (`seq` orders every event of the process).
    Stdout {
        data: String,
        seq: u64,
    },
    Stderr {
        data: String,
        seq: u64,
    },
    /// Events `fromSeq..=toSeq` were dropped to stay within the server's output cap.
    Truncated {
        #[serde(rename = "fromSeq")]
        from_seq: u64,
        #[serde(rename = "toSeq")]
        to_seq: u64,
        #[serde(rename = "droppedBytes")]
        dropped_bytes: u64,
    },
    /// The process ended; the stream ends after this event.
    Exit {
        status: ProcessStatus,
        #[serde(rename = "exitCode", skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        exit_code: Option<i32>,
        #[serde(rename = "executionTime", skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        execution_time: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        error: Option<String>,
        seq: u64,
    },
}

impl From<wire::StreamEvent> for StreamEvent {
    fn from(e: wire::StreamEvent) -> Self {
        match e {
            wire::StreamEvent::Start(s) => Self::Start {
                process_id: s.process_id,
                execution_id: s.execution_id,
                name: s.name,
                timeout: s.timeout,
            },
            wire::StreamEvent::Stdout(o) => Self::Stdout {
                data: o.data,
                seq: o.seq,
            },
            wire::StreamEvent::Stderr(o) => Self::Stderr {
                data: o.data,
                seq: o.seq,
            },
            wire::StreamEvent::Truncated(t) => Self::Truncated {
                from_seq: t.from_seq,
                to_seq: t.to_seq,
                dropped_bytes: t.dropped_bytes,
            },
            wire::StreamEvent::Exit(x) => Self::Exit {
                status: x.status.into(),
                exit_code: x.exit_code,
                execution_time: x.execution_time,
                error: x.error,
                seq: x.seq,
            },
        }
    }
}
