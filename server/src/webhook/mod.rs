//! Async execution callbacks: when a process started by `POST /execute/async` ends, its
//! result is POSTed to the caller's URL, signed, and retried with backoff until the receiver
//! takes it (2xx) or the attempts run out.
//!
//! Every delivery lives in SQLite from the moment it is requested, so one that is waiting for
//! its process, or pending after a failed attempt, survives a crash and goes out after the
//! restart. Targets are checked against the operator's allow-list and by address
//! ([`target`]): sandboxed code must not be able to make the server call internal addresses.
//!
//! Deliveries are queued per sandbox: at most `--webhook-concurrency-per-sandbox` of one
//! sandbox are in flight at once, and `--webhook-concurrency` in all, so a tenant whose
//! receiver is slow (or never answers) waits behind its own callbacks only.

mod address;
pub mod target;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sandlot_protocol::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use sandlot_protocol::{ProcessInfo, ProcessStatus, WebhookPayload, WebhookStatus};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::{DeliveryState, SqliteStore, StoreResult, WebhookRecord};
use crate::time::{now_rfc3339, unix_millis, unix_seconds};
use target::{Refusal, Targets};

/// Headers a caller may not set: the ones the server sets itself, the message framing, and
/// credentials (a caller must not make the server present an `Authorization` or a `Cookie`
/// to some service, nor pick the `Host` it addresses).
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-hopx-signature",
    "x-hopx-timestamp",
];
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF_MS: u64 = 60_000;
/// How often the queue is looked at when nothing wakes it (retries come due by the clock).
const POLL: Duration = Duration::from_millis(200);
/// How often a result that could not be stored (full disk) is tried again, and for how long.
const READY_RETRY: Duration = Duration::from_secs(1);
const READY_ATTEMPTS: u32 = 600;

pub struct Webhooks {
    cfg: Arc<Config>,
    store: Arc<SqliteStore>,
    targets: Targets,
    /// For URLs with an address; a URL with a host name gets a client pinned to the
    /// addresses that were checked.
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
        oom_killed: p.oom_killed,
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
        oom_killed: false,
    };
    serde_json::to_string(&body).expect("payload serialises")
}

/// The HTTP client settings of every delivery: a total timeout, no redirects (a receiver
/// must not send the server on to another address), and no proxy from the environment (the
/// connection must go to the address that was checked).
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

impl Webhooks {
    /// Fails on an allow-list entry that is not `host`, `host:port` or `*`.
    pub fn new(cfg: Arc<Config>, store: Arc<SqliteStore>) -> Result<Self, String> {
        let targets = Targets::from_config(&cfg)?;
        let client = client_builder()
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Self {
            cfg,
            store,
            targets,
            client,
            wake: Notify::new(),
        })
    }

    /// Checks a callback before any code runs.
    pub fn validate(&self, cb: &Callback) -> Result<(), String> {
        self.targets.check_url(&cb.url)?;
        for (name, value) in &cb.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(format!(
                    "callback header '{name}' is not a valid HTTP header"
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "callback header '{name}' cannot be set by the caller (reserved: {})",
                    RESERVED_HEADERS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Stores the delivery and arranges for it to go out when the process ends
    /// (`finished` resolves with its final record, or `None` if that is lost).
    pub fn register(
        self: &Arc<Self>,
        sandbox_id: &str,
        process: &ProcessInfo,
        cb: Callback,
        finished: impl Future<Output = Option<ProcessInfo>> + Send + 'static,
    ) -> StoreResult<()> {
        let id = self.store.insert_webhook(&WebhookRecord {
            id: 0,
            execution_id: process.execution_id.clone(),
            process_id: process.process_id.clone(),
            sandbox_id: sandbox_id.into(),
            url: cb.url,
            headers: cb.headers,
            secret: cb.secret,
            body: None,
            attempts: 0,
        })?;
        let hooks = self.clone();
        let (execution_id, process_id) = (process.execution_id.clone(), process.process_id.clone());
        tokio::spawn(async move {
            let body = match finished.await {
                Some(info) => result_body(&info),
                None => lost_body(&execution_id, &process_id),
            };
            // A full disk refuses the body for now; keep trying (a restart also recovers a
            // delivery still waiting).
            for attempt in 1..=READY_ATTEMPTS {
                match hooks.ready(id, &body) {
                    Ok(()) => return,
                    Err(e) if attempt == 1 || attempt == READY_ATTEMPTS => {
                        warn!(webhook = id, attempt, "cannot store the callback body: {e}")
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(READY_RETRY).await;
            }
        });
        Ok(())
    }

    fn ready(&self, id: i64, body: &str) -> StoreResult<()> {
        self.store
            .webhook_ready(id, body, unix_millis(SystemTime::now()))?;
        self.wake.notify_one();
        Ok(())
    }

    /// After a restart: deliveries whose process was lost get its (failed) result.
    pub fn recover(&self) {
        let waiting = self.store.waiting_webhooks().unwrap_or_default();
        for w in waiting {
            let body = match self.store.process(&w.process_id) {
                Ok(Some(p)) if p.status.is_final() => result_body(&p.into_info()),
                Ok(Some(_)) => continue, // still running (cannot happen after recovery)
                _ => lost_body(&w.execution_id, &w.process_id),
            };
            if let Err(e) = self.ready(w.id, &body) {
                warn!(webhook = w.id, "store: {e}");
            }
        }
    }

    /// Delivers due webhooks until shutdown; what is not delivered by then stays in the
    /// store and goes out after the next start.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        tokio::select! {
            _ = self.dispatch_forever() => {}
            _ = shutdown.requested() => {}
        }
    }

    /// Starts due deliveries as slots free up. Dropping this future (shutdown) aborts the
    /// deliveries in flight; they stay pending in the store.
    async fn dispatch_forever(self: Arc<Self>) {
        let per_sandbox = self.cfg.webhook_concurrency_per_sandbox as usize;
        let global = self.cfg.webhook_concurrency as usize;
        let mut slots = Slots::default();
        let mut tasks = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, (i64, String)> = HashMap::new();
        loop {
            if slots.len() < global {
                // Each sandbox's first `per_sandbox` in line (those in flight among them),
                // so a long queue of one sandbox cannot hide another's.
                let due = self
                    .store
                    .due_webhooks(
                        unix_millis(SystemTime::now()),
                        per_sandbox,
                        global + slots.len(),
                    )
                    .unwrap_or_else(|e| {
                        warn!("store: {e}");
                        Vec::new()
                    });
                for w in due {
                    if !slots.take(w.id, &w.sandbox_id, per_sandbox, global) {
                        continue;
                    }
                    let key = (w.id, w.sandbox_id.clone());
                    let hooks = self.clone();
                    let handle = tasks.spawn(async move { hooks.deliver(w).await });
                    running.insert(handle.id(), key);
                }
            }
            tokio::select! {
                Some(done) = tasks.join_next_with_id() => {
                    let task = match done {
                        Ok((task, ())) => task,
                        Err(e) => e.id(),
                    };
                    if let Some((id, sandbox)) = running.remove(&task) {
                        slots.release(id, &sandbox);
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One attempt: check the target again (resolving its name once), send, record.
    async fn deliver(&self, w: WebhookRecord) {
        let attempts = w.attempts + 1;
        // The target is checked against today's configuration, then resolved once; the
        // connection goes to exactly the addresses that were checked.
        let target = match self.targets.check_url(&w.url) {
            Ok(t) => t,
            Err(e) => return self.give_up(&w, attempts, &format!("refused: {e}")),
        };
        let addrs = match self.targets.addresses(&target).await {
            Ok(addrs) => addrs,
            Err(Refusal::Refused(e)) => {
                return self.give_up(&w, attempts, &format!("refused: {e}"))
            }
            Err(Refusal::Unresolved(e)) => return self.attempt_failed(&w, attempts, e, None),
        };
        let client = match target.domain() {
            None => self.client.clone(),
            Some(name) => match client_builder().resolve_to_addrs(name, &addrs).build() {
                Ok(c) => c,
                Err(e) => {
                    return self.attempt_failed(&w, attempts, format!("HTTP client: {e}"), None)
                }
            },
        };
        let body = w.body.clone().unwrap_or_default();
        let timestamp = unix_seconds(SystemTime::now()).to_string();
        let mut rb = client
            .post(target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp);
        for (k, v) in &w.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(secret) = &w.secret {
            rb = rb.header(SIGNATURE_HEADER, signature::sign(secret, &timestamp, &body));
        }
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
        self.attempt_failed(&w, attempts, error, retry_after);
    }

    /// A failed attempt: retried with backoff, or given up after the last one.
    fn attempt_failed(
        &self,
        w: &WebhookRecord,
        attempts: u32,
        error: String,
        retry_after_ms: Option<u64>,
    ) {
        if attempts >= self.cfg.webhook_max_attempts {
            return self.give_up(w, attempts, &error);
        }
        let backoff = retry_after_ms.unwrap_or_else(|| {
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

    fn give_up(&self, w: &WebhookRecord, attempts: u32, error: &str) {
        warn!(webhook = w.id, execution = %w.execution_id, attempts, "giving up on webhook: {error}");
        let _ = self
            .store
            .webhook_attempted(w.id, DeliveryState::Failed, attempts, 0, Some(error));
    }
}

/// Deliveries in flight, per sandbox and in all.
#[derive(Debug, Default)]
struct Slots {
    ids: HashSet<i64>,
    per_sandbox: HashMap<String, usize>,
}

impl Slots {
    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Takes a slot for delivery `id` of `sandbox`, unless it is in flight already or a
    /// bound is reached.
    fn take(&mut self, id: i64, sandbox: &str, per_sandbox: usize, global: usize) -> bool {
        let of_sandbox = self.per_sandbox.get(sandbox).copied().unwrap_or(0);
        if self.ids.contains(&id) || self.ids.len() >= global || of_sandbox >= per_sandbox {
            return false;
        }
        self.ids.insert(id);
        *self.per_sandbox.entry(sandbox.to_string()).or_default() += 1;
        true
    }

    fn release(&mut self, id: i64, sandbox: &str) {
        if self.ids.remove(&id) {
            if let Some(n) = self.per_sandbox.get_mut(sandbox) {
                *n -= 1;
                if *n == 0 {
                    self.per_sandbox.remove(sandbox);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_each_sandbox_and_the_total() {
        let mut s = Slots::default();
        for id in 0..4 {
            assert!(s.take(id, "a", 4, 6));
        }
        assert!(!s.take(4, "a", 4, 6), "a is at its bound");
        assert!(
            !s.take(0, "b", 4, 6),
            "a delivery in flight is not started twice"
        );
        assert!(s.take(10, "b", 4, 6));
        assert!(s.take(11, "c", 4, 6));
        assert!(!s.take(12, "d", 4, 6), "the total bound");
        s.release(0, "a");
        assert!(s.take(4, "a", 4, 6));
        s.release(99, "a"); // unknown: no effect
        assert_eq!(s.len(), 6);
    }
}
