//! A sandbox's life on this host: creating it (from the warm pool or anew), starting it
//! (directories, cgroups, network, the `__sandbox-init` helper), freezing it, and
//! destroying it. The [`LocalNode`] methods here
//! are what `local.rs` (the node interface) and recovery call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sandlot_protocol::SandboxStatus;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tracing::warn;

use super::init_helper::InitHelper;
use super::isolation::{InitConfig, UserNamespace};
use super::layout;
use super::local::{expiry, LocalNode, INIT_READY_TIMEOUT, PROCESS_STOP_WAIT, REMAINS_WAIT};
use super::template;
use super::{Sandbox, SandboxState};
use crate::exec::launch::check_env;
use crate::exec::{ProcessTable, StopReason};
use crate::ids;
use crate::network;
use crate::network::rules::EgressRules;
use crate::node::{NodeError, NodeResult, SandboxInfo, SandboxSpec};
use crate::store::SandboxRecord;
use crate::time::{from_unix_millis, unix_millis};

impl LocalNode {
    /// A new sandbox for `spec`: one from the warm pool when it holds one that fits, else
    /// one started here, its default python context warming beside the reply.
    pub(super) async fn create(&self, spec: SandboxSpec) -> NodeResult<SandboxInfo> {
        let _creating = self.creating();
        // After the count: a shutdown either sees this create or is seen by it.
        if self.closing.load(Ordering::SeqCst) {
            return Err(NodeError::ShuttingDown);
        }
        let template = template::find(&spec.template)
            .ok_or_else(|| NodeError::TemplateNotFound(spec.template.clone()))?;
        check_env(&spec.env_vars)?;
        if let Some(rules) = &spec.network {
            if !spec.internet_access {
                return Err(NodeError::Invalid(
                    "network rules need internet_access: true".into(),
                ));
            }
            EgressRules::parse(rules).map_err(NodeError::Invalid)?;
        }
        let now = SystemTime::now();
        let expires_at_ms = match spec.timeout_seconds {
            None => None,
            Some(t) => Some(unix_millis(expiry(now, t)?)),
        };
        if let Some(sandbox) = self.claim(&spec).await {
            let record = self.adopt(&sandbox, &spec, expires_at_ms);
            if let Err(e) = self.catalog.insert_sandbox(&record) {
                self.destroy(&sandbox, false).await;
                return Err(e.into());
            }
            return Ok(self.info_of(&sandbox));
        }
        // Nothing may fail between here and `start` without releasing the uid.
        let uid = match self.reserve_uid() {
            Ok(uid) => uid,
            // A pooled sandbox gives its slot to a create that needs one.
            Err(e) if self.evict_one().await => self.reserve_uid().map_err(|_| e)?,
            Err(e) => return Err(e),
        };
        let record = SandboxRecord {
            id: spec.id.unwrap_or_else(ids::sandbox_id),
            template: template.name.into(),
            status: SandboxStatus::Running,
            uid,
            internet_access: spec.internet_access,
            network: match spec.internet_access {
                true => Some(
                    EgressRules::parse(&spec.network.unwrap_or_default())
                        .map_err(NodeError::Invalid)?
                        .wire,
                ),
                false => None,
            },
            env_vars: spec.env_vars,
            timeout_seconds: spec.timeout_seconds,
            expires_at_ms,
            created_at_ms: unix_millis(now),
            token_generation: 0,
            previous_token_until_ms: None,
        };
        let sandbox = match self.start(&record, self.cfg.warm_python_context).await {
            Ok(sandbox) => {
                self.map_mut().insert(record.id.clone(), sandbox.clone());
                sandbox
            }
            Err(e) => {
                // `start` sweeps what it made in the kernel; its directories and the uid
                // are released here.
                self.layout.remove(&record.id);
                self.release_uid(uid);
                return Err(e);
            }
        };
        // The default python context starts now, beside the store's write and the reply.
        self.warm_contexts(&sandbox);
        if let Err(e) = self.catalog.insert_sandbox(&record) {
            self.destroy(&sandbox, false).await;
            return Err(e.into());
        }
        Ok(self.info_of(&sandbox))
    }

    /// Creates (or re-creates, after a restart) the sandbox of a record (the caller makes it
    /// live: puts it in the map); with `warm`,
    /// its default python context is forked as soon as its pid 1 exists (warmed up by
    /// [`LocalNode::warm_contexts`]).
    pub(super) async fn start(
        &self,
        record: &SandboxRecord,
        warm: bool,
    ) -> NodeResult<Arc<Sandbox>> {
        let _permit = self.start_permits.acquire().await.expect("never closed");
        if self.closing.load(Ordering::SeqCst) {
            return Err(NodeError::ShuttingDown);
        }
        let template = template::find(&record.template)
            .ok_or_else(|| NodeError::TemplateNotFound(record.template.clone()))?;
        self.layout
            .prepare(&record.id, record.uid)
            .map_err(|e| NodeError::io("sandbox directories", e))?;
        let cgroups = self.cgroups.clone();
        let (id, limits) = (record.id.clone(), self.limits());
        let created = tokio::task::spawn_blocking(move || cgroups.create_sandbox(&id, limits))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))
            .and_then(|r| r.map_err(|e| NodeError::Internal(format!("sandbox cgroups: {e}"))));
        let groups = match created {
            Ok(groups) => groups,
            Err(e) => {
                // Some of its groups may exist already.
                self.sweep_cgroups(&record.id).await;
                return Err(e);
            }
        };

        // Its addresses are known before it starts: its resolv.conf names its gateway.
        let (lease, rules) = if record.internet_access {
            let prepared = EgressRules::parse(&record.network.clone().unwrap_or_default())
                .map_err(NodeError::Invalid)
                .and_then(|rules| {
                    let lease = self.network.reserve().map_err(NodeError::LimitReached)?;
                    Ok((Some(lease), rules))
                });
            match prepared {
                Ok(prepared) => prepared,
                Err(e) => {
                    self.sweep_cgroups(&record.id).await;
                    return Err(e);
                }
            }
        } else {
            (None, EgressRules::default())
        };
        let hostname = layout::hostname_of(&record.id);
        let mut etc_files = layout::etc_files(record.uid, &hostname);
        for (name, content) in etc_files.iter_mut() {
            if name == "resolv.conf" {
                *content = network::resolv_conf(lease.as_ref());
            }
        }
        let init = InitConfig {
            root_dir: self
                .layout
                .root_dir(&record.id)
                .to_string_lossy()
                .into_owned(),
            workspace_dir: self
                .layout
                .workspace_dir(&record.id)
                .to_string_lossy()
                .into_owned(),
            ro_binds: vec!["/usr".into()],
            etc_binds: layout::ETC_BINDS.iter().map(|s| s.to_string()).collect(),
            etc_files,
            hostname,
            tmp_size_mb: self.cfg.sandbox_tmp_mb,
            cgroup_tasks: groups.v1_tasks,
            cgroup_v2: groups.v2,
            user_namespace: self.cfg.user_namespace.then_some(UserNamespace {
                root: record.uid + super::local::ROOT_ID_OFFSET,
                user: record.uid,
            }),
        };
        let template_warms = warm && template.supports(sandlot_protocol::Language::Python);
        let mut prefork = None;
        let env: Vec<(String, String)> = record.env_vars.clone().into_iter().collect();
        let on_pid = |pid| {
            if template_warms {
                prefork = self.contexts.prefork(&record.id, pid, &env);
            }
        };
        let (init_pid, init_helper) = match self.spawn_init(&record.id, &init, on_pid).await {
            Ok(started) => started,
            Err(e) => {
                if let Some(lease) = &lease {
                    self.network.release(lease);
                }
                // A context forked ahead is in the sandbox's groups once the fork is done.
                if let Some(prefork) = prefork {
                    let _ = prefork.await;
                }
                self.sweep_cgroups(&record.id).await;
                return Err(e);
            }
        };
        let network = match lease {
            None => None,
            Some(lease) => match self.network.attach(lease, init_pid, rules).await {
                Ok(attachment) => Some(attachment),
                Err(e) => {
                    // SAFETY: SIGKILL to our own sandbox's pid 1 takes its namespace down.
                    unsafe { libc::kill(init_pid, libc::SIGKILL) };
                    let _ = tokio::time::timeout(Duration::from_secs(1), init_helper).await;
                    if let Some(prefork) = prefork {
                        let _ = prefork.await;
                    }
                    self.sweep_cgroups(&record.id).await;
                    return Err(NodeError::Internal(e));
                }
            },
        };
        let sandbox = Arc::new(Sandbox {
            id: record.id.clone(),
            template,
            uid: record.uid,
            internet_access: record.internet_access,
            network,
            env_vars: Mutex::new(record.env_vars.clone()),
            created_at: Mutex::new(from_unix_millis(record.created_at_ms)),
            state: Mutex::new(SandboxState {
                status: SandboxStatus::Running,
                timeout_seconds: record.timeout_seconds,
                expires_at: record.expires_at_ms.map(from_unix_millis),
                init_pid,
                token_generation: record.token_generation,
                previous_token_until: record.previous_token_until_ms.map(from_unix_millis),
            }),
            processes: ProcessTable::default(),
            contexts: Default::default(),
            terminals: Default::default(),
            watches: Default::default(),
            gone: Default::default(),
            init_helper: Mutex::new(Some(init_helper)),
            prefork: Mutex::new(prefork),
        });
        Ok(sandbox)
    }

    /// Starts `__sandbox-init` and waits for its `ready <pid>` line; `on_pid` learns pid 1's
    /// host pid as soon as it exists. Returns the sandbox's pid 1 and the task that reaps the
    /// helper once the sandbox is gone.
    pub(super) async fn spawn_init(
        &self,
        id: &str,
        init: &InitConfig,
        on_pid: impl FnOnce(i32),
    ) -> NodeResult<(i32, tokio::sync::oneshot::Receiver<()>)> {
        let json = serde_json::to_vec(init).expect("init config serialises");
        let InitHelper {
            stdout,
            mut stderr,
            process,
        } = self
            .init_spawner
            .start(&json)
            .await
            .map_err(|e| NodeError::Internal(format!("start sandbox init: {e}")))?;
        let mut stdout = BufReader::new(stdout);
        // `pid <pid>` as soon as pid 1 exists, then `ready <pid>`.
        let mut on_pid = Some(on_pid);
        let lines = async {
            let mut line = String::new();
            loop {
                line.clear();
                if stdout.read_line(&mut line).await.ok()? == 0 {
                    return None;
                }
                let (word, pid) = line.trim().split_once(' ')?;
                let pid = pid.parse::<i32>().ok()?;
                match word {
                    "pid" => on_pid.take().into_iter().for_each(|f| f(pid)),
                    "ready" => return Some(pid),
                    _ => return None,
                }
            }
        };
        let pid = tokio::time::timeout(INIT_READY_TIMEOUT, lines)
            .await
            .ok()
            .flatten();
        let Some(pid) = pid else {
            process.kill();
            let mut msg = String::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(1), stderr.read_to_string(&mut msg)).await;
            process.exited().await;
            return Err(NodeError::Internal(format!(
                "sandbox {id} failed to start: {}",
                if msg.trim().is_empty() {
                    "no reason given"
                } else {
                    msg.trim()
                }
            )));
        };
        // The helper lives as long as the sandbox; note its end and what it said.
        let id = id.to_string();
        // Its exit is what a kill waits for; what it said is logged on the side (a pipe's
        // end can outlive the helper, so reading to EOF must not hold up the exit).
        let said = tokio::spawn(async move {
            let mut msg = String::new();
            let _ = stderr.read_to_string(&mut msg).await;
            msg
        });
        let (exited, reaped) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            process.exited().await;
            let _ = exited.send(());
            if let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(1), said).await {
                if !msg.trim().is_empty() {
                    warn!(sandbox = %id, "sandbox init said: {}", msg.trim());
                }
            }
        });
        Ok((pid, reaped))
    }

    pub(super) async fn sweep_cgroups(&self, id: &str) {
        let (cgroups, sid) = (self.cgroups.clone(), id.to_string());
        let removed =
            tokio::task::spawn_blocking(move || cgroups.remove_sandbox(&sid, REMAINS_WAIT)).await;
        if !matches!(removed, Ok(true)) {
            warn!(
                sandbox = id,
                "its cgroups are still busy; the server's shutdown removes them"
            );
        }
    }

    /// Kills a live sandbox's processes and its pid namespace, and removes its cgroups;
    /// its directory goes too unless the sandbox is to come back after a restart.
    pub(super) async fn destroy(&self, sandbox: &Arc<Sandbox>, keep_files: bool) {
        let _destroying = self.destroying.enter();
        self.map_mut().remove(&sandbox.id);
        let init_pid = {
            let mut st = sandbox.state();
            st.status = SandboxStatus::Deleted;
            st.init_pid
        };
        sandbox.gone.cancel();
        // SAFETY: SIGKILL to our own sandbox's pid 1 takes its whole pid namespace down.
        unsafe { libc::kill(init_pid, libc::SIGKILL) };
        self.processes
            .stop_all(sandbox, StopReason::SandboxGone, PROCESS_STOP_WAIT)
            .await;
        self.terminals.stop_all(sandbox, PROCESS_STOP_WAIT).await;
        // The outer helper exits once pid 1 is gone. When the server shuts down, wait for
        // that before sweeping the cgroups (whose kill would take the helper first and leave
        // pid 1 to the host's init while its namespace winds down), so nothing outlives
        // the server. A pid namespace only ends once all its zombies are reaped, and a dying
        // process whose helper was killed first is the host init's to reap: that can take
        // a second, which an API delete need not wait for.
        let helper = sandbox
            .init_helper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(helper), true) = (helper, keep_files) {
            let _ = tokio::time::timeout(Duration::from_secs(1), helper).await;
        }
        // A context still being forked ahead lands in the groups swept next.
        if let Some(prefork) = sandbox.take_prefork() {
            let _ = prefork.await;
        }
        self.sweep_cgroups(&sandbox.id).await;
        if let Some(attachment) = &sandbox.network {
            self.network.detach(attachment).await;
        }
        if !keep_files {
            let layout = self.layout.clone();
            let id = sandbox.id.clone();
            let _ = tokio::task::spawn_blocking(move || layout.remove(&id)).await;
        }
        self.release_uid(sandbox.uid);
    }

    pub(super) async fn freeze(&self, id: &str, frozen: bool) -> NodeResult<()> {
        let sandbox = self.live(id)?;
        let cgroups = self.cgroups.clone();
        let sid = id.to_string();
        tokio::task::spawn_blocking(move || cgroups.freeze_sandbox(&sid, frozen))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .map_err(|e| NodeError::Internal(format!("freeze: {e}")))?;
        let status = if frozen {
            SandboxStatus::Paused
        } else {
            SandboxStatus::Running
        };
        sandbox.state().status = status;
        self.catalog.set_sandbox_status(id, status)?;
        Ok(())
    }
}

/// Counts operations under way that a shutdown must let finish (destroys: a sandbox out of
/// the map, its groups and files not yet removed).
#[derive(Default)]
pub(super) struct InFlight(AtomicUsize);

pub(super) struct InFlightGuard<'a>(&'a AtomicUsize);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard<'_> {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(&self.0)
    }

    /// Waits (up to `within`) until none is under way.
    pub async fn drained(&self, within: Duration) {
        until_none(&self.0, within).await
    }
}

/// Waits (up to `within`) until `count` is zero.
pub(super) async fn until_none(count: &AtomicUsize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while count.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
