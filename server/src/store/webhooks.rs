//! Webhook deliveries as stored: each lives here from the request on, so one waiting for its
//! process or pending after a failed attempt survives a crash.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{SqliteStore, StoreResult};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Its process has not ended yet.
    Waiting,
    /// The body is ready; due at `next_attempt_ms`.
    Pending,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// A webhook delivery as stored.
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

impl SqliteStore {
    pub fn insert_webhook(&self, w: &WebhookRecord) -> StoreResult<i64> {
        let inner = self.lock();
        inner.conn.execute(
            "INSERT INTO webhooks (execution_id, process_id, url, headers, secret, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                w.execution_id,
                w.process_id,
                w.url,
                serde_json::to_string(&w.headers).unwrap_or_default(),
                w.secret,
                DeliveryState::Waiting.as_str()
            ],
        )?;
        Ok(inner.conn.last_insert_rowid())
    }

    /// Gives a waiting webhook its body and makes it due now.
    pub fn webhook_ready(&self, id: i64, body: &str, now_ms: i64) -> StoreResult<()> {
        self.lock().conn.execute(
            "UPDATE webhooks SET body = ?2, state = ?4, next_attempt_ms = ?3 WHERE id = ?1",
            params![id, body, now_ms, DeliveryState::Pending.as_str()],
        )?;
        Ok(())
    }

    /// Webhooks still waiting for their process (after a restart, those processes ended).
    pub fn waiting_webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        self.webhooks_where("state = ?1", params![DeliveryState::Waiting.as_str()])
    }

    /// Pending webhooks due at `now_ms`.
    pub fn due_webhooks(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<WebhookRecord>> {
        self.webhooks_where(
            "state = ?3 AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms LIMIT ?2",
            params![now_ms, limit, DeliveryState::Pending.as_str()],
        )
    }

    fn webhooks_where(
        &self,
        clause: &str,
        args: impl rusqlite::Params,
    ) -> StoreResult<Vec<WebhookRecord>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare(&format!(
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
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records an attempt: delivered, retry at `next_attempt_ms`, or given up.
    pub fn webhook_attempted(
        &self,
        id: i64,
        state: DeliveryState,
        attempts: u32,
        next_attempt_ms: i64,
        error: Option<&str>,
    ) -> StoreResult<()> {
        self.lock().conn.execute(
            "UPDATE webhooks SET state = ?2, attempts = ?3, next_attempt_ms = ?4, last_error = ?5
             WHERE id = ?1",
            params![id, state.as_str(), attempts, next_attempt_ms, error],
        )?;
        Ok(())
    }
}
