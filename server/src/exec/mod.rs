//! Processes: the per-sandbox process table and the runner that drives one process.

pub mod events;
pub mod follow;
pub mod output;
pub mod runner;

use std::sync::Mutex;
use std::time::SystemTime;

use indexmap::IndexMap;
use sandlot_protocol::{ProcessInfo, ProcessStatus};
use tokio::sync::{watch, Notify};

use crate::time::{rfc3339_millis, seconds_between};
use events::{EventLog, Gap, OutputEvent, Stream};
use output::OutputBuffer;

/// Why a process was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Killed,
    Timeout,
    SandboxGone,
}

/// Mutable state of one process.
#[derive(Debug)]
pub struct ProcState {
    pub status: ProcessStatus,
    pub exit_code: Option<i32>,
    pub started_at: SystemTime,
    pub completed_at: Option<SystemTime>,
    pub pid: Option<u32>,
    pub error: Option<String>,
    pub stdout: OutputBuffer,
    pub stderr: OutputBuffer,
    /// The same output as numbered events, for streams.
    pub events: EventLog,
    /// Output loaded from the store for a finished process (its buffers are not kept).
    pub stored_output: Option<StoredOutput>,
    pub stop: Option<StopReason>,
}

/// The final output of a process, as the store keeps it.
#[derive(Debug, Clone, Default)]
pub struct StoredOutput {
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

/// One background (or synchronous) process.
#[derive(Debug)]
pub struct ProcessEntry {
    pub id: String,
    pub execution_id: String,
    pub name: Option<String>,
    pub language: String,
    pub timeout_secs: u64,
    pub state: Mutex<ProcState>,
    /// Wakes the runner to stop the process (the reason is in `state.stop`).
    pub stop_requested: Notify,
    /// Flips to true once the process has reached a final status.
    pub finished: watch::Sender<bool>,
    /// Wakes stream readers when output arrives or the process ends.
    pub changed: Notify,
}

impl ProcessEntry {
    pub fn new(
        id: String,
        execution_id: String,
        name: Option<String>,
        language: String,
        timeout_secs: u64,
        output_cap: usize,
    ) -> Self {
        Self {
            id,
            execution_id,
            name,
            language,
            timeout_secs,
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
                stored_output: None,
                stop: None,
            }),
            stop_requested: Notify::new(),
            finished: watch::channel(false).0,
            changed: Notify::new(),
        }
    }

    /// Records a chunk of output and wakes stream readers.
    pub fn push_output(&self, stream: Stream, bytes: &[u8]) {
        let mut st = self.lock();
        match stream {
            Stream::Stdout => st.stdout.push(bytes),
            Stream::Stderr => st.stderr.push(bytes),
        }
        st.events.push(stream, bytes);
        drop(st);
        self.changed.notify_waiters();
    }

    /// Output events after `after`, the gap before them if any were dropped, and the
    /// sequence number of the final (exit) event once the process has ended.
    pub fn events_since(&self, after: u64) -> (Option<Gap>, Vec<OutputEvent>, Option<u64>) {
        let mut st = self.lock();
        let exit_seq = st
            .status
            .is_final()
            .then(|| st.events.last_seq().max(2) + 1);
        if let (Some(stored), 0) = (&st.stored_output, st.events.last_seq()) {
            // Restored after a restart: the output is whole text, replayed as two events.
            let at = st.completed_at.unwrap_or(st.started_at);
            let events = [
                (1, Stream::Stdout, &stored.stdout),
                (2, Stream::Stderr, &stored.stderr),
            ]
            .into_iter()
            .filter(|(seq, _, data)| *seq > after && !data.is_empty())
            .map(|(seq, stream, data)| OutputEvent {
                seq,
                stream,
                data: data.clone(),
                at,
            })
            .collect();
            return (None, events, exit_seq);
        }
        let (gap, events) = st.events.since(after);
        (gap, events, exit_seq.map(|_| st.events.last_seq() + 1))
    }

    pub fn status(&self) -> ProcessStatus {
        self.lock().status
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Waits until the process has a final status.
    pub async fn wait(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// The final output as the store keeps it.
    pub fn output(&self) -> StoredOutput {
        let st = self.lock();
        output_of(&st)
    }

    pub fn to_info(&self) -> ProcessInfo {
        self.info(true)
    }

    /// The wire record; without `with_output`, `stdout`/`stderr` stay empty (sizes and
    /// truncation flags are still given) and nothing is copied.
    pub fn info(&self, with_output: bool) -> ProcessInfo {
        let st = self.lock();
        let out = if with_output {
            output_of(&st)
        } else {
            output_sizes(&st)
        };
        let started = rfc3339_millis(st.started_at);
        let ended = st.completed_at.map(rfc3339_millis);
        let elapsed = seconds_between(
            st.started_at,
            st.completed_at.unwrap_or_else(SystemTime::now),
        );
        ProcessInfo {
            process_id: self.id.clone(),
            execution_id: self.execution_id.clone(),
            name: self.name.clone(),
            language: self.language.clone(),
            status: st.status,
            exit_code: st.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
            stdout_truncated: out.stdout_truncated,
            stderr_truncated: out.stderr_truncated,
            stdout_bytes: out.stdout_bytes,
            stderr_bytes: out.stderr_bytes,
            started_at: Some(started.clone()),
            start_time: Some(started),
            completed_at: ended.clone(),
            end_time: ended,
            execution_time: Some(elapsed),
            duration: Some(elapsed),
            pid: st.pid,
            timeout: Some(self.timeout_secs),
            error: st.error.clone(),
        }
    }
}

fn output_sizes(st: &ProcState) -> StoredOutput {
    match &st.stored_output {
        Some(o) => o.clone_sizes(),
        None => StoredOutput {
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: st.stdout.truncated(),
            stderr_truncated: st.stderr.truncated(),
            stdout_bytes: st.stdout.total_bytes(),
            stderr_bytes: st.stderr.total_bytes(),
        },
    }
}

impl StoredOutput {
    fn clone_sizes(&self) -> Self {
        Self {
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: self.stdout_truncated,
            stderr_truncated: self.stderr_truncated,
            stdout_bytes: self.stdout_bytes,
            stderr_bytes: self.stderr_bytes,
        }
    }
}

fn output_of(st: &ProcState) -> StoredOutput {
    if let Some(stored) = &st.stored_output {
        return stored.clone();
    }
    StoredOutput {
        stdout: st.stdout.text(),
        stderr: st.stderr.text(),
        stdout_truncated: st.stdout.truncated(),
        stderr_truncated: st.stderr.truncated(),
        stdout_bytes: st.stdout.total_bytes(),
        stderr_bytes: st.stderr.total_bytes(),
    }
}

/// The processes of one sandbox, in start order.
#[derive(Debug, Default)]
pub struct ProcessTable {
    entries: Mutex<IndexMap<String, std::sync::Arc<ProcessEntry>>>,
}

impl ProcessTable {
    fn map(&self) -> std::sync::MutexGuard<'_, IndexMap<String, std::sync::Arc<ProcessEntry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, entry: std::sync::Arc<ProcessEntry>) {
        self.map().insert(entry.id.clone(), entry);
    }

    pub fn get(&self, id: &str) -> Option<std::sync::Arc<ProcessEntry>> {
        self.map().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<std::sync::Arc<ProcessEntry>> {
        self.map().shift_remove(id)
    }

    pub fn all(&self) -> Vec<std::sync::Arc<ProcessEntry>> {
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
