//! A node's side of membership: register for an epoch, heartbeat to keep the lease, kill
//! what the control plane does not give this node, and — when fenced (the lease ran out, or
//! an epoch is over) — kill every sandbox and register again. The node never serves a
//! sandbox of an earlier epoch: the control plane has already told its clients it is lost.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use sandlot_protocol::{NodeHeartbeat, NodeHeartbeatReply, NodeRegistered, NodeRegistration};
use tracing::{info, warn};

use crate::node::Node;
use crate::shutdown::Shutdown;

pub struct Membership {
    http: reqwest::Client,
    control_plane: String,
    join_token: String,
    registration: NodeRegistration,
    epoch: AtomicI64,
    /// The registration's session secret, its heartbeat period and its lease.
    session: std::sync::Mutex<(String, Duration, Duration)>,
}

impl Membership {
    pub fn new(control_plane: String, join_token: String, registration: NodeRegistration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
            control_plane: control_plane.trim_end_matches('/').to_string(),
            join_token,
            registration,
            epoch: AtomicI64::new(0),
            session: std::sync::Mutex::new((
                String::new(),
                Duration::from_secs(3),
                Duration::from_secs(15),
            )),
        }
    }

    pub fn name(&self) -> &str {
        &self.registration.name
    }

    /// Registers, trying again until the control plane answers (or shutdown).
    pub async fn register(&self, shutdown: &Shutdown) -> Result<NodeRegistered, String> {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.try_register().await {
                Ok(reg) => {
                    self.epoch.store(reg.epoch, Ordering::SeqCst);
                    *self.session.lock().unwrap_or_else(|p| p.into_inner()) = (
                        reg.session.clone(),
                        Duration::from_secs(reg.heartbeat_seconds.max(1)),
                        Duration::from_secs(reg.lease_seconds.max(1)),
                    );
                    info!(node = %reg.node_id, epoch = reg.epoch, "registered with the control plane");
                    return Ok(reg);
                }
                Err(e) => warn!("cannot register with {}: {e}", self.control_plane),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.requested() => return Err("shut down before registering".into()),
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn try_register(&self) -> Result<NodeRegistered, String> {
        let resp = self
            .http
            .post(format!("{}/internal/v1/nodes/register", self.control_plane))
            .bearer_auth(&self.join_token)
            .json(&self.registration)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!(
                "{}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ));
        }
        resp.json().await.map_err(|e| e.to_string())
    }

    /// Heartbeats until shutdown. A node that cannot renew its lease for longer than the
    /// lease fences itself: the control plane has declared its sandboxes lost by then.
    pub async fn run(self: Arc<Self>, node: Arc<dyn Node>, shutdown: Shutdown) {
        let mut renewed = std::time::Instant::now();
        loop {
            let (session, period, lease) = self
                .session
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.requested() => return,
            }
            if renewed.elapsed() > lease {
                warn!("no lease renewed for longer than the lease: killing every sandbox, registering again");
                kill_all(node.as_ref()).await;
                if self.register(&shutdown).await.is_err() {
                    return;
                }
                renewed = std::time::Instant::now();
                continue;
            }
            let beat = NodeHeartbeat {
                epoch: self.epoch.load(Ordering::SeqCst),
                session,
                sandboxes: node.sandboxes().into_iter().map(|s| s.id).collect(),
            };
            let sent = self
                .http
                .post(format!(
                    "{}/internal/v1/nodes/{}/heartbeat",
                    self.control_plane, self.registration.name
                ))
                .bearer_auth(&self.join_token)
                .json(&beat)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status() == StatusCode::CONFLICT => {
                    warn!("fenced by the control plane: killing every sandbox, registering again");
                    kill_all(node.as_ref()).await;
                    if self.register(&shutdown).await.is_err() {
                        return;
                    }
                    renewed = std::time::Instant::now();
                }
                Ok(resp) if resp.status().is_success() => {
                    renewed = std::time::Instant::now();
                    let reply: NodeHeartbeatReply = resp.json().await.unwrap_or_default();
                    for id in reply.orphans {
                        info!(sandbox = %id, "not in the catalog for this node: killing it");
                        let _ = node.kill_sandbox(&id).await;
                    }
                }
                Ok(resp) => warn!("heartbeat refused: {}", resp.status()),
                Err(e) => warn!("heartbeat failed: {e}"),
            }
        }
    }
}

/// Kills every sandbox of this node (its epoch is over).
pub async fn kill_all(node: &dyn Node) -> usize {
    let all = node.sandboxes();
    futures_util::future::join_all(all.iter().map(|s| node.kill_sandbox(&s.id))).await;
    all.len()
}
