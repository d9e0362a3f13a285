//! The embedded store: one SQLite file in WAL mode behind a mutex. Statements are short,
//! so callers hold the lock for a few hundred microseconds at most.
//!
//! Finished processes' output is bounded here: the bytes stored per sandbox and in total
//! are counted (in memory, rebuilt at open), and when a finished record pushes a count past
//! its cap, the oldest finished records' output is dropped and they are marked evicted.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Params};
use sandlot_protocol::{ProcessStatus, SandboxStatus};
use serde_json::value::RawValue;

use super::{
    kind_of, migrations, ProcessRecord, SandboxCatalog, SandboxRecord, StoreErrorKind, StoreResult,
    StoredOutput,
};

/// How long SQLite itself waits for a lock another connection holds before answering busy.
const BUSY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Pauses before a write that still met a lock is tried again. SQLite answers busy at once
/// in cases its busy timeout does not cover (a stale read snapshot, recovery by another
/// connection); together with the timeout, a write waits about 10 s at most, then fails as
/// `Busy` (a 503 to the client, never a 500).
const BUSY_RETRY_BACKOFF_MS: [u64; 4] = [25, 50, 100, 200];

/// Runs a write, retrying while the database is busy or locked.
pub(super) fn retry_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut backoff = BUSY_RETRY_BACKOFF_MS.iter();
    loop {
        match op() {
            Err(e) if kind_of(&e) == StoreErrorKind::Busy => match backoff.next() {
                Some(ms) => std::thread::sleep(Duration::from_millis(*ms)),
                None => return Err(e),
            },
            done => return done,
        }
    }
}

/// One row of a listing.
#[derive(Debug)]
pub struct Listed {
    pub process_id: String,
    pub status: ProcessStatus,
    pub name: Option<String>,
    /// The stored wire record of a finished process.
    pub json: Option<Box<RawValue>>,
}

/// A finished record's wire JSON, with and without its output.
fn wire_json(p: &ProcessRecord) -> (String, String) {
    let info = p.clone().into_info();
    let full = serde_json::to_string(&info).expect("process records serialise");
    let lite = serde_json::to_string(&sandlot_protocol::ProcessInfo {
        stdout: String::new(),
        stderr: String::new(),
        ..info
    })
    .expect("process records serialise");
    (full, lite)
}

/// Caps on the output kept for finished processes, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct OutputCaps {
    pub per_sandbox: u64,
    pub total: u64,
}

pub struct SqliteStore {
    inner: Mutex<Inner>,
    caps: OutputCaps,
}

pub(super) struct Inner {
    pub(super) conn: Connection,
    /// Output bytes stored per sandbox, and their sum.
    stored: HashMap<String, u64>,
    stored_total: u64,
}

const PROCESS_COLUMNS: &str = "process_id, sandbox_id, execution_id, name, language, status,
    exit_code, stdout, stderr, stdout_truncated, stderr_truncated, stdout_bytes, stderr_bytes,
    started_at_ms, completed_at_ms, pid, timeout, error, output_evicted, final_seq";
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
        output_evicted: r.get(18)?,
        final_seq: r.get(19)?,
    })
}

impl SqliteStore {
    pub fn open(path: &Path, caps: OutputCaps) -> StoreResult<Self> {
        restrict_files(path)?;
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        migrations::apply(&mut conn)?;
        let mut stored = HashMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT sandbox_id, SUM(stored_bytes) FROM processes GROUP BY sandbox_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (id, bytes) = row?;
                stored.insert(id, bytes.max(0) as u64);
            }
        }
        let stored_total = stored.values().sum();
        Ok(Self {
            inner: Mutex::new(Inner {
                conn,
                stored,
                stored_total,
            }),
            caps,
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a process as it starts.
    pub fn insert_process(&self, p: &ProcessRecord) -> StoreResult<()> {
        self.lock().execute(
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

    /// Records a process's final state and output, then enforces the output caps.
    pub fn finish_process(&self, p: &ProcessRecord) -> StoreResult<()> {
        let o = &p.output;
        let bytes = (o.stdout.len() + o.stderr.len()) as u64;
        let (json, json_lite) = wire_json(p);
        let mut inner = self.lock();
        // Finishing twice (the runner and a shutdown both store it) counts the bytes once.
        let before: Option<i64> = inner
            .conn
            .query_row(
                "SELECT stored_bytes FROM processes WHERE process_id = ?1",
                params![p.process_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(before) = before else {
            // Removed meanwhile (its sandbox was deleted): nothing to store.
            return Ok(());
        };
        inner.execute(
            "UPDATE processes SET status = ?2, exit_code = ?3, stdout = ?4, stderr = ?5,
                    stdout_truncated = ?6, stderr_truncated = ?7, stdout_bytes = ?8,
                    stderr_bytes = ?9, started_at_ms = ?10, completed_at_ms = ?11, pid = ?12,
                    error = ?13, final_seq = ?14, stored_bytes = ?15, info_json = ?16,
                    info_json_lite = ?17
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
                p.error,
                p.final_seq,
                bytes,
                json,
                json_lite
            ],
        )?;
        inner.add_stored(&p.sandbox_id, bytes as i64 - before);
        inner.enforce(&p.sandbox_id, self.caps)
    }

    pub fn delete_process(&self, process_id: &str) -> StoreResult<()> {
        let mut inner = self.lock();
        let owner: Option<(String, i64)> = inner
            .conn
            .query_row(
                "SELECT sandbox_id, stored_bytes FROM processes WHERE process_id = ?1",
                params![process_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        inner.execute(
            "DELETE FROM processes WHERE process_id = ?1",
            params![process_id],
        )?;
        if let Some((sandbox, bytes)) = owner {
            inner.add_stored(&sandbox, -bytes);
        }
        Ok(())
    }

    /// Forgets every process record of a sandbox.
    pub fn delete_processes_of(&self, sandbox_id: &str) -> StoreResult<()> {
        let mut inner = self.lock();
        inner.execute(
            "DELETE FROM processes WHERE sandbox_id = ?1",
            params![sandbox_id],
        )?;
        if let Some(bytes) = inner.stored.remove(sandbox_id) {
            inner.stored_total -= bytes;
        }
        Ok(())
    }

    /// Drops the oldest finished records of a sandbox beyond `keep`.
    pub fn trim_processes(&self, sandbox_id: &str, keep: usize) -> StoreResult<()> {
        let mut inner = self.lock();
        let count: i64 = inner.conn.query_row(
            "SELECT COUNT(*) FROM processes WHERE sandbox_id = ?1",
            params![sandbox_id],
            |r| r.get(0),
        )?;
        let excess = count - keep as i64;
        if excess <= 0 {
            return Ok(());
        }
        let freed: i64 = inner.conn.query_row(
            "SELECT COALESCE(SUM(stored_bytes), 0) FROM (
                SELECT stored_bytes FROM processes
                WHERE sandbox_id = ?1 AND status NOT IN ('queued', 'running')
                ORDER BY seq LIMIT ?2)",
            params![sandbox_id, excess],
            |r| r.get(0),
        )?;
        inner.execute(
            "DELETE FROM processes WHERE seq IN (
                SELECT seq FROM processes
                WHERE sandbox_id = ?1 AND status NOT IN ('queued', 'running')
                ORDER BY seq LIMIT ?2)",
            params![sandbox_id, excess],
        )?;
        inner.add_stored(sandbox_id, -freed);
        Ok(())
    }

    /// Marks every process that was queued or running as failed (after a restart).
    pub fn fail_unfinished(&self, reason: &str, now_ms: i64) -> StoreResult<usize> {
        Ok(self.lock().execute(
            "UPDATE processes SET status = 'failed', error = ?1, completed_at_ms = ?2,
                    exit_code = COALESCE(exit_code, -1)
             WHERE status IN ('queued', 'running')",
            params![reason, now_ms],
        )?)
    }

    /// A sandbox's records in start order, for listings: finished ones as their stored
    /// wire JSON (with or without output); others (and records from before JSON was kept)
    /// without it, for the caller to fill in.
    pub fn listing(&self, sandbox_id: &str, with_output: bool) -> StoreResult<Vec<Listed>> {
        let inner = self.lock();
        let json = if with_output {
            "info_json"
        } else {
            "info_json_lite"
        };
        let mut stmt = inner.conn.prepare_cached(&format!(
            "SELECT process_id, status, name, {json} FROM processes
             WHERE sandbox_id = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![sandbox_id], |r| {
            let status: String = r.get(1)?;
            let json: Option<String> = r.get(3)?;
            Ok(Listed {
                process_id: r.get(0)?,
                status: ProcessStatus::parse(&status).unwrap_or(ProcessStatus::Failed),
                name: r.get(2)?,
                json: json.and_then(|j| RawValue::from_string(j).ok()),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One process's record, if any.
    pub fn process(&self, process_id: &str) -> StoreResult<Option<ProcessRecord>> {
        Ok(self
            .lock()
            .conn
            .query_row(
                &format!("SELECT {PROCESS_COLUMNS} FROM processes WHERE process_id = ?1"),
                params![process_id],
                process_row,
            )
            .optional()?)
    }

    /// Checkpoints the WAL into the main file (on shutdown).
    pub fn flush(&self) {
        let _ = self
            .lock()
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional();
    }
}

/// Makes the database file (and its WAL and shared-memory files, which SQLite creates with
/// the database's mode) readable by root alone, creating it if needed.
fn restrict_files(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e: std::io::Error| super::StoreError::io(path.display(), e);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}

impl Inner {
    /// Runs one write statement (retried while the database is busy).
    pub(super) fn execute(&self, sql: &str, params: impl Params + Copy) -> rusqlite::Result<usize> {
        retry_busy(|| self.conn.execute(sql, params))
    }

    fn add_stored(&mut self, sandbox_id: &str, delta: i64) {
        let entry = self.stored.entry(sandbox_id.to_string()).or_default();
        let before = *entry;
        *entry = before.saturating_add_signed(delta);
        self.stored_total = self
            .stored_total
            .saturating_sub(before)
            .saturating_add(*entry);
    }

    /// Evicts the oldest finished output until both caps hold.
    fn enforce(&mut self, sandbox_id: &str, caps: OutputCaps) -> StoreResult<()> {
        while self.stored.get(sandbox_id).copied().unwrap_or(0) > caps.per_sandbox {
            if !self.evict_oldest(Some(sandbox_id))? {
                break;
            }
        }
        while self.stored_total > caps.total {
            if !self.evict_oldest(None)? {
                break;
            }
        }
        Ok(())
    }

    /// Drops the output of the oldest finished record that still has some (of one sandbox,
    /// or of any); false when there is none.
    fn evict_oldest(&mut self, sandbox_id: Option<&str>) -> StoreResult<bool> {
        let victim: Option<(i64, String, i64)> = self
            .conn
            .query_row(
                "SELECT seq, sandbox_id, stored_bytes FROM processes
                 WHERE stored_bytes > 0 AND (?1 IS NULL OR sandbox_id = ?1)
                 ORDER BY seq LIMIT 1",
                params![sandbox_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((seq, owner, bytes)) = victim else {
            return Ok(false);
        };
        let mut record = self.conn.query_row(
            &format!("SELECT {PROCESS_COLUMNS} FROM processes WHERE seq = ?1"),
            params![seq],
            process_row,
        )?;
        record.output.stdout.clear();
        record.output.stderr.clear();
        record.output_evicted = true;
        let (json, json_lite) = wire_json(&record);
        self.execute(
            "UPDATE processes SET stdout = '', stderr = '', stored_bytes = 0,
                    output_evicted = 1, info_json = ?2, info_json_lite = ?3
             WHERE seq = ?1",
            params![seq, json, json_lite],
        )?;
        self.add_stored(&owner, -bytes);
        Ok(true)
    }
}

impl SandboxCatalog for SqliteStore {
    fn insert_sandbox(&self, s: &SandboxRecord) -> StoreResult<()> {
        self.lock().execute(
            "INSERT INTO sandboxes (id, template, status, uid, internet_access, env_vars,
                                    timeout_seconds, expires_at_ms, created_at_ms,
                                    token_generation, previous_token_until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                s.id,
                s.template,
                s.status.as_str(),
                s.uid,
                s.internet_access,
                serde_json::to_string(&s.env_vars).unwrap_or_default(),
                s.timeout_seconds,
                s.expires_at_ms,
                s.created_at_ms,
                s.token_generation,
                s.previous_token_until_ms
            ],
        )?;
        Ok(())
    }

    fn set_sandbox_status(&self, id: &str, status: SandboxStatus) -> StoreResult<()> {
        self.lock().execute(
            "UPDATE sandboxes SET status = ?2 WHERE id = ?1",
            params![id, status.as_str()],
        )?;
        Ok(())
    }

    fn set_sandbox_env(&self, id: &str, env: &BTreeMap<String, String>) -> StoreResult<()> {
        self.lock().execute(
            "UPDATE sandboxes SET env_vars = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(env).unwrap_or_default()],
        )?;
        Ok(())
    }

    fn set_sandbox_expiry(
        &self,
        id: &str,
        timeout_seconds: u64,
        expires_at_ms: i64,
    ) -> StoreResult<()> {
        self.lock().execute(
            "UPDATE sandboxes SET timeout_seconds = ?2, expires_at_ms = ?3 WHERE id = ?1",
            params![id, timeout_seconds, expires_at_ms],
        )?;
        Ok(())
    }

    fn set_sandbox_token_generation(
        &self,
        id: &str,
        generation: u32,
        previous_until_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.lock().execute(
            "UPDATE sandboxes SET token_generation = ?2, previous_token_until_ms = ?3
             WHERE id = ?1",
            params![id, generation, previous_until_ms],
        )?;
        Ok(())
    }

    fn delete_sandbox(&self, id: &str) -> StoreResult<()> {
        self.lock()
            .execute("DELETE FROM sandboxes WHERE id = ?1", params![id])?;
        Ok(())
    }

    fn sandboxes(&self) -> StoreResult<Vec<SandboxRecord>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare(
            "SELECT id, template, status, uid, internet_access, env_vars, timeout_seconds,
                    expires_at_ms, created_at_ms, token_generation, previous_token_until_ms
             FROM sandboxes ORDER BY created_at_ms, id",
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
                token_generation: r.get(9)?,
                previous_token_until_ms: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, sandbox: &str, out: &str) -> ProcessRecord {
        ProcessRecord {
            process_id: id.into(),
            sandbox_id: sandbox.into(),
            execution_id: format!("e-{id}"),
            name: None,
            language: "bash".into(),
            status: ProcessStatus::Completed,
            exit_code: Some(0),
            output: StoredOutput {
                stdout: out.into(),
                stdout_bytes: out.len() as u64,
                ..Default::default()
            },
            output_evicted: false,
            started_at_ms: 0,
            completed_at_ms: Some(1),
            pid: None,
            timeout: 1,
            error: None,
            final_seq: Some(2),
        }
    }

    fn store(per_sandbox: u64, total: u64) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sandlot-store-{}", crate::ids::request_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = SqliteStore::open(&dir.join("t.db"), OutputCaps { per_sandbox, total }).unwrap();
        (s, dir)
    }

    fn finish(s: &SqliteStore, r: &ProcessRecord) {
        s.insert_process(r).unwrap();
        s.finish_process(r).unwrap();
    }

    #[test]
    fn output_over_the_sandbox_cap_evicts_the_oldest_first_and_marks_it() {
        let (s, dir) = store(10, 1000);
        finish(&s, &record("a", "s1", "aaaaaa"));
        finish(&s, &record("b", "s1", "bbbbbb"));
        finish(&s, &record("other", "s2", "cccccc"));
        let a = s.process("a").unwrap().unwrap();
        assert!(a.output_evicted && a.output.stdout.is_empty());
        assert_eq!(a.output.stdout_bytes, 6, "the sizes stay");
        assert_eq!(a.exit_code, Some(0));
        let b = s.process("b").unwrap().unwrap();
        assert!(!b.output_evicted);
        assert_eq!(b.output.stdout, "bbbbbb");
        assert!(!s.process("other").unwrap().unwrap().output_evicted);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_total_cap_evicts_across_sandboxes_and_counts_survive_a_reopen() {
        let (s, dir) = store(100, 10);
        finish(&s, &record("a", "s1", "aaaaaa"));
        finish(&s, &record("b", "s2", "bbbbbb"));
        assert!(s.process("a").unwrap().unwrap().output_evicted);
        assert!(!s.process("b").unwrap().unwrap().output_evicted);
        drop(s);
        let s = SqliteStore::open(
            &dir.join("t.db"),
            OutputCaps {
                per_sandbox: 100,
                total: 10,
            },
        )
        .unwrap();
        assert_eq!(s.lock().stored_total, 6);
        finish(&s, &record("c", "s1", "cccccc"));
        assert!(s.process("b").unwrap().unwrap().output_evicted);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn trimming_keeps_the_newest_records_and_frees_their_count() {
        let (s, dir) = store(1000, 1000);
        for i in 0..5 {
            finish(&s, &record(&format!("p{i}"), "s1", "xx"));
        }
        s.trim_processes("s1", 2).unwrap();
        let ids: Vec<_> = s
            .listing("s1", false)
            .unwrap()
            .into_iter()
            .map(|r| r.process_id)
            .collect();
        assert_eq!(ids, ["p3", "p4"]);
        assert_eq!(s.lock().stored_total, 4);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_write_waits_out_another_connections_write_lock() {
        let (s, dir) = store(1000, 1000);
        // The busy timeout alone: another connection holds the write lock for 300 ms.
        let other = Connection::open(dir.join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            other.execute_batch("COMMIT").unwrap();
            other
        });
        s.insert_process(&record("a", "s1", "x")).unwrap();
        let other = holder.join().unwrap();

        // Without a busy timeout SQLite answers busy at once; the retries wait it out.
        s.lock().conn.busy_timeout(Duration::ZERO).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            other.execute_batch("COMMIT").unwrap();
            other
        });
        let started = std::time::Instant::now();
        s.finish_process(&record("a", "s1", "done")).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "it waited for the lock"
        );
        let other = holder.join().unwrap();
        assert_eq!(s.process("a").unwrap().unwrap().output.stdout, "done");

        // A lock held through every retry is reported as busy (a 503), never as a fault.
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let e = s.insert_process(&record("b", "s1", "x")).unwrap_err();
        assert_eq!(e.kind(), super::super::StoreErrorKind::Busy, "{e}");
        assert!(matches!(
            crate::node::NodeError::from(e),
            crate::node::NodeError::Unavailable(_)
        ));
        other.execute_batch("COMMIT").unwrap();
        s.insert_process(&record("b", "s1", "x")).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_database_refuses_the_write_keeps_what_it_had_and_recovers() {
        let (s, dir) = store(1 << 30, 1 << 30);
        finish(&s, &record("kept", "s1", "before"));
        let big = record("big", "s1", &"x".repeat(1 << 20));
        s.insert_process(&big).unwrap();
        let pages: i64 = s
            .lock()
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        let limit = |n: i64| {
            s.lock()
                .conn
                .query_row(&format!("PRAGMA max_page_count = {n}"), [], |_| Ok(()))
                .unwrap()
        };
        limit(pages + 1);
        let e = s.finish_process(&big).unwrap_err();
        assert_eq!(e.kind(), super::super::StoreErrorKind::Full, "{e}");
        assert!(matches!(
            crate::node::NodeError::from(e),
            crate::node::NodeError::StorageFull(_)
        ));
        let kept = s.process("kept").unwrap().unwrap();
        assert_eq!(kept.output.stdout, "before");
        assert_eq!(
            s.lock().stored_total,
            6,
            "the refused output is not counted"
        );
        limit(1 << 30);
        s.finish_process(&big).unwrap();
        assert_eq!(
            s.process("big").unwrap().unwrap().status,
            ProcessStatus::Completed
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
