//! The sandbox catalog in the SQLite store (what a cluster keeps in Postgres instead).

use std::collections::BTreeMap;

use rusqlite::params;
use sandlot_protocol::SandboxStatus;

use super::sqlite::SqliteStore;
use super::{SandboxCatalog, SandboxRecord, StoreResult};

impl SandboxCatalog for SqliteStore {
    fn insert_sandbox(&self, s: &SandboxRecord) -> StoreResult<()> {
        self.lock().execute(
            "INSERT INTO sandboxes (id, template, status, uid, internet_access, env_vars,
                                    timeout_seconds, expires_at_ms, created_at_ms,
                                    token_generation, previous_token_until_ms, network)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
                s.previous_token_until_ms,
                s.network
                    .as_ref()
                    .map(|n| serde_json::to_string(n).unwrap_or_default())
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

    fn set_sandbox_network(
        &self,
        id: &str,
        rules: &sandlot_protocol::NetworkRules,
    ) -> StoreResult<()> {
        self.lock().execute(
            "UPDATE sandboxes SET network = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(rules).unwrap_or_default()],
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
                    expires_at_ms, created_at_ms, token_generation, previous_token_until_ms,
                    network
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
                network: r
                    .get::<_, Option<String>>(11)?
                    .and_then(|n| serde_json::from_str(&n).ok()),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
