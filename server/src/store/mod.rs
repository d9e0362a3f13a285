//! Durable state: the sandbox catalog, process records and webhook deliveries.
//!
//! The node reaches sandbox records through [`SandboxCatalog`], a small interface a cluster's
//! Postgres catalog can implement too; process records and webhook deliveries stay with the
//! node that ran them. [`SqliteStore`] (embedded, WAL) implements all of it for one host,
//! with versioned schema migrations ([`migrations`]).

mod catalog;
mod migrations;
mod processes;
mod sqlite;
mod webhooks;

use std::collections::BTreeMap;

use sandlot_protocol::{ProcessInfo, ProcessStatus, SandboxStatus};

use crate::time::{from_unix_millis, rfc3339_millis, seconds_between};
pub use sqlite::{OutputCaps, SqliteStore};
pub use webhooks::{DeliveryState, WebhookRecord};

/// What kind of failure a store operation met; callers answer each differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The disk (or the database's page limit) is full: nothing was written, earlier
    /// records are intact, and writes work again once space is freed.
    Full,
    /// Another connection held the database lock through every retry.
    Busy,
    Other,
}

/// A store operation failed.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

impl StoreError {
    pub(super) fn other(message: impl Into<String>) -> Self {
        Self {
            kind: StoreErrorKind::Other,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// SQLite says "full" (`SQLITE_FULL`: the file system returned ENOSPC, or the page limit was
/// reached) and "busy" (`SQLITE_BUSY`/`SQLITE_LOCKED`) with its own codes.
pub(super) fn kind_of(e: &rusqlite::Error) -> StoreErrorKind {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreErrorKind::Full,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreErrorKind::Busy,
        _ => StoreErrorKind::Other,
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self {
            kind: kind_of(&e),
            message: e.to_string(),
        }
    }
}

impl StoreError {
    /// A file operation on `what` failed; ENOSPC and EDQUOT are "full".
    pub(super) fn io(what: impl std::fmt::Display, e: std::io::Error) -> Self {
        let kind = match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => StoreErrorKind::Full,
            _ => StoreErrorKind::Other,
        };
        Self {
            kind,
            message: format!("{what}: {e}"),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A sandbox as stored.
#[derive(Debug, Clone)]
pub struct SandboxRecord {
    pub id: String,
    pub template: String,
    pub status: SandboxStatus,
    pub uid: u32,
    pub internet_access: bool,
    /// Egress rules of a sandbox with internet access.
    pub network: Option<sandlot_protocol::NetworkRules>,
    pub env_vars: BTreeMap<String, String>,
    pub timeout_seconds: Option<u64>,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// Agent tokens must carry this generation (or the one before, until
    /// `previous_token_until_ms`).
    pub token_generation: u32,
    pub previous_token_until_ms: Option<i64>,
}

/// The sandbox side of the store: what a catalog shared by several nodes must hold.
pub trait SandboxCatalog: Send + Sync {
    fn insert_sandbox(&self, s: &SandboxRecord) -> StoreResult<()>;
    fn set_sandbox_status(&self, id: &str, status: SandboxStatus) -> StoreResult<()>;
    fn set_sandbox_env(&self, id: &str, env: &BTreeMap<String, String>) -> StoreResult<()>;
    fn set_sandbox_expiry(
        &self,
        id: &str,
        timeout_seconds: u64,
        expires_at_ms: i64,
    ) -> StoreResult<()>;
    fn set_sandbox_token_generation(
        &self,
        id: &str,
        generation: u32,
        previous_until_ms: Option<i64>,
    ) -> StoreResult<()>;
    fn set_sandbox_network(
        &self,
        id: &str,
        rules: &sandlot_protocol::NetworkRules,
    ) -> StoreResult<()>;
    fn delete_sandbox(&self, id: &str) -> StoreResult<()>;
    /// Every sandbox, oldest first.
    fn sandboxes(&self) -> StoreResult<Vec<SandboxRecord>>;
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

/// A process as stored.
#[derive(Debug, Clone)]
pub struct ProcessRecord {
    pub process_id: String,
    pub sandbox_id: String,
    pub execution_id: String,
    pub name: Option<String>,
    pub language: String,
    pub status: ProcessStatus,
    pub exit_code: Option<i32>,
    pub output: StoredOutput,
    /// The output cap of the store dropped `stdout`/`stderr` (sizes and flags remain).
    pub output_evicted: bool,
    pub started_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    pub pid: Option<u32>,
    pub timeout: u64,
    pub error: Option<String>,
    /// Sequence number of the exit event of the process's live stream, once it ended.
    pub final_seq: Option<u64>,
}

impl ProcessRecord {
    /// The wire record: one conversion for live and stored processes alike.
    pub fn into_info(self) -> ProcessInfo {
        let started_at = from_unix_millis(self.started_at_ms);
        let completed_at = self.completed_at_ms.map(from_unix_millis);
        let started = rfc3339_millis(started_at);
        let ended = completed_at.map(rfc3339_millis);
        let elapsed = seconds_between(
            started_at,
            completed_at.unwrap_or_else(std::time::SystemTime::now),
        );
        let o = self.output;
        ProcessInfo {
            process_id: self.process_id,
            execution_id: self.execution_id,
            name: self.name,
            language: self.language,
            status: self.status,
            exit_code: self.exit_code,
            stdout: o.stdout,
            stderr: o.stderr,
            stdout_truncated: o.stdout_truncated,
            stderr_truncated: o.stderr_truncated,
            stdout_bytes: o.stdout_bytes,
            stderr_bytes: o.stderr_bytes,
            started_at: Some(started.clone()),
            start_time: Some(started),
            completed_at: ended.clone(),
            end_time: ended,
            execution_time: Some(elapsed),
            duration: Some(elapsed),
            pid: self.pid,
            timeout: Some(self.timeout),
            oom_killed: self
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(sandlot_protocol::OOM_KILLED_ERROR)),
            error: self.error,
            output_evicted: self.output_evicted,
        }
    }
}
