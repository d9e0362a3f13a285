//! Background process records and the calls about them: list, get, wait, kill, remove.

use sandlot_protocol as wire;
use serde::Serialize;

use crate::args::FromJs;
use tsify::Tsify;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::record::{field, Absent, RecordField};
use super::ProcessStatus;

/// `sandbox.waitForProcess(id, options)` and a process handle's `wait(options)`. Times are in
/// seconds, like every other option of the SDK.
#[derive(Tsify, FromJs, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct WaitOptions {
    /// Give up with a `TimeoutError` after this many seconds (the process runs on). Default:
    /// wait as long as the process runs.
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<f64>,
    /// Seconds between two looks at the process (default 0.5).
    #[serde(default)]
    #[tsify(optional)]
    pub interval: Option<f64>,
    /// @deprecated Use `timeout`, in seconds. Still accepted: the same limit in milliseconds
    /// (`timeout` wins when both are given).
    #[serde(default)]
    #[tsify(optional)]
    pub timeout_ms: Option<f64>,
    /// @deprecated Use `interval`, in seconds. Still accepted: milliseconds between looks.
    #[serde(default)]
    #[tsify(optional)]
    pub interval_ms: Option<f64>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl WaitOptions {
    /// The time limit in ms, if any, from either spelling.
    pub fn limit_ms(&self) -> Option<f64> {
        self.timeout.map(|secs| secs * 1000.0).or(self.timeout_ms)
    }

    /// Milliseconds between looks, from either spelling (default 500, at least 10).
    pub fn interval_ms(&self) -> u32 {
        let ms = self.interval.map(|secs| secs * 1000.0).or(self.interval_ms);
        ms.unwrap_or(500.0).max(10.0) as u32
    }
}

/// `sandbox.listProcesses(options)`. Without filters, every process of the sandbox.
#[derive(Tsify, FromJs, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListProcessesOptions {
    /// Only processes in this status, or in one of these.
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "ProcessStatus | ProcessStatus[]", optional)]
    pub status: JsValue,
    /// Only processes started with exactly this name.
    #[serde(default)]
    #[tsify(optional)]
    pub name: Option<String>,
    /// `false`: leave out the output (`stdout` and `stderr` are empty strings; the byte counts
    /// and flags stay), which makes polling a long list cheap. Default `true`.
    #[serde(default)]
    #[tsify(optional)]
    pub output: Option<bool>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl ListProcessesOptions {
    /// The query string of the filters: empty, or `?status=a,b&name=…&output=false`. The
    /// server checks the statuses (an unknown one is a `ValidationError`).
    pub fn query(&self) -> String {
        let mut query = String::new();
        let mut param = |key: &str, value: &str| {
            query.push(if query.is_empty() { '?' } else { '&' });
            query.push_str(key);
            query.push_str(&String::from(js_sys::encode_uri_component(value)));
        };
        let status = &self.status;
        if !(status.is_undefined() || status.is_null()) {
            let list = match status.dyn_ref::<js_sys::Array>() {
                Some(list) => list.join(","),
                None => js_sys::Array::of1(status).join(","),
            };
            param("status=", &String::from(list));
        }
        if let Some(name) = &self.name {
            param("name=", name);
        }
        if self.output == Some(false) {
            param("output=", "false");
        }
        query
    }
}

/// One background process.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub process_id: String,
    pub execution_id: String,
    /// Absent when the process was started without a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub name: Option<String>,
    pub language: String,
    pub status: ProcessStatus,
    /// Absent until the process has ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// True when the middle of stdout was dropped to stay within the output cap.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Bytes written to stdout, including those that were dropped.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub completed_at: Option<String>,
    /// Seconds run so far, or in all once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub execution_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub pid: Option<u32>,
    /// Effective run-time limit in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    /// Why the process failed when it is not its own exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub error: Option<String>,
    /// The out-of-memory killer ended it (`error` says so too). Present only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[tsify(optional)]
    pub oom_killed: bool,
    /// The server's cap on stored output dropped this finished record's `stdout`/`stderr`
    /// (oldest records first); status, exit code and byte counts remain. Present only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[tsify(optional)]
    pub output_evicted: bool,
}

/// How a [`ProcessInfo`] is read from a [`wire::ProcessInfo`], key by key, in the struct's
/// order (see [`super::record`]: process records are the hot path of the SDK, a list of a
/// thousand of them being one reply).
pub const PROCESS_RECORD: &[RecordField] = &[
    field("processId", &["process_id"], Absent::Required),
    field("executionId", &["execution_id"], Absent::Required),
    field("name", &["name"], Absent::Omitted),
    field("language", &["language"], Absent::Required),
    field("status", &["status"], Absent::Required),
    field("exitCode", &["exit_code"], Absent::Omitted),
    field("stdout", &["stdout"], Absent::Default("''")),
    field("stderr", &["stderr"], Absent::Default("''")),
    field(
        "stdoutTruncated",
        &["stdout_truncated"],
        Absent::Default("false"),
    ),
    field(
        "stderrTruncated",
        &["stderr_truncated"],
        Absent::Default("false"),
    ),
    field("stdoutBytes", &["stdout_bytes"], Absent::Default("0")),
    field("stderrBytes", &["stderr_bytes"], Absent::Default("0")),
    field("startedAt", &["started_at", "start_time"], Absent::Omitted),
    field(
        "completedAt",
        &["completed_at", "end_time"],
        Absent::Omitted,
    ),
    field(
        "executionTime",
        &["execution_time", "duration"],
        Absent::Omitted,
    ),
    field("pid", &["pid"], Absent::Omitted),
    field("timeout", &["timeout"], Absent::Omitted),
    field("error", &["error"], Absent::Omitted),
    field("oomKilled", &["oom_killed"], Absent::OmittedUnlessTrue),
    field(
        "outputEvicted",
        &["output_evicted"],
        Absent::OmittedUnlessTrue,
    ),
];

/// The status of a wire process record (a parsed reply), checked.
pub fn record_status(record: &JsValue) -> Option<ProcessStatus> {
    let status = js_sys::Reflect::get(record, &JsValue::from_str("status")).ok()?;
    wire::ProcessStatus::parse(&status.as_string()?).map(ProcessStatus::from)
}

/// Reply of `killProcess` and `removeProcess`.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessActionResult {
    pub success: bool,
    pub process_id: String,
    pub status: ProcessStatus,
    pub message: String,
}

/// How a [`ProcessActionResult`] is read from a [`wire::ProcessActionReply`].
pub const PROCESS_ACTION_RESULT: &[RecordField] = &[
    field("success", &["success"], Absent::Required),
    field("processId", &["process_id"], Absent::Required),
    field("status", &["status"], Absent::Required),
    field("message", &["message"], Absent::Required),
];

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::types::record::record_mappings;
    use crate::types::record::tests::{assert_js_keys, assert_wire_keys};
    use wasm_bindgen_test::wasm_bindgen_test;

    fn get(v: &JsValue, key: &str) -> JsValue {
        js_sys::Reflect::get(v, &JsValue::from_str(key)).unwrap()
    }

    #[wasm_bindgen_test]
    fn the_record_table_names_every_key_of_the_js_record_in_order() {
        let full = ProcessInfo {
            process_id: "p".into(),
            execution_id: "e".into(),
            name: Some("n".into()),
            language: "python".into(),
            status: ProcessStatus::Completed,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_bytes: 0,
            stderr_bytes: 0,
            started_at: Some("s".into()),
            completed_at: Some("c".into()),
            execution_time: Some(1.0),
            pid: Some(1),
            timeout: Some(2),
            error: Some("x".into()),
            oom_killed: true,
            output_evicted: true,
        };
        let optional = [
            "name",
            "exitCode",
            "startedAt",
            "completedAt",
            "executionTime",
            "pid",
            "timeout",
            "error",
            "oomKilled",
            "outputEvicted",
        ];
        assert_js_keys(PROCESS_RECORD, &full, &optional);
    }

    #[wasm_bindgen_test]
    fn the_record_table_reads_every_field_of_the_wire_record() {
        let wire = wire::ProcessInfo {
            process_id: "p".into(),
            execution_id: "e".into(),
            name: Some("n".into()),
            language: "python".into(),
            status: wire::ProcessStatus::Running,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_bytes: 0,
            stderr_bytes: 0,
            started_at: Some("s".into()),
            start_time: Some("s".into()),
            completed_at: Some("c".into()),
            end_time: Some("c".into()),
            execution_time: Some(1.0),
            duration: Some(1.0),
            pid: Some(1),
            timeout: Some(2),
            error: Some("x".into()),
            oom_killed: true,
            output_evicted: true,
        };
        let js = assert_wire_keys(PROCESS_RECORD, &wire, &[]);
        assert_eq!(record_status(&js), Some(ProcessStatus::Running));
        assert_eq!(record_status(&JsValue::NULL), None);
    }

    #[wasm_bindgen_test]
    fn the_action_table_matches_both_structs() {
        let result = ProcessActionResult {
            success: true,
            process_id: "p".into(),
            status: ProcessStatus::Killed,
            message: "m".into(),
        };
        assert_js_keys(PROCESS_ACTION_RESULT, &result, &[]);
        let reply = wire::ProcessActionReply {
            success: true,
            process_id: "p".into(),
            status: wire::ProcessStatus::Killed,
            message: "m".into(),
        };
        assert_wire_keys(PROCESS_ACTION_RESULT, &reply, &[]);
    }

    #[wasm_bindgen_test]
    fn the_build_gets_the_tables_as_plain_arrays() {
        let all = record_mappings();
        let process: js_sys::Array = get(&all, "Process").unchecked_into();
        assert_eq!(process.length() as usize, PROCESS_RECORD.len());
        let started = process.get(12);
        assert_eq!(
            js_sys::JSON::stringify(&started).unwrap(),
            r#"["startedAt",["started_at","start_time"],"omitted"]"#
        );
    }

    fn options<T: crate::args::FromJs>(json: &str) -> T {
        T::read_js(&js_sys::JSON::parse(json).unwrap()).unwrap()
    }

    #[wasm_bindgen_test]
    fn wait_options_are_seconds_and_still_read_the_millisecond_spellings() {
        let secs: WaitOptions = options(r#"{"timeout":1.5,"interval":0.25}"#);
        assert_eq!((secs.limit_ms(), secs.interval_ms()), (Some(1500.0), 250));
        let ms: WaitOptions = options(r#"{"timeoutMs":1500,"intervalMs":250}"#);
        assert_eq!((ms.limit_ms(), ms.interval_ms()), (Some(1500.0), 250));
        let both: WaitOptions = options(r#"{"timeout":2,"timeoutMs":60000}"#);
        assert_eq!(both.limit_ms(), Some(2000.0), "the seconds spelling wins");
        let none: WaitOptions = options("{}");
        assert_eq!((none.limit_ms(), none.interval_ms()), (None, 500));
        let tiny: WaitOptions = options(r#"{"interval":0}"#);
        assert_eq!(tiny.interval_ms(), 10, "polls are at least 10 ms apart");
    }

    #[wasm_bindgen_test]
    fn list_filters_become_the_servers_query() {
        let none: ListProcessesOptions = options("{}");
        assert_eq!(none.query(), "");
        let one: ListProcessesOptions = options(r#"{"status":"running"}"#);
        assert_eq!(one.query(), "?status=running");
        let all: ListProcessesOptions =
            options(r#"{"status":["running","queued"],"name":"a b&c","output":false}"#);
        assert_eq!(
            all.query(),
            "?status=running%2Cqueued&name=a%20b%26c&output=false"
        );
        let with_output: ListProcessesOptions = options(r#"{"output":true}"#);
        assert_eq!(with_output.query(), "", "output is on by default");
    }
}
