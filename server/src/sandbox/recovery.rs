//! Recovery after a start (possibly following a crash): sweep what the last run left behind,
//! mark its unfinished processes failed, and bring its sandboxes back. Finished process
//! records stay in the store and are served from there.

use std::collections::HashSet;
use std::time::SystemTime;

use sandlot_protocol::SandboxStatus;
use tracing::{info, warn};

use super::LocalNode;
use crate::time::unix_millis;

/// What a process that was running when sandlotd last stopped reports.
const LOST_IN_RESTART: &str = "sandlotd restarted while this process was running; it was stopped";

impl LocalNode {
    pub async fn recover(&self) -> std::io::Result<()> {
        // Our own leftovers, then those of servers that died and were not started again.
        let (cgroups, network) = (self.cgroups.clone(), self.network.clone());
        let (swept, dead_servers) = tokio::task::spawn_blocking(move || {
            let swept = cgroups.sweep();
            // A dead server's table goes once its sandboxes are gone, under its lock.
            let dead =
                cgroups.sweep_orphaned_servers(|instance| network.sweep_dead_server(instance));
            (swept, dead)
        })
        .await
        .unwrap_or_default();
        if swept > 0 {
            info!(
                swept,
                "killed and removed sandbox cgroups left by an earlier run"
            );
        }
        if !dead_servers.is_empty() {
            info!(
                servers = ?dead_servers,
                "killed and removed what servers that died (and were not started again) left running"
            );
        }
        // Network leftovers go after the cgroups (whose kill ended the old sandboxes).
        let network = self.network.clone();
        let _ = tokio::task::spawn_blocking(move || network.sweep()).await;
        let failed = self
            .records
            .fail_unfinished(LOST_IN_RESTART, unix_millis(SystemTime::now()))
            .map_err(std::io::Error::other)?;
        if failed > 0 {
            warn!(
                failed,
                "processes were running when sandlotd last stopped; marked failed"
            );
        }
        let records = self.catalog.sandboxes().map_err(std::io::Error::other)?;
        let mut alive = HashSet::new();
        let now = unix_millis(SystemTime::now());
        for record in records {
            if record.expires_at_ms.is_some_and(|t| t <= now) {
                info!(sandbox = %record.id, "sandbox expired while the server was down");
                self.forget(&record.id);
                continue;
            }
            self.uids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(record.uid);
            match self.start(&record, false).await {
                Ok(sandbox) => {
                    self.map_mut().insert(record.id.clone(), sandbox);
                    let _ = self
                        .catalog
                        .set_sandbox_status(&record.id, SandboxStatus::Running);
                    alive.insert(record.id);
                }
                Err(e) => {
                    warn!(sandbox = %record.id, "could not restart sandbox: {e:?}");
                    self.release_uid(record.uid);
                    self.forget(&record.id);
                }
            }
        }
        // Directories of sandboxes that did not come back.
        for name in self.layout.on_disk()? {
            if !alive.contains(&name) {
                self.layout.remove(&name);
            }
        }
        Ok(())
    }

    fn forget(&self, id: &str) {
        let _ = self.records.delete_processes_of(id);
        let _ = self.catalog.delete_sandbox(id);
        self.layout.remove(id);
    }
}
