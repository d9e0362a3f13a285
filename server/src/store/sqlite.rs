//! The embedded store: one SQLite file in WAL mode behind a mutex. Statements are short,
//! so callers hold the lock for a few hundred microseconds at most.
//!
//! Finished processes' output is bounded here: the bytes stored per sandbox and in total
//! are counted (in memory, rebuilt at open), and when a finished record pushes a count past
//! its cap, the oldest finished records' output is dropped and they are marked evicted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Params};

use super::{kind_of, migrations, StoreErrorKind, StoreResult};

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

/// Caps on the output kept for finished processes, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct OutputCaps {
    pub per_sandbox: u64,
    pub total: u64,
}

pub struct SqliteStore {
    inner: Mutex<Inner>,
    pub(super) caps: OutputCaps,
}

pub(super) struct Inner {
    pub(super) conn: Connection,
    /// Output bytes stored per sandbox, and their sum.
    pub(super) stored: HashMap<String, u64>,
    pub(super) stored_total: u64,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ProcessRecord, StoredOutput};
    use sandlot_protocol::ProcessStatus;

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
