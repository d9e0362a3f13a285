//! The local node: this host's sandboxes, created, paused, timed out and killed here, with
//! their processes run by the [`ProcessManager`]. It implements [`Node`], the interface the
//! HTTP layer uses. Creating, starting and destroying one sandbox is in `lifecycle.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sandlot_protocol::{Language, ProcessInfo, RunSpec, SandboxStatus};
use tracing::{info, warn};

use super::cgroup::{Cgroups, Limits};
use super::init_helper::InitSpawner;
use super::layout::Layout;
use super::lifecycle::InFlight;
use super::pool::WarmPool;
use super::uid_range::{self, IdRange};
use super::volume::Volume;
use super::Sandbox;
use crate::config::Config;
use crate::contexts::manager::ContextManager;
use crate::exec::launch::check_env;
use crate::exec::manager::ProcessManager;
use crate::exec::StopReason;
use crate::files::SandboxFs;
use crate::network::rules::EgressRules;
use crate::network::{self, Network};
use crate::node::{
    Node, NodeError, NodeResult, ProcessEvents, ProcessFilter, SandboxInfo, SandboxSpec,
    SandboxUsage,
};
use crate::shutdown::Shutdown;
use crate::store::{SandboxCatalog, SqliteStore};
use crate::terminal::manager::TerminalManager;
use crate::time::unix_millis;

/// First uid handed to sandboxes; each live sandbox gets its own (and a gid of the same
/// number). The range is checked against the host's users, groups and subordinate ranges at
/// start ([`uid_range`]).
const FIRST_SANDBOX_UID: u32 = 100_000;
const SANDBOX_UIDS: u32 = 60_000;
/// Root inside a sandbox's user namespace is the host id `uid + ROOT_ID_OFFSET`: a second
/// range right after the users', so each sandbox has two host ids no one else has.
pub(super) const ROOT_ID_OFFSET: u32 = SANDBOX_UIDS;
/// The host ids checked at start: the users' range and the roots' after it.
const SANDBOX_ID_RANGE: IdRange = IdRange {
    first: FIRST_SANDBOX_UID,
    count: 2 * SANDBOX_UIDS,
};
/// How long sandbox creation may take before it is called a failure.
pub(super) const INIT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a kill waits for each process to end before sweeping its cgroup anyway.
pub(super) const PROCESS_STOP_WAIT: Duration = Duration::from_secs(5);
/// How long a delete or a shutdown waits for the last of its groups to empty (an orphan's
/// zombie that the host init reaps in its own time; 1.3-1.7 s on the VM this was measured
/// on), killing whatever joins them meanwhile.
pub(super) const REMAINS_WAIT: Duration = Duration::from_secs(3);

pub struct LocalNode {
    pub(super) cfg: Arc<Config>,
    pub(super) cgroups: Arc<Cgroups>,
    pub(super) catalog: Arc<dyn SandboxCatalog>,
    pub(super) records: Arc<SqliteStore>,
    pub(super) layout: Layout,
    /// The disk quota's btrfs volume (`--sandbox-disk-mb` > 0).
    pub(super) volume: Option<Arc<Volume>>,
    pub(super) processes: ProcessManager,
    pub(super) contexts: Arc<ContextManager>,
    /// Outbound network of sandboxes with internet access; the way into their ports.
    pub(super) network: Arc<Network>,
    pub(super) terminals: TerminalManager,
    /// Starts each sandbox's `__sandbox-init`.
    pub(super) init_spawner: InitSpawner,
    /// Sandboxes made ahead for creates to take.
    pub(super) pool: WarmPool,
    pub(super) sandboxes: RwLock<HashMap<String, Arc<Sandbox>>>,
    /// uids of live sandboxes plus slots reserved by creations in flight.
    pub(super) uids: Mutex<HashSet<u32>>,
    /// Bounds sandbox starts in flight. Starting one is CPU work; with a burst of creates,
    /// first come first served finishes the early ones early instead of all of them late.
    pub(super) start_permits: tokio::sync::Semaphore,
    /// Set when the server begins to stop: nothing more is started.
    pub(super) closing: AtomicBool,
    pub(super) destroying: InFlight,
}

impl LocalNode {
    pub fn new(
        cfg: Arc<Config>,
        cgroups: Arc<Cgroups>,
        store: Arc<SqliteStore>,
        network: Arc<Network>,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        uid_range::check_host(SANDBOX_ID_RANGE, std::path::Path::new("/etc"))?;
        let exe = std::env::current_exe()?;
        let volume = match cfg.sandbox_disk_mb {
            0 => None,
            mb => Some(Arc::new(Volume::open(
                &cfg.data_dir,
                mb,
                cfg.volume_size_gb,
            )?)),
        };
        let layout = Layout::new(&cfg.data_dir, volume.clone())?;
        let processes = ProcessManager::new(
            cfg.clone(),
            store.clone(),
            cgroups.clone(),
            exe.clone(),
            shutdown.clone(),
        );
        let contexts = Arc::new(ContextManager::new(
            cfg.clone(),
            cgroups.clone(),
            exe.clone(),
            shutdown.clone(),
        ));
        let terminals = TerminalManager::new(cfg.clone(), cgroups.clone(), exe.clone(), shutdown);
        Ok(Self {
            cfg,
            cgroups,
            catalog: store.clone(),
            records: store,
            layout,
            volume,
            processes,
            contexts,
            network,
            terminals,
            init_spawner: InitSpawner::new(exe),
            pool: WarmPool::default(),
            sandboxes: RwLock::new(HashMap::new()),
            uids: Mutex::new(HashSet::new()),
            start_permits: tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            closing: AtomicBool::new(false),
            destroying: InFlight::default(),
        })
    }

    pub(super) fn map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Sandbox>>> {
        self.sandboxes.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Sandbox>>> {
        self.sandboxes.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn live(&self, id: &str) -> NodeResult<Arc<Sandbox>> {
        self.map()
            .get(id)
            .cloned()
            .ok_or(NodeError::SandboxNotFound)
    }

    pub fn count(&self) -> usize {
        self.map().len()
    }

    pub(super) fn info_of(&self, s: &Sandbox) -> SandboxInfo {
        let st = s.state();
        SandboxInfo {
            id: s.id.clone(),
            template: s.template,
            status: st.status,
            internet_access: s.internet_access,
            network: s.network.as_ref().map(|n| n.rules().wire),
            timeout_seconds: st.timeout_seconds,
            expires_at: st.expires_at,
            created_at: s.created_at(),
            public_host: format!("{}/sandboxes/{}/agent", self.cfg.public_base_url(), s.id),
            node_id: self.cfg.node_name.as_deref().unwrap_or("local").into(),
            token_generation: st.token_generation,
            previous_token_until: st.previous_token_until,
        }
    }

    pub(super) fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.cfg.sandbox_memory_mb * 1024 * 1024,
            pids: self.cfg.sandbox_pids,
            cpus: self.cfg.sandbox_cpus,
        }
    }

    pub(super) fn reserve_uid(&self) -> NodeResult<u32> {
        let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        if uids.len() >= self.cfg.max_sandboxes {
            return Err(NodeError::LimitReached(format!(
                "this server runs at most {} sandboxes; kill one first",
                self.cfg.max_sandboxes
            )));
        }
        let uid = (FIRST_SANDBOX_UID..FIRST_SANDBOX_UID + SANDBOX_UIDS)
            .find(|u| !uids.contains(u))
            .ok_or_else(|| NodeError::LimitReached("no free sandbox uid".into()))?;
        uids.insert(uid);
        Ok(uid)
    }

    pub(super) fn release_uid(&self, uid: u32) {
        self.uids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uid);
    }

    /// Kills sandboxes whose timeout has run out.
    pub async fn reap_expired(&self) {
        let now = SystemTime::now();
        let expired: Vec<String> = self
            .map()
            .values()
            .filter(|s| s.state().expires_at.is_some_and(|t| t <= now))
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            info!(sandbox = %id, "sandbox timed out; killing it");
            let _ = self.kill_sandbox(&id).await;
        }
    }

    /// Starts the helpers that make sandboxes and contexts start fast: the sandbox spawner
    /// and the python fork server.
    pub async fn prepare_helpers(&self) {
        self.init_spawner.prepare().await;
        self.contexts.prepare().await;
    }

    /// Server shutdown: stops every process (keeping its record), kills every sandbox
    /// (keeping its record and files, so a restart brings it back), flushes the store.
    pub async fn shutdown(&self, process_wait: Duration) {
        // Creates that come now are refused; those under way end (queued ones refused at
        // their start, started ones made live), and so do deletes under way, before the
        // sandboxes are listed and killed.
        self.closing.store(true, Ordering::SeqCst);
        self.creates_done(INIT_READY_TIMEOUT).await;
        self.destroying.drained(INIT_READY_TIMEOUT).await;
        self.drain_pool().await;
        let all: Vec<_> = self.map().values().cloned().collect();
        futures_util::future::join_all(all.iter().map(|sandbox| async move {
            self.processes
                .stop_all(sandbox, StopReason::SandboxGone, process_wait)
                .await;
            self.destroy(sandbox, true).await;
        }))
        .await;
        // Deletes asked for meanwhile finish before their groups' parent is removed.
        self.destroying.drained(INIT_READY_TIMEOUT).await;
        self.network.shutdown().await;
        self.contexts.stop().await;
        self.init_spawner.stop().await;
        let cgroups = self.cgroups.clone();
        let _ = tokio::task::spawn_blocking(move || cgroups.remove_base(REMAINS_WAIT)).await;
        if let Some(volume) = &self.volume {
            volume.unmount();
        }
        self.records.flush();
    }
}

/// `now + seconds`, refused when it cannot be represented (the API bounds it far lower).
pub(super) fn expiry(now: SystemTime, seconds: u64) -> NodeResult<SystemTime> {
    now.checked_add(Duration::from_secs(seconds))
        .ok_or_else(|| NodeError::Invalid("timeout_seconds is out of range".into()))
}

#[async_trait]
impl Node for LocalNode {
    async fn create_sandbox(&self, spec: SandboxSpec) -> NodeResult<SandboxInfo> {
        self.create(spec).await
    }

    fn warm_pool_ready(&self) -> usize {
        self.pool.len()
    }

    fn warm_pool_taken(&self) -> u64 {
        self.pool.taken()
    }

    fn sandbox(&self, id: &str) -> NodeResult<SandboxInfo> {
        let sandbox = self.live(id)?;
        Ok(self.info_of(&sandbox))
    }

    fn sandboxes(&self) -> Vec<SandboxInfo> {
        let mut all: Vec<_> = self.map().values().map(|s| self.info_of(s)).collect();
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }

    async fn kill_sandbox(&self, id: &str) -> NodeResult<()> {
        // Counted before it leaves the map, so a shutdown that no longer lists it waits.
        let _destroying = self.destroying.enter();
        let sandbox = self
            .map_mut()
            .remove(id)
            .ok_or(NodeError::SandboxNotFound)?;
        self.destroy(&sandbox, false).await;
        if let Err(e) = self
            .records
            .delete_processes_of(id)
            .and_then(|()| self.catalog.delete_sandbox(id))
        {
            warn!(sandbox = %id, "store: {e}");
        }
        Ok(())
    }

    async fn pause_sandbox(&self, id: &str) -> NodeResult<()> {
        self.freeze(id, true).await
    }

    async fn resume_sandbox(&self, id: &str) -> NodeResult<()> {
        self.freeze(id, false).await
    }

    fn set_sandbox_timeout(&self, id: &str, seconds: u64) -> NodeResult<SandboxInfo> {
        let sandbox = self.live(id)?;
        let expires = expiry(SystemTime::now(), seconds)?;
        {
            let mut st = sandbox.state();
            st.timeout_seconds = Some(seconds);
            st.expires_at = Some(expires);
        }
        self.catalog
            .set_sandbox_expiry(id, seconds, unix_millis(expires))?;
        Ok(self.info_of(&sandbox))
    }

    fn rotate_sandbox_token(&self, id: &str, grace: Duration) -> NodeResult<SandboxInfo> {
        let sandbox = self.live(id)?;
        let (generation, until) = {
            let mut st = sandbox.state();
            let until = SystemTime::now() + grace;
            st.token_generation = st.token_generation.saturating_add(1);
            st.previous_token_until = Some(until);
            (st.token_generation, until)
        };
        self.catalog
            .set_sandbox_token_generation(id, generation, Some(unix_millis(until)))?;
        Ok(self.info_of(&sandbox))
    }

    async fn set_sandbox_network(
        &self,
        id: &str,
        rules: sandlot_protocol::NetworkRules,
    ) -> NodeResult<SandboxInfo> {
        let sandbox = self.live(id)?;
        let Some(attachment) = &sandbox.network else {
            return Err(NodeError::Conflict(
                "this sandbox has no internet access (it is chosen at create); \
                 egress rules need it"
                    .into(),
            ));
        };
        let rules = EgressRules::parse(&rules).map_err(NodeError::Invalid)?;
        let wire = rules.wire.clone();
        self.network
            .update(attachment, rules)
            .await
            .map_err(NodeError::Internal)?;
        self.catalog.set_sandbox_network(id, &wire)?;
        Ok(self.info_of(&sandbox))
    }

    async fn connect_port(&self, id: &str, port: u16) -> NodeResult<tokio::net::TcpStream> {
        let sandbox = self.live(id)?;
        if sandbox.status() == SandboxStatus::Paused {
            return Err(NodeError::Paused);
        }
        network::ports::connect(sandbox.init_pid(), port)
            .await
            .map_err(|e| {
                NodeError::PortUnreachable(format!(
                    "nothing answers on port {port} in the sandbox ({e}); \
                     start a server listening on it (0.0.0.0 or 127.0.0.1)"
                ))
            })
    }

    fn sandbox_env(&self, id: &str) -> NodeResult<BTreeMap<String, String>> {
        Ok(self.live(id)?.env_vars())
    }

    fn set_sandbox_env(
        &self,
        id: &str,
        vars: BTreeMap<String, String>,
        merge: bool,
    ) -> NodeResult<BTreeMap<String, String>> {
        check_env(&vars)?;
        let sandbox = self.live(id)?;
        let updated = {
            let mut env = sandbox.env_vars.lock().unwrap_or_else(|p| p.into_inner());
            if !merge {
                env.clear();
            }
            env.extend(vars);
            env.clone()
        };
        self.catalog.set_sandbox_env(id, &updated)?;
        Ok(updated)
    }

    async fn run(&self, sandbox_id: &str, spec: RunSpec) -> NodeResult<(ProcessInfo, Language)> {
        let sandbox = self.live(sandbox_id)?;
        self.processes.run_sync(&sandbox, spec).await
    }

    fn start_process(
        &self,
        sandbox_id: &str,
        spec: RunSpec,
        default_timeout: u64,
    ) -> NodeResult<ProcessInfo> {
        let sandbox = self.live(sandbox_id)?;
        let entry = self
            .processes
            .start_recorded(&sandbox, spec, default_timeout)?;
        Ok(entry.info(false))
    }

    fn follow_process(
        &self,
        sandbox_id: &str,
        process_id: &str,
        after: u64,
    ) -> NodeResult<ProcessEvents> {
        let sandbox = self.live(sandbox_id)?;
        self.processes.follow(&sandbox, process_id, after)
    }

    async fn wait_process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo> {
        let sandbox = self.live(sandbox_id)?;
        self.processes.wait(&sandbox, process_id).await
    }

    fn process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo> {
        let sandbox = self.live(sandbox_id)?;
        self.processes.info(&sandbox, process_id)
    }

    fn processes(
        &self,
        sandbox_id: &str,
        filter: &ProcessFilter,
    ) -> NodeResult<Vec<Box<serde_json::value::RawValue>>> {
        let sandbox = self.live(sandbox_id)?;
        self.processes.list(&sandbox, filter)
    }

    async fn sandbox_usage(&self, id: &str) -> NodeResult<SandboxUsage> {
        let sandbox = self.live(id)?;
        let (cgroups, layout) = (self.cgroups.clone(), self.layout.clone());
        let (sid, uid) = (sandbox.id.clone(), sandbox.uid);
        let (usage, disk, processes) = tokio::task::spawn_blocking(move || {
            let usage = cgroups.usage(&sid);
            let processes = super::inspect::processes(&usage.pids, uid);
            (usage, layout.workspace_usage(&sid), processes)
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?;
        Ok(SandboxUsage {
            cpu_seconds: usage.cpu_usec.map(|us| us as f64 / 1e6),
            memory_bytes: usage.memory_bytes,
            memory_limit_bytes: self.cfg.sandbox_memory_mb * 1024 * 1024,
            disk_bytes: disk,
            disk_limit_bytes: self.volume.as_ref().map_or(0, |v| v.quota_bytes()),
            oom_kills: usage.oom_kills.unwrap_or(0),
            processes,
            active_executions: sandbox.processes.active_count() as u64,
            network: sandbox
                .network
                .as_ref()
                .map(|n| {
                    let (bytes_out, bytes_in) = self.network.usage(n);
                    sandlot_protocol::NetworkUsage {
                        bytes_out,
                        bytes_in,
                    }
                })
                .unwrap_or_default(),
        })
    }

    async fn kill_process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo> {
        let sandbox = self.live(sandbox_id)?;
        self.processes.kill(&sandbox, process_id).await
    }

    fn remove_process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo> {
        let sandbox = self.live(sandbox_id)?;
        self.processes.remove(&sandbox, process_id)
    }

    fn sandbox_fs(&self, sandbox_id: &str) -> NodeResult<SandboxFs> {
        let sandbox = self.live(sandbox_id)?;
        // Sandbox gids are the uid's number (`layout::etc_files`).
        SandboxFs::open(
            sandbox.init_pid(),
            sandbox.uid,
            sandbox.uid,
            sandbox.watches.clone(),
            sandbox.gone.clone(),
        )
        .map_err(|e| {
            if sandbox.status() == SandboxStatus::Deleted {
                NodeError::SandboxNotFound
            } else {
                NodeError::Internal(format!("open the sandbox's root: {e}"))
            }
        })
    }
}
