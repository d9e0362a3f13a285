//! Process records in the SQLite store: written as a process starts and ends, listed as
//! their stored wire JSON, and kept within the stored-output caps (the oldest finished
//! output is evicted first and the record says so).

use rusqlite::{params, OptionalExtension};
use sandlot_protocol::ProcessStatus;
use serde_json::value::RawValue;

use super::sqlite::{Inner, OutputCaps, SqliteStore};
use super::{ProcessRecord, StoreResult, StoredOutput};

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
}

impl Inner {
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
