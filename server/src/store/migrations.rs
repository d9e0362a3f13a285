//! Schema versions of the SQLite store. Each migration runs once, in order, in a
//! transaction, and `PRAGMA user_version` records how far a database has come. Append new
//! migrations; never edit one that has shipped.

use rusqlite::Connection;

use super::{StoreError, StoreResult};

const MIGRATIONS: &[&str] = &[
    // 1: sandboxes, process records, webhook deliveries. `IF NOT EXISTS` because databases
    // made before versioning have these tables at user_version 0.
    "
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
    ",
    // 2: finished output is served from the store and bounded: its size per record, whether
    // the cap evicted it, and the live stream's exit sequence number for resuming readers.
    "
    ALTER TABLE processes ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE processes ADD COLUMN output_evicted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE processes ADD COLUMN final_seq INTEGER;
    UPDATE processes SET stored_bytes = length(CAST(stdout AS BLOB)) + length(CAST(stderr AS BLOB));
    ",
    // 3: a finished record's wire form, kept as JSON with and without its output, so lists
    // are written without decoding every column and re-encoding every string. Records
    // finished before this version have none and are read column by column.
    "
    ALTER TABLE processes ADD COLUMN info_json TEXT;
    ALTER TABLE processes ADD COLUMN info_json_lite TEXT;
    ",
    // 4: agent tokens can be rotated: the generation a token must carry, and until when the
    // one before it is still honoured.
    "
    ALTER TABLE sandboxes ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sandboxes ADD COLUMN previous_token_until_ms INTEGER;
    ",
    // 5: webhook deliveries are queued per sandbox (one tenant's slow receiver must not
    // delay another's), so each delivery knows its sandbox. Older rows take it from their
    // process record; rows whose record is gone keep NULL and share one queue.
    "
    ALTER TABLE webhooks ADD COLUMN sandbox_id TEXT;
    UPDATE webhooks SET sandbox_id =
        (SELECT p.sandbox_id FROM processes p WHERE p.process_id = webhooks.process_id);
    ",
    // 6: egress rules of sandboxes with internet access (JSON of `NetworkRules`).
    "
    ALTER TABLE sandboxes ADD COLUMN network TEXT;
    ",
];

/// The schema version this build writes.
pub const LATEST: usize = MIGRATIONS.len();

/// Brings the database to [`LATEST`]; refuses a database from a newer build.
pub fn apply(conn: &mut Connection) -> StoreResult<usize> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::other(format!(
            "the database has schema version {current}, newer than this sandlotd ({LATEST}); \
             run a newer sandlotd or another data dir"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_versioning_is_migrated_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO processes (process_id, sandbox_id, execution_id, language, status,
                                    stdout, stderr, started_at_ms, timeout)
             VALUES ('p', 's', 'e', 'python', 'completed', 'héllo', 'x', 0, 1)",
            [],
        )
        .unwrap();
        assert_eq!(apply(&mut conn).unwrap(), 0);
        let (bytes, evicted): (i64, bool) = conn
            .query_row(
                "SELECT stored_bytes, output_evicted FROM processes WHERE process_id = 'p'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(bytes, 7, "bytes, not characters");
        assert!(!evicted);
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, LATEST);
        assert_eq!(
            apply(&mut conn).unwrap(),
            LATEST,
            "a second run changes nothing"
        );
    }

    #[test]
    fn webhook_rows_from_before_version_5_get_their_sandbox_from_the_process_record() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            "INSERT INTO processes (process_id, sandbox_id, execution_id, language, status,
                                    started_at_ms, timeout)
             VALUES ('p1', 'sb1', 'e1', 'python', 'running', 0, 1);
             INSERT INTO webhooks (execution_id, process_id, url, headers, state)
             VALUES ('e1', 'p1', 'http://h/', '{}', 'waiting'),
                    ('e2', 'gone', 'http://h/', '{}', 'pending');",
        )
        .unwrap();
        assert_eq!(apply(&mut conn).unwrap(), 4);
        let sandboxes: Vec<Option<String>> = conn
            .prepare("SELECT sandbox_id FROM webhooks ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(sandboxes, [Some("sb1".to_string()), None]);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let e = apply(&mut conn).unwrap_err().to_string();
        assert!(e.contains("newer than this sandlotd"), "{e}");
    }
}
