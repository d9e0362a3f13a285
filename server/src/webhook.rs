//! Async execution callbacks: when a process started by `POST /execute/async` ends, its
//! result is POSTed to the caller's URL, signed, and retried with backoff until the receiver
//! takes it (2xx) or the attempts run out.
//!
//! Every delivery lives in SQLite from the moment it is requested, so one that is waiting for
//! its process, or pending after a failed attempt, survives a crash and goes out after the
//! restart. Targets are checked against an allow-list of hosts: sandboxed code must not be
//! able to make the server call arbitrary internal addresses.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sandlot_protocol::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use sandlot_protocol::{ProcessInfo, ProcessStatus, WebhookPayload, WebhookStatus};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::{DeliveryState, SqliteStore, WebhookRecord};
use crate::time::{now_rfc3339, unix_millis, unix_seconds};

/// Headers a caller may not override.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "x-hopx-signature",
    "x-hopx-timestamp",
];
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF_MS: u64 = 60_000;

pub struct Webhooks {
    cfg: Arc<Config>,
    store: Arc<SqliteStore>,
    client: reqwest::Client,
    wake: Notify,
}

/// The callback a caller asked for.
#[derive(Debug, Clone)]
pub struct Callback {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub secret: Option<String>,
}

/// The webhook body for a finished process (`docs/protocol.md`, `POST /execute/async`). A killed process reports
/// `failed` with the reason.
fn result_body(p: &ProcessInfo) -> String {
    let status = WebhookStatus::from(p.status);
    let error = match p.status {
        ProcessStatus::Killed => Some(
            p.error
                .clone()
                .unwrap_or_else(|| "the process was killed".into()),
        ),
        _ => p.error.clone(),
    };
    let body = WebhookPayload {
        execution_id: p.execution_id.clone(),
        process_id: Some(p.process_id.clone()),
        status,
        success: status == WebhookStatus::Completed,
        stdout: p.stdout.clone(),
        stderr: p.stderr.clone(),
        exit_code: p.exit_code,
        execution_time: p.execution_time.unwrap_or(0.0),
        timestamp: now_rfc3339(),
        error,
    };
    serde_json::to_string(&body).expect("payload serialises")
}

/// The body for a process whose record is gone.
fn lost_body(execution_id: &str, process_id: &str) -> String {
    let body = WebhookPayload {
        execution_id: execution_id.into(),
        process_id: Some(process_id.into()),
        status: WebhookStatus::Failed,
        success: false,
        stdout: String::new(),
        stderr: String::new(),
        exit_code: None,
        execution_time: 0.0,
        timestamp: now_rfc3339(),
        error: Some("the process record was lost (its sandbox was deleted?)".into()),
    };
    serde_json::to_string(&body).expect("payload serialises")
}

impl Webhooks {
    pub fn new(cfg: Arc<Config>, store: Arc<SqliteStore>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Self {
            cfg,
            store,
            client,
            wake: Notify::new(),
        }
    }

    /// Checks a callback before any code runs.
    pub fn validate(&self, cb: &Callback) -> Result<(), String> {
        let url =
            reqwest::Url::parse(&cb.url).map_err(|e| format!("callback_url is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("callback_url must be http or https".into());
        }
        let host = url
            .host_str()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let allowed = self
            .cfg
            .webhook_allow_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .any(|h| h == "*" || h == host);
        if !allowed {
            return Err(format!(
                "callback host '{host}' is not allowed; allowed: {} (sandlotd --webhook-allow-hosts)",
                self.cfg.webhook_allow_hosts.join(", ")
            ));
        }
        for (name, value) in &cb.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(format!(
                    "callback header '{name}' is not a valid HTTP header"
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("callback header '{name}' is set by the server"));
            }
        }
        Ok(())
    }

    /// Stores the delivery and arranges for it to go out when the process ends
    /// (`finished` resolves with its final record, or `None` if that is lost).
    pub fn register(
        self: &Arc<Self>,
        process: &ProcessInfo,
        cb: Callback,
        finished: impl Future<Output = Option<ProcessInfo>> + Send + 'static,
    ) -> Result<(), String> {
        let id = self
            .store
            .insert_webhook(&WebhookRecord {
                id: 0,
                execution_id: process.execution_id.clone(),
                process_id: process.process_id.clone(),
                url: cb.url,
                headers: cb.headers,
                secret: cb.secret,
                body: None,
                attempts: 0,
            })
            .map_err(|e| format!("store: {e}"))?;
        let hooks = self.clone();
        let (execution_id, process_id) = (process.execution_id.clone(), process.process_id.clone());
        tokio::spawn(async move {
            let body = match finished.await {
                Some(info) => result_body(&info),
                None => lost_body(&execution_id, &process_id),
            };
            hooks.ready(id, &body);
        });
        Ok(())
    }

    fn ready(&self, id: i64, body: &str) {
        if let Err(e) = self
            .store
            .webhook_ready(id, body, unix_millis(SystemTime::now()))
        {
            warn!(webhook = id, "store: {e}");
        }
        self.wake.notify_one();
    }

    /// After a restart: deliveries whose process was lost get its (failed) result.
    pub fn recover(&self) {
        let waiting = self.store.waiting_webhooks().unwrap_or_default();
        for w in waiting {
            match self.store.process(&w.process_id) {
                Ok(Some(p)) if p.status.is_final() => {
                    self.ready(w.id, &result_body(&p.into_info()))
                }
                Ok(Some(_)) => {} // still running (cannot happen after recovery, but harmless)
                _ => self.ready(w.id, &lost_body(&w.execution_id, &w.process_id)),
            }
        }
    }

    /// Delivers due webhooks until shutdown; what is not delivered by then stays in the
    /// store and goes out after the next start.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        tokio::select! {
            _ = self.deliver_forever() => {}
            _ = shutdown.requested() => {}
        }
    }

    async fn deliver_forever(&self) {
        loop {
            let due = self
                .store
                .due_webhooks(unix_millis(SystemTime::now()), 32)
                .unwrap_or_default();
            if due.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            }
            futures_util::future::join_all(due.into_iter().map(|w| self.deliver(w))).await;
        }
    }

    async fn deliver(&self, w: WebhookRecord) {
        let body = w.body.clone().unwrap_or_default();
        let timestamp = unix_seconds(SystemTime::now()).to_string();
        let mut rb = self
            .client
            .post(&w.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp);
        for (k, v) in &w.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(secret) = &w.secret {
            rb = rb.header(SIGNATURE_HEADER, signature::sign(secret, &timestamp, &body));
        }
        let attempts = w.attempts + 1;
        let (error, retry_after) = match rb.body(body).send().await {
            Ok(resp) if resp.status().is_success() => {
                info!(webhook = w.id, execution = %w.execution_id, attempts, "webhook delivered");
                let _ =
                    self.store
                        .webhook_attempted(w.id, DeliveryState::Delivered, attempts, 0, None);
                return;
            }
            Ok(resp) => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| s.min(300) * 1000);
                (format!("receiver answered {}", resp.status()), retry_after)
            }
            Err(e) => (format!("delivery failed: {e}"), None),
        };
        if attempts >= self.cfg.webhook_max_attempts {
            warn!(webhook = w.id, execution = %w.execution_id, attempts, "giving up on webhook: {error}");
            let _ = self.store.webhook_attempted(
                w.id,
                DeliveryState::Failed,
                attempts,
                0,
                Some(&error),
            );
            return;
        }
        let backoff = retry_after.unwrap_or_else(|| {
            self.cfg
                .webhook_retry_base_ms
                .saturating_mul(1 << (attempts - 1).min(16))
                .min(MAX_BACKOFF_MS)
        });
        let next = unix_millis(SystemTime::now()) + backoff as i64;
        let _ = self.store.webhook_attempted(
            w.id,
            DeliveryState::Pending,
            attempts,
            next,
            Some(&error),
        );
    }
}
