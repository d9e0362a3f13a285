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
    /// The sandbox whose process this reports on; deliveries are queued per sandbox. Empty
    /// for rows stored before version 5 whose process record is gone.
    pub sandbox_id: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub secret: Option<String>,
    pub body: Option<String>,
    pub attempts: u32,
}

impl SqliteStore {
    pub fn insert_webhook(&self, w: &WebhookRecord) -> StoreResult<i64> {
        let inner = self.lock();
        inner.execute(
            "INSERT INTO webhooks (execution_id, process_id, url, headers, secret, state,
                                   sandbox_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                w.execution_id,
                w.process_id,
                w.url,
                serde_json::to_string(&w.headers).unwrap_or_default(),
                w.secret,
                DeliveryState::Waiting.as_str(),
                w.sandbox_id
            ],
        )?;
        Ok(inner.conn.last_insert_rowid())
    }

    /// Gives a waiting webhook its body and makes it due now.
    pub fn webhook_ready(&self, id: i64, body: &str, now_ms: i64) -> StoreResult<()> {
        self.lock().execute(
            "UPDATE webhooks SET body = ?2, state = ?4, next_attempt_ms = ?3 WHERE id = ?1",
            params![id, body, now_ms, DeliveryState::Pending.as_str()],
        )?;
        Ok(())
    }

    /// Webhooks still waiting for their process (after a restart, those processes ended).
    pub fn waiting_webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        self.webhooks_where("state = ?1", params![DeliveryState::Waiting.as_str()])
    }

    /// Pending webhooks due at `now_ms`, oldest first: at most `per_sandbox` of each
    /// sandbox (its first ones in line, including any being delivered right now) and at most
    /// `limit` in all. So a sandbox with a long queue cannot crowd the others out of the
    /// answer.
    pub fn due_webhooks(
        &self,
        now_ms: i64,
        per_sandbox: usize,
        limit: usize,
    ) -> StoreResult<Vec<WebhookRecord>> {
        self.webhooks_from(
            "(SELECT *, ROW_NUMBER() OVER (
                  PARTITION BY sandbox_id ORDER BY next_attempt_ms, id) AS queue_pos
              FROM webhooks WHERE state = ?3 AND next_attempt_ms <= ?1)
             WHERE queue_pos <= ?4 ORDER BY next_attempt_ms, id LIMIT ?2",
            params![
                now_ms,
                limit as i64,
                DeliveryState::Pending.as_str(),
                per_sandbox as i64
            ],
        )
    }

    fn webhooks_where(
        &self,
        clause: &str,
        args: impl rusqlite::Params,
    ) -> StoreResult<Vec<WebhookRecord>> {
        self.webhooks_from(&format!("webhooks WHERE {clause}"), args)
    }

    fn webhooks_from(
        &self,
        from: &str,
        args: impl rusqlite::Params,
    ) -> StoreResult<Vec<WebhookRecord>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(&format!(
            "SELECT id, execution_id, process_id, sandbox_id, url, headers, secret, body,
                    attempts
             FROM {from}"
        ))?;
        let rows = stmt.query_map(args, |r| {
            let headers: String = r.get(5)?;
            Ok(WebhookRecord {
                id: r.get(0)?,
                execution_id: r.get(1)?,
                process_id: r.get(2)?,
                sandbox_id: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                url: r.get(4)?,
                headers: serde_json::from_str(&headers).unwrap_or_default(),
                secret: r.get(6)?,
                body: r.get(7)?,
                attempts: r.get(8)?,
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
        self.lock().execute(
            "UPDATE webhooks SET state = ?2, attempts = ?3, next_attempt_ms = ?4, last_error = ?5
             WHERE id = ?1",
            params![id, state.as_str(), attempts, next_attempt_ms, error],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutputCaps;

    fn hook(sandbox: &str) -> WebhookRecord {
        WebhookRecord {
            id: 0,
            execution_id: "e".into(),
            process_id: "p".into(),
            sandbox_id: sandbox.into(),
            url: "http://127.0.0.1/".into(),
            headers: BTreeMap::new(),
            secret: None,
            body: None,
            attempts: 0,
        }
    }

    #[test]
    fn a_long_queue_of_one_sandbox_does_not_hide_another_sandboxs_due_deliveries() {
        let dir = std::env::temp_dir().join(format!("sandlot-hooks-{}", crate::ids::request_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let caps = OutputCaps {
            per_sandbox: 1 << 20,
            total: 1 << 20,
        };
        let s = SqliteStore::open(&dir.join("t.db"), caps).unwrap();
        for _ in 0..33 {
            let id = s.insert_webhook(&hook("busy")).unwrap();
            s.webhook_ready(id, "{}", 1).unwrap();
        }
        let quiet = s.insert_webhook(&hook("quiet")).unwrap();
        s.webhook_ready(quiet, "{}", 2).unwrap();
        let due = s.due_webhooks(10, 4, 32).unwrap();
        let busy = due.iter().filter(|w| w.sandbox_id == "busy").count();
        assert_eq!(busy, 4, "at most 4 of one sandbox");
        assert!(
            due.iter().any(|w| w.id == quiet),
            "the other sandbox's delivery is due too"
        );
        assert!(s
            .due_webhooks(1, 4, 32)
            .unwrap()
            .iter()
            .all(|w| w.id != quiet));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
