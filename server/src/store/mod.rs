//! Durable state in embedded SQLite (WAL): sandboxes and process records.
//!
//! The in-memory tables are the working copy; every state transition is written here so a
//! restart (even after `kill -9`) finds every sandbox and every finished process again.
//! Statements are short and the connection sits behind a mutex: callers may hold it for a
//! few hundred microseconds at most.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use sandlot_protocol::{ProcessStatus, SandboxStatus};

use crate::exec::StoredOutput;

/// A sandbox as stored.
#[derive(Debug, Clone)]
pub struct SandboxRecord {
    pub id: String,
    pub template: String,
    pub status: SandboxStatus,
    pub uid: u32,
    pub internet_access: bool,
    pub env_vars: BTreeMap<String, String>,
    pub timeout_seconds: Option<u64>,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
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
    pub started_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    pub pid: Option<u32>,
    pub timeout: u64,
    pub error: Option<String>,
}

const PROCESS_COLUMNS: &str = "process_id, sandbox_id, execution_id, name, language, status,
    exit_code, stdout, stderr, stdout_truncated, stderr_truncated, stdout_bytes, stderr_bytes,
    started_at_ms, completed_at_ms, pid, timeout, error";

fn process_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProcessRecord> {
    let status: String = r.get(5)?;
    Ok(ProcessRecord {
        process_id: r.get(0)?,
        sandbox_id: r.get(1)?,
        execution_id: r.get(2)?,
        name: r.get(3)?,
        language: r.get(4)?,
        status: ProcessStatus::parse(&status).unwrap_or(ProcessStatus::Failed),
        exit_code: r.get(6)?,
        output: StoredOutput {
            stdout: r.get(7)?,
            stderr: r.get(8)?,
            stdout_truncated: r.get(9)?,
            stderr_truncated: r.get(10)?,
            stdout_bytes: r.get(11)?,
            stderr_bytes: r.get(12)?,
        },
        started_at_ms: r.get(13)?,
        completed_at_ms: r.get(14)?,
        pid: r.get(15)?,
        timeout: r.get(16)?,
        error: r.get(17)?,
    })
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    status TEXT NOT NULL,
    uid INTEGER NOT NULL,
    internet_access INTEGER NOT NULL,
    env_vars TEXT NOT NULL,
    timeout_seconds INTEGER,
    expires_at_ms INTEGER,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS processes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    process_id TEXT NOT NULL UNIQUE,
    sandbox_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    name TEXT,
    language TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    stdout_truncated INTEGER NOT NULL DEFAULT 0,
    stderr_truncated INTEGER NOT NULL DEFAULT 0,
    stdout_bytes INTEGER NOT NULL DEFAULT 0,
    stderr_bytes INTEGER NOT NULL DEFAULT 0,
    started_at_ms INTEGER NOT NULL,
    completed_at_ms INTEGER,
    pid INTEGER,
    timeout INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS processes_by_sandbox ON processes (sandbox_id, seq);
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    process_id TEXT NOT NULL,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    secret TEXT,
    body TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks (state, next_attempt_ms);
";

/// A webhook delivery as stored. `state`: `waiting` (for its process), `pending` (body ready,
/// due at `next_attempt_ms`), `delivered`, `failed` (gave up).
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: i64,
    pub execution_id: String,
    pub process_id: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub secret: Option<String>,
    pub body: Option<String>,
    pub attempts: u32,
}

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert_sandbox(&self, s: &SandboxRecord) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT INTO sandboxes (id, template, status, uid, internet_access, env_vars,
                                    timeout_seconds, expires_at_ms, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                s.id,
                s.template,
                s.status.as_str(),
                s.uid,
                s.internet_access,
                serde_json::to_string(&s.env_vars).unwrap_or_default(),
                s.timeout_seconds,
                s.expires_at_ms,
                s.created_at_ms
            ],
        )?;
        Ok(())
    }

    pub fn set_sandbox_status(&self, id: &str, status: SandboxStatus) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE sandboxes SET status = ?2 WHERE id = ?1",
            params![id, status.as_str()],
        )?;
        Ok(())
    }

    pub fn set_sandbox_env(
        &self,
        id: &str,
        env: &BTreeMap<String, String>,
    ) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE sandboxes SET env_vars = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(env).unwrap_or_default()],
        )?;
        Ok(())
    }

    pub fn set_sandbox_expiry(
        &self,
        id: &str,
        timeout_seconds: u64,
        expires_at_ms: i64,
    ) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE sandboxes SET timeout_seconds = ?2, expires_at_ms = ?3 WHERE id = ?1",
            params![id, timeout_seconds, expires_at_ms],
        )?;
        Ok(())
    }

    /// Forgets a sandbox and its process records.
    pub fn delete_sandbox(&self, id: &str) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM processes WHERE sandbox_id = ?1", params![id])?;
        tx.execute("DELETE FROM sandboxes WHERE id = ?1", params![id])?;
        tx.commit()
    }

    pub fn sandboxes(&self) -> rusqlite::Result<Vec<SandboxRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, template, status, uid, internet_access, env_vars, timeout_seconds,
                    expires_at_ms, created_at_ms FROM sandboxes ORDER BY created_at_ms, id",
        )?;
        let rows = stmt.query_map([], |r| {
            let status: String = r.get(2)?;
            let env: String = r.get(5)?;
            Ok(SandboxRecord {
                id: r.get(0)?,
                template: r.get(1)?,
                status: SandboxStatus::parse(&status).unwrap_or(SandboxStatus::Error),
                uid: r.get(3)?,
                internet_access: r.get(4)?,
                env_vars: serde_json::from_str(&env).unwrap_or_default(),
                timeout_seconds: r.get(6)?,
                expires_at_ms: r.get(7)?,
                created_at_ms: r.get(8)?,
            })
        })?;
        rows.collect()
    }

    /// Records a process as it starts.
    pub fn insert_process(&self, p: &ProcessRecord) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT INTO processes (process_id, sandbox_id, execution_id, name, language, status,
                                    started_at_ms, pid, timeout)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                p.process_id,
                p.sandbox_id,
                p.execution_id,
                p.name,
                p.language,
                p.status.as_str(),
                p.started_at_ms,
                p.pid,
                p.timeout
            ],
        )?;
        Ok(())
    }

    /// Records a process's final state and output.
    pub fn finish_process(&self, p: &ProcessRecord) -> rusqlite::Result<()> {
        let o = &p.output;
        self.conn().execute(
            "UPDATE processes SET status = ?2, exit_code = ?3, stdout = ?4, stderr = ?5,
                    stdout_truncated = ?6, stderr_truncated = ?7, stdout_bytes = ?8,
                    stderr_bytes = ?9, started_at_ms = ?10, completed_at_ms = ?11, pid = ?12,
                    error = ?13
             WHERE process_id = ?1",
            params![
                p.process_id,
                p.status.as_str(),
                p.exit_code,
                o.stdout,
                o.stderr,
                o.stdout_truncated,
                o.stderr_truncated,
                o.stdout_bytes,
                o.stderr_bytes,
                p.started_at_ms,
                p.completed_at_ms,
                p.pid,
                p.error
            ],
        )?;
        Ok(())
    }

    pub fn delete_process(&self, process_id: &str) -> rusqlite::Result<()> {
        self.conn().execute(
            "DELETE FROM processes WHERE process_id = ?1",
            params![process_id],
        )?;
        Ok(())
    }

    /// Marks every process that was queued or running as failed (after a restart).
    pub fn fail_unfinished(&self, reason: &str, now_ms: i64) -> rusqlite::Result<usize> {
        self.conn().execute(
            "UPDATE processes SET status = 'failed', error = ?1, completed_at_ms = ?2,
                    exit_code = COALESCE(exit_code, -1)
             WHERE status IN ('queued', 'running')",
            params![reason, now_ms],
        )
    }

    pub fn processes_of(&self, sandbox_id: &str) -> rusqlite::Result<Vec<ProcessRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {PROCESS_COLUMNS} FROM processes WHERE sandbox_id = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![sandbox_id], process_row)?;
        rows.collect()
    }

    pub fn insert_webhook(&self, w: &WebhookRecord) -> rusqlite::Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO webhooks (execution_id, process_id, url, headers, secret, state)
             VALUES (?1, ?2, ?3, ?4, ?5, 'waiting')",
            params![
                w.execution_id,
                w.process_id,
                w.url,
                serde_json::to_string(&w.headers).unwrap_or_default(),
                w.secret
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Gives a waiting webhook its body and makes it due now.
    pub fn webhook_ready(&self, id: i64, body: &str, now_ms: i64) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE webhooks SET body = ?2, state = 'pending', next_attempt_ms = ?3 WHERE id = ?1",
            params![id, body, now_ms],
        )?;
        Ok(())
    }

    /// Webhooks still waiting for their process (after a restart, those processes ended).
    pub fn waiting_webhooks(&self) -> rusqlite::Result<Vec<WebhookRecord>> {
        self.webhooks_where("state = 'waiting'", params![])
    }

    /// Pending webhooks due at `now_ms`.
    pub fn due_webhooks(&self, now_ms: i64, limit: u32) -> rusqlite::Result<Vec<WebhookRecord>> {
        self.webhooks_where(
            "state = 'pending' AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms LIMIT ?2",
            params![now_ms, limit],
        )
    }

    fn webhooks_where(
        &self,
        clause: &str,
        args: impl rusqlite::Params,
    ) -> rusqlite::Result<Vec<WebhookRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT id, execution_id, process_id, url, headers, secret, body, attempts
             FROM webhooks WHERE {clause}"
        ))?;
        let rows = stmt.query_map(args, |r| {
            let headers: String = r.get(4)?;
            Ok(WebhookRecord {
                id: r.get(0)?,
                execution_id: r.get(1)?,
                process_id: r.get(2)?,
                url: r.get(3)?,
                headers: serde_json::from_str(&headers).unwrap_or_default(),
                secret: r.get(5)?,
                body: r.get(6)?,
                attempts: r.get(7)?,
            })
        })?;
        rows.collect()
    }

    /// Records an attempt: delivered, retry at `next_attempt_ms`, or given up.
    pub fn webhook_attempted(
        &self,
        id: i64,
        state: &str,
        attempts: u32,
        next_attempt_ms: i64,
        error: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE webhooks SET state = ?2, attempts = ?3, next_attempt_ms = ?4, last_error = ?5
             WHERE id = ?1",
            params![id, state, attempts, next_attempt_ms, error],
        )?;
        Ok(())
    }

    /// A process's stored record, if any.
    pub fn process(&self, process_id: &str) -> rusqlite::Result<Option<ProcessRecord>> {
        self.conn()
            .query_row(
                &format!("SELECT {PROCESS_COLUMNS} FROM processes WHERE process_id = ?1"),
                params![process_id],
                process_row,
            )
            .optional()
    }

    /// Checkpoints the WAL into the main file (on shutdown).
    pub fn flush(&self) {
        let _ = self
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional();
    }
}
