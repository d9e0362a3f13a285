//! Processes: one process's state machine, the table of a sandbox's live processes, and
//! the runner that drives a process from spawn to its final status.
//!
//! A [`ProcessEntry`] lives in RAM only while its process runs (and for a short linger after,
//! so streams that reconnect resume exactly). Its final record, output included, is in the
//! store; reads of finished processes are served from there, so RAM does not grow with the
//! number of finished runs.

pub mod events;
pub mod follow;
pub mod launch;
pub mod manager;
pub mod output;
pub mod runner;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use indexmap::IndexMap;
use sandlot_protocol::{ExitEvent, Language, ProcessInfo, ProcessStatus, OOM_KILLED_ERROR};
use tokio::sync::{watch, Notify};

use crate::store::{ProcessRecord, SqliteStore, StoredOutput};
use crate::time::{now_rfc3339, unix_millis};
use events::{EventLog, Gap, OutputEvent, Stream};
use output::OutputBuffer;

/// Why a process was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Killed,
    Timeout,
    SandboxGone,
}

/// Exit code reported for a process killed by its timeout (as GNU `timeout` does).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// Mutable state of one process; changed only through [`ProcessEntry`]'s transitions.
#[derive(Debug)]
struct ProcState {
    status: ProcessStatus,
    exit_code: Option<i32>,
    started_at: SystemTime,
    completed_at: Option<SystemTime>,
    pid: Option<u32>,
    error: Option<String>,
    stdout: OutputBuffer,
    stderr: OutputBuffer,
    /// The same output as numbered events, for streams.
    events: EventLog,
    stop: Option<StopReason>,
    /// The final state is decided and being stored; nothing more is recorded.
    ending: bool,
}

/// Where a recorded process's final record is written.
#[derive(Clone)]
pub struct RecordSink {
    pub store: Arc<SqliteStore>,
    pub sandbox_id: String,
}

impl std::fmt::Debug for RecordSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSink")
            .field("sandbox_id", &self.sandbox_id)
            .finish()
    }
}

/// One process: `queued` → `running` → a final status, never back.
#[derive(Debug)]
pub struct ProcessEntry {
    pub id: String,
    pub execution_id: String,
    pub name: Option<String>,
    pub language: Language,
    pub timeout_secs: u64,
    /// Listed and stored (background, async, SSE-streamed runs), or only followed
    /// (synchronous and WebSocket runs).
    pub recorded: bool,
    /// Where the final record goes (recorded processes only).
    sink: Option<RecordSink>,
    /// The final record is in the store (always true for processes that are not recorded).
    durable: AtomicBool,
    state: Mutex<ProcState>,
    /// Wakes the runner to stop the process (the reason is in `state.stop`).
    stop_requested: Notify,
    /// Flips to true once the process has reached a final status.
    finished: watch::Sender<bool>,
    /// Wakes stream readers when output arrives or the process ends.
    changed: Notify,
}

impl ProcessEntry {
    pub fn new(
        id: String,
        execution_id: String,
        name: Option<String>,
        language: Language,
        timeout_secs: u64,
        sink: Option<RecordSink>,
        output_cap: usize,
    ) -> Self {
        Self {
            id,
            execution_id,
            name,
            language,
            timeout_secs,
            recorded: sink.is_some(),
            durable: AtomicBool::new(sink.is_none()),
            sink,
            state: Mutex::new(ProcState {
                status: ProcessStatus::Queued,
                exit_code: None,
                started_at: SystemTime::now(),
                completed_at: None,
                pid: None,
                error: None,
                stdout: OutputBuffer::new(output_cap),
                stderr: OutputBuffer::new(output_cap),
                events: EventLog::new(output_cap * 2),
                stop: None,
                ending: false,
            }),
            stop_requested: Notify::new(),
            finished: watch::channel(false).0,
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> ProcessStatus {
        self.lock().status
    }

    /// `queued` → `running`: the process was spawned.
    pub fn mark_running(&self, pid: Option<u32>) {
        let mut st = self.lock();
        if st.status == ProcessStatus::Queued {
            st.status = ProcessStatus::Running;
            st.pid = pid;
            st.started_at = SystemTime::now();
        }
    }

    /// Records a chunk of output and wakes stream readers.
    pub fn push_output(&self, stream: Stream, bytes: &[u8]) {
        let mut st = self.lock();
        if st.ending || st.status.is_final() {
            return; // the final record is written; late bytes would contradict it
        }
        match stream {
            Stream::Stdout => st.stdout.push(bytes),
            Stream::Stderr => st.stderr.push(bytes),
            Stream::Result => {}
        }
        st.events.push(stream, bytes);
        drop(st);
        self.changed.notify_waiters();
    }

    /// Asks the runner to stop the process. Returns false if it had already ended.
    pub fn request_stop(&self, reason: StopReason) -> bool {
        let mut st = self.lock();
        if st.status.is_final() {
            return false;
        }
        st.stop.get_or_insert(reason);
        drop(st);
        self.stop_requested.notify_one();
        true
    }

    /// Resolves with the reason once a stop has been requested.
    pub async fn stop_requested(&self) -> StopReason {
        loop {
            if let Some(reason) = self.lock().stop {
                return reason;
            }
            self.stop_requested.notified().await;
        }
    }

    /// → final: the process exited with `exit_code` (or died without one: `None`). A stop
    /// that was requested decides the status.
    /// `oom_limit_mb` is set when the out-of-memory killer ended the process.
    pub fn finish(&self, exit_code: Option<i32>, oom_limit_mb: Option<u64>) {
        let code = exit_code.unwrap_or(-1);
        self.end(|st| match st.stop {
            Some(StopReason::Timeout) => {
                st.error = Some(format!("timed out after {} s", self.timeout_secs));
                (ProcessStatus::Timeout, TIMEOUT_EXIT_CODE)
            }
            Some(StopReason::Killed) => (ProcessStatus::Killed, code),
            Some(StopReason::SandboxGone) => {
                st.error = Some("the sandbox was killed".into());
                (ProcessStatus::Killed, code)
            }
            None if code == 0 => (ProcessStatus::Completed, 0),
            None => {
                if let Some(limit) = oom_limit_mb {
                    st.error = Some(format!(
                        "{OOM_KILLED_ERROR} (the sandbox's memory limit is {limit} MiB)"
                    ));
                }
                (ProcessStatus::Failed, code)
            }
        });
    }

    /// → final, for a run in a context: the cell ended with `exit_code` (or was stopped:
    /// the stop decides, as in [`ProcessEntry::finish`]); `error` explains a failure.
    pub fn finish_cell(&self, exit_code: i32, error: Option<String>, oom_limit_mb: Option<u64>) {
        let code = exit_code;
        self.end(|st| match st.stop {
            Some(StopReason::Timeout) => {
                st.error = Some(format!("timed out after {} s", self.timeout_secs));
                (ProcessStatus::Timeout, TIMEOUT_EXIT_CODE)
            }
            Some(StopReason::Killed) => (ProcessStatus::Killed, code),
            Some(StopReason::SandboxGone) => {
                st.error = Some("the sandbox was killed".into());
                (ProcessStatus::Killed, code)
            }
            None if code == 0 && error.is_none() => (ProcessStatus::Completed, 0),
            None => {
                st.error = match oom_limit_mb {
                    Some(limit) => Some(format!(
                        "{OOM_KILLED_ERROR} (the sandbox's memory limit is {limit} MiB)"
                    )),
                    None => error,
                };
                (ProcessStatus::Failed, if code == 0 { 1 } else { code })
            }
        });
    }

    /// The reason a stop was requested, if one was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.lock().stop
    }

    /// → `failed`: the process could not be started; the reason is also its stderr.
    pub fn fail_to_start(&self, reason: String) {
        self.end(|st| {
            st.stderr.push(reason.as_bytes());
            st.events.push(Stream::Stderr, reason.as_bytes());
            st.error = Some(reason);
            (ProcessStatus::Failed, -1)
        });
    }

    /// Durable before visible: a recorded process's final record is written to the store
    /// first, and only then does anyone (a reader, a stream, a waiting webhook) see the end.
    /// So a process a client saw finished is still listed, as it was, after a `kill -9`.
    /// If the store refuses the write (a full disk), the end is published anyway and the
    /// record is stored later ([`ProcessEntry::store_final`]).
    fn end(&self, decide: impl FnOnce(&mut ProcState) -> (ProcessStatus, i32)) {
        let mut st = self.lock();
        if st.status.is_final() || st.ending {
            return;
        }
        let (status, exit_code) = decide(&mut st);
        let completed_at = SystemTime::now();
        st.events.finish();
        if let Some(sink) = &self.sink {
            st.ending = true;
            let mut record = self.record_from(&st, &sink.sandbox_id, true);
            record.status = status;
            record.exit_code = Some(exit_code);
            record.completed_at_ms = Some(unix_millis(completed_at));
            record.final_seq = Some(st.events.last_seq() + 1);
            drop(st);
            self.write_final(sink, &record);
            st = self.lock();
        }
        st.status = status;
        st.exit_code = Some(exit_code);
        st.completed_at = Some(completed_at);
        drop(st);
        self.finished.send_replace(true);
        self.changed.notify_waiters();
    }

    fn write_final(&self, sink: &RecordSink, record: &ProcessRecord) -> bool {
        match sink.store.finish_process(record) {
            Ok(()) => {
                self.durable.store(true, Ordering::Release);
                true
            }
            Err(e) => {
                tracing::warn!(process = %self.id, "cannot store the final record: {e}");
                false
            }
        }
    }

    /// Whether the final record is in the store (true for processes that are not recorded).
    pub fn is_durable(&self) -> bool {
        self.durable.load(Ordering::Acquire)
    }

    /// Stores the final record of an ended process again (after the store refused it).
    pub fn store_final(&self) -> bool {
        match &self.sink {
            Some(sink) if !self.is_durable() && self.status().is_final() => {
                let record = self.record(&sink.sandbox_id, true);
                self.write_final(sink, &record)
            }
            _ => self.is_durable(),
        }
    }

    /// Waits until the process has a final status.
    pub async fn wait(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Registers interest in the next change (output or end); see [`follow::Follower`].
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Output events after `after`, the gap before them if any were dropped, and the
    /// sequence number of the exit event once the process has ended.
    pub(crate) fn events_since(&self, after: u64) -> (Option<Gap>, Vec<OutputEvent>, Option<u64>) {
        let mut st = self.lock();
        let exit_seq = st.status.is_final().then(|| st.events.last_seq() + 1);
        let (gap, events) = st.events.since(after);
        (gap, events, exit_seq)
    }

    /// The stream's final event.
    pub fn exit_event(&self, seq: u64) -> ExitEvent {
        let info = self.info(false);
        ExitEvent {
            status: info.status,
            exit_code: info.exit_code,
            execution_time: info.execution_time,
            error: info.error,
            oom_killed: info.oom_killed,
            timestamp: Some(now_rfc3339()),
            seq,
        }
    }

    /// The process as the store keeps it; without `with_output` the texts stay empty (sizes
    /// and truncation flags are still given) and nothing is copied.
    pub fn record(&self, sandbox_id: &str, with_output: bool) -> ProcessRecord {
        self.record_from(&self.lock(), sandbox_id, with_output)
    }

    fn record_from(&self, st: &ProcState, sandbox_id: &str, with_output: bool) -> ProcessRecord {
        let output = StoredOutput {
            stdout: if with_output {
                st.stdout.text()
            } else {
                String::new()
            },
            stderr: if with_output {
                st.stderr.text()
            } else {
                String::new()
            },
            stdout_truncated: st.stdout.truncated(),
            stderr_truncated: st.stderr.truncated(),
            stdout_bytes: st.stdout.total_bytes(),
            stderr_bytes: st.stderr.total_bytes(),
        };
        ProcessRecord {
            process_id: self.id.clone(),
            sandbox_id: sandbox_id.into(),
            execution_id: self.execution_id.clone(),
            name: self.name.clone(),
            language: self.language.as_str().into(),
            status: st.status,
            exit_code: st.exit_code,
            output,
            output_evicted: false,
            started_at_ms: unix_millis(st.started_at),
            completed_at_ms: st.completed_at.map(unix_millis),
            pid: st.pid,
            timeout: self.timeout_secs,
            error: st.error.clone(),
            final_seq: st.status.is_final().then(|| st.events.last_seq() + 1),
        }
    }

    /// The wire record (see [`ProcessEntry::record`] for `with_output`).
    pub fn info(&self, with_output: bool) -> ProcessInfo {
        self.record("", with_output).into_info()
    }
}

/// The live processes of one sandbox, in start order.
#[derive(Debug, Default)]
pub struct ProcessTable {
    entries: Mutex<IndexMap<String, Arc<ProcessEntry>>>,
}

impl ProcessTable {
    fn map(&self) -> MutexGuard<'_, IndexMap<String, Arc<ProcessEntry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, entry: Arc<ProcessEntry>) {
        self.map().insert(entry.id.clone(), entry);
    }

    /// A recorded process (runs that live only while followed are not addressable).
    pub fn recorded(&self, id: &str) -> Option<Arc<ProcessEntry>> {
        self.map().get(id).filter(|e| e.recorded).cloned()
    }

    /// Any live process, recorded or not.
    pub fn live(&self, id: &str) -> Option<Arc<ProcessEntry>> {
        self.map().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<ProcessEntry>> {
        self.map().shift_remove(id)
    }

    /// Every live process, recorded or not.
    pub fn all(&self) -> Vec<Arc<ProcessEntry>> {
        self.map().values().cloned().collect()
    }

    /// Processes that have not ended yet.
    pub fn active_count(&self) -> usize {
        self.map()
            .values()
            .filter(|e| !e.status().is_final())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutputCaps;

    #[test]
    fn a_recorded_process_is_seen_finished_only_once_its_record_is_stored() {
        let dir = std::env::temp_dir().join(format!("sandlot-exec-{}", crate::ids::request_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        let caps = OutputCaps {
            per_sandbox: 1 << 20,
            total: 1 << 20,
        };
        let store = Arc::new(SqliteStore::open(&db, caps).unwrap());
        let sink = RecordSink {
            store: store.clone(),
            sandbox_id: "sb".into(),
        };
        let entry = Arc::new(ProcessEntry::new(
            "p".into(),
            "e".into(),
            None,
            Language::Bash,
            10,
            Some(sink),
            1024,
        ));
        store.insert_process(&entry.record("sb", false)).unwrap();
        entry.push_output(Stream::Stdout, b"done\n");

        // Another connection holds the write lock: the final record cannot be written yet.
        let other = rusqlite::Connection::open(&db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ending = {
            let entry = entry.clone();
            std::thread::spawn(move || entry.finish(Some(0), None))
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            entry.status(),
            ProcessStatus::Queued,
            "not final while unstored"
        );
        assert!(!entry.is_durable());
        other.execute_batch("COMMIT").unwrap();
        ending.join().unwrap();
        assert_eq!(entry.status(), ProcessStatus::Completed);
        assert!(entry.is_durable());
        let stored = store.process("p").unwrap().unwrap();
        assert_eq!(stored.status, ProcessStatus::Completed);
        assert_eq!(stored.output.stdout, "done\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
