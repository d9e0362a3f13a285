//! Sandboxes on this host: create, find, list, pause, resume, time out and kill them, and run
//! processes in them.
//!
//! [`LocalNode`] is the one interface the HTTP layer reaches sandboxes through. Today it
//! manages the sandboxes of this host; in a cluster the control plane would place sandboxes
//! on nodes and call the same operations remotely (DESIGN.md, "room to grow").

pub mod cgroup;
pub mod isolation;
pub mod template;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use sandlot_protocol::{defaults, language, ProcessStatus, SandboxStatus};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tracing::{info, warn};

use crate::config::Config;
use crate::exec::runner::{self, Launch};
use crate::exec::{ProcessEntry, ProcessTable, StopReason, StoredOutput};
use crate::ids;
use crate::store::{ProcessRecord, SandboxRecord, Store};
use crate::time::{from_unix_millis, unix_millis};
use cgroup::{Cgroups, Limits};
use isolation::{InitConfig, Rlimits, INIT_SUBCOMMAND};
use template::TemplateSpec;

/// Why a node operation was refused.
#[derive(Debug)]
pub enum NodeError {
    SandboxNotFound,
    ProcessNotFound,
    TemplateNotFound(String),
    Invalid(String),
    LimitReached(String),
    Paused,
    Internal(String),
}

pub type NodeResult<T> = Result<T, NodeError>;

/// First uid handed to sandboxes; each live sandbox gets its own.
const FIRST_SANDBOX_UID: u32 = 100_000;
const SANDBOX_UIDS: u32 = 60_000;
/// How long sandbox creation may take before it is called a failure.
const INIT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// One sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    pub template: &'static TemplateSpec,
    pub uid: u32,
    pub internet_access: bool,
    /// The sandbox's global environment (`env_vars` at create, `/env` later).
    env_vars: Mutex<BTreeMap<String, String>>,
    pub created_at: SystemTime,
    state: Mutex<SandboxState>,
    pub processes: ProcessTable,
}

#[derive(Debug, Clone)]
struct SandboxState {
    status: SandboxStatus,
    timeout_seconds: Option<u64>,
    expires_at: Option<SystemTime>,
    init_pid: i32,
}

/// A snapshot of a sandbox's changing fields.
#[derive(Debug, Clone)]
pub struct SandboxView {
    pub status: SandboxStatus,
    pub timeout_seconds: Option<u64>,
    pub expires_at: Option<SystemTime>,
}

impl Sandbox {
    fn state(&self) -> std::sync::MutexGuard<'_, SandboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn env_vars(&self) -> BTreeMap<String, String> {
        self.env_vars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn view(&self) -> SandboxView {
        let st = self.state();
        SandboxView {
            status: st.status,
            timeout_seconds: st.timeout_seconds,
            expires_at: st.expires_at,
        }
    }
}

/// A request to run code (background or synchronous).
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub code: String,
    pub language: Option<String>,
    pub timeout: Option<u64>,
    pub workdir: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub name: Option<String>,
}

/// Options of a new sandbox.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub template: String,
    pub timeout_seconds: Option<u64>,
    pub internet_access: bool,
    pub env_vars: BTreeMap<String, String>,
}

pub struct LocalNode {
    cfg: Arc<Config>,
    cgroups: Arc<Cgroups>,
    store: Arc<Store>,
    exe: PathBuf,
    sandboxes_dir: PathBuf,
    sandboxes: RwLock<HashMap<String, Arc<Sandbox>>>,
    /// uids of live sandboxes plus slots reserved by creations in flight.
    uids: Mutex<HashSet<u32>>,
    /// Bounds sandbox starts in flight. Starting one is CPU work; with a burst of creates,
    /// first come first served finishes the early ones early instead of all of them late.
    start_permits: tokio::sync::Semaphore,
}

impl LocalNode {
    pub fn new(
        cfg: Arc<Config>,
        cgroups: Arc<Cgroups>,
        store: Arc<Store>,
    ) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let sandboxes_dir = cfg.data_dir.join("sandboxes");
        std::fs::create_dir_all(&sandboxes_dir)?;
        Ok(Self {
            cfg,
            cgroups,
            store,
            exe,
            sandboxes_dir,
            sandboxes: RwLock::new(HashMap::new()),
            uids: Mutex::new(HashSet::new()),
            start_permits: tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        })
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Sandbox>>> {
        self.sandboxes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Sandbox>>> {
        self.sandboxes.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> NodeResult<Arc<Sandbox>> {
        self.map()
            .get(id)
            .cloned()
            .ok_or(NodeError::SandboxNotFound)
    }

    /// All sandboxes, oldest first.
    pub fn list(&self) -> Vec<Arc<Sandbox>> {
        let mut all: Vec<_> = self.map().values().cloned().collect();
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }

    pub fn count(&self) -> usize {
        self.map().len()
    }

    fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.cfg.sandbox_memory_mb * 1024 * 1024,
            pids: self.cfg.sandbox_pids,
            cpus: self.cfg.sandbox_cpus,
        }
    }

    pub async fn create(&self, opts: CreateOptions) -> NodeResult<Arc<Sandbox>> {
        let template = template::find(&opts.template)
            .ok_or_else(|| NodeError::TemplateNotFound(opts.template.clone()))?;
        let uid = self.reserve_uid()?;
        let id = ids::sandbox_id();
        let now = SystemTime::now();
        let record = SandboxRecord {
            id: id.clone(),
            template: template.name.into(),
            status: SandboxStatus::Running,
            uid,
            internet_access: opts.internet_access,
            env_vars: opts.env_vars.clone(),
            timeout_seconds: opts.timeout_seconds,
            expires_at_ms: opts
                .timeout_seconds
                .map(|t| unix_millis(now + Duration::from_secs(t))),
            created_at_ms: unix_millis(now),
        };
        match self.start(&record).await {
            Ok(sandbox) => {
                if let Err(e) = self.store.insert_sandbox(&record) {
                    self.destroy(&sandbox).await;
                    return Err(NodeError::Internal(format!("store: {e}")));
                }
                Ok(sandbox)
            }
            Err(e) => {
                self.release_uid(uid);
                Err(e)
            }
        }
    }

    fn reserve_uid(&self) -> NodeResult<u32> {
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

    fn release_uid(&self, uid: u32) {
        self.uids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uid);
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes_dir.join(id)
    }

    /// Creates (or re-creates, after a restart) the live sandbox of a record.
    async fn start(&self, record: &SandboxRecord) -> NodeResult<Arc<Sandbox>> {
        let _permit = self.start_permits.acquire().await.expect("never closed");
        let template = template::find(&record.template)
            .ok_or_else(|| NodeError::TemplateNotFound(record.template.clone()))?;
        let dir = self.sandbox_dir(&record.id);
        let (root, workspace) = (dir.join("root"), dir.join("workspace"));
        prepare_dirs(&root, &workspace, record.uid)
            .map_err(|e| NodeError::Internal(format!("sandbox directories: {e}")))?;
        let cgroups = self.cgroups.clone();
        let (id, limits) = (record.id.clone(), self.limits());
        let procs = tokio::task::spawn_blocking(move || cgroups.create_sandbox(&id, limits))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .map_err(|e| NodeError::Internal(format!("sandbox cgroups: {e}")))?;

        let init = InitConfig {
            root_dir: root.to_string_lossy().into_owned(),
            workspace_dir: workspace.to_string_lossy().into_owned(),
            ro_binds: vec!["/usr".into()],
            etc_binds: ETC_BINDS.iter().map(|s| s.to_string()).collect(),
            etc_files: etc_files(record.uid, &hostname_of(&record.id)),
            hostname: hostname_of(&record.id),
            tmp_size_mb: self.cfg.sandbox_tmp_mb,
            cgroup_procs: procs,
        };
        let init_pid = match self.spawn_init(&record.id, &init).await {
            Ok(pid) => pid,
            Err(e) => {
                let cgroups = self.cgroups.clone();
                let id = record.id.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    cgroups.kill_sandbox(&id);
                    cgroups.remove_sandbox(&id);
                })
                .await;
                return Err(e);
            }
        };
        let sandbox = Arc::new(Sandbox {
            id: record.id.clone(),
            template,
            uid: record.uid,
            internet_access: record.internet_access,
            env_vars: Mutex::new(record.env_vars.clone()),
            created_at: from_unix_millis(record.created_at_ms),
            state: Mutex::new(SandboxState {
                status: SandboxStatus::Running,
                timeout_seconds: record.timeout_seconds,
                expires_at: record.expires_at_ms.map(from_unix_millis),
                init_pid,
            }),
            processes: ProcessTable::default(),
        });
        self.map_mut().insert(record.id.clone(), sandbox.clone());
        Ok(sandbox)
    }

    /// Starts `__sandbox-init` and waits for its `ready <pid>` line.
    async fn spawn_init(&self, id: &str, init: &InitConfig) -> NodeResult<i32> {
        let mut child = Command::new(&self.exe)
            .arg(INIT_SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NodeError::Internal(format!("start sandbox init: {e}")))?;
        let json = serde_json::to_vec(init).expect("init config serialises");
        let mut stdin = child.stdin.take().expect("piped");
        let _ = stdin.write_all(&json).await;
        drop(stdin);
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let ready = tokio::time::timeout(INIT_READY_TIMEOUT, stdout.read_line(&mut line)).await;
        let pid = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse::<i32>().ok());
        let mut stderr = child.stderr.take().expect("piped");
        let Some(pid) = pid.filter(|_| matches!(ready, Ok(Ok(_)))) else {
            let _ = child.start_kill();
            let mut msg = String::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(1), stderr.read_to_string(&mut msg)).await;
            let _ = child.wait().await;
            return Err(NodeError::Internal(format!(
                "sandbox {id} failed to start: {}",
                if msg.trim().is_empty() {
                    "no reason given"
                } else {
                    msg.trim()
                }
            )));
        };
        // The helper lives as long as the sandbox; reap it and note an unexpected death.
        let id = id.to_string();
        tokio::spawn(async move {
            let mut msg = String::new();
            let _ = stderr.read_to_string(&mut msg).await;
            let status = child.wait().await;
            if !msg.trim().is_empty() {
                warn!(sandbox = %id, status = ?status, "sandbox init said: {}", msg.trim());
            }
        });
        Ok(pid)
    }

    /// Kills a sandbox, everything in it, and forgets it.
    pub async fn kill(&self, id: &str) -> NodeResult<()> {
        let sandbox = self
            .map_mut()
            .remove(id)
            .ok_or(NodeError::SandboxNotFound)?;
        self.destroy(&sandbox).await;
        if let Err(e) = self.store.delete_sandbox(id) {
            warn!(sandbox = %id, "store: {e}");
        }
        Ok(())
    }

    async fn destroy(&self, sandbox: &Arc<Sandbox>) {
        self.map_mut().remove(&sandbox.id);
        let init_pid = {
            let mut st = sandbox.state();
            st.status = SandboxStatus::Deleted;
            st.init_pid
        };
        let active: Vec<_> = sandbox
            .processes
            .all()
            .into_iter()
            .filter(|p| p.request_stop(StopReason::SandboxGone))
            .collect();
        // SAFETY: SIGKILL to our own sandbox's pid 1 takes its whole pid namespace down.
        unsafe { libc::kill(init_pid, libc::SIGKILL) };
        let cgroups = self.cgroups.clone();
        let id = sandbox.id.clone();
        let _ = tokio::task::spawn_blocking(move || cgroups.kill_sandbox(&id)).await;
        for p in active {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.wait()).await;
        }
        let cgroups = self.cgroups.clone();
        let id = sandbox.id.clone();
        let dir = self.sandbox_dir(&sandbox.id);
        let _ = tokio::task::spawn_blocking(move || {
            cgroups.kill_sandbox(&id);
            cgroups.remove_sandbox(&id);
            let _ = std::fs::remove_dir_all(&dir);
        })
        .await;
        self.release_uid(sandbox.uid);
    }

    pub async fn pause(&self, id: &str) -> NodeResult<()> {
        self.freeze(id, true).await
    }

    pub async fn resume(&self, id: &str) -> NodeResult<()> {
        self.freeze(id, false).await
    }

    async fn freeze(&self, id: &str, frozen: bool) -> NodeResult<()> {
        let sandbox = self.get(id)?;
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
        let _ = self.store.set_sandbox_status(id, status);
        Ok(())
    }

    /// Replaces (`merge == false`) or merges the sandbox's global environment; returns it.
    pub fn set_env(
        &self,
        sandbox: &Sandbox,
        vars: BTreeMap<String, String>,
        merge: bool,
    ) -> NodeResult<BTreeMap<String, String>> {
        let updated = {
            let mut env = sandbox.env_vars.lock().unwrap_or_else(|p| p.into_inner());
            if !merge {
                env.clear();
            }
            env.extend(vars);
            env.clone()
        };
        self.store
            .set_sandbox_env(&sandbox.id, &updated)
            .map_err(|e| NodeError::Internal(format!("store: {e}")))?;
        Ok(updated)
    }

    /// Sets the sandbox to die `seconds` from now.
    pub fn set_timeout(&self, id: &str, seconds: u64) -> NodeResult<SystemTime> {
        let sandbox = self.get(id)?;
        let expires = SystemTime::now() + Duration::from_secs(seconds);
        {
            let mut st = sandbox.state();
            st.timeout_seconds = Some(seconds);
            st.expires_at = Some(expires);
        }
        self.store
            .set_sandbox_expiry(id, seconds, unix_millis(expires))
            .map_err(|e| NodeError::Internal(format!("store: {e}")))?;
        Ok(expires)
    }

    /// Kills sandboxes whose timeout has run out. Runs once a second.
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
            let _ = self.kill(&id).await;
        }
    }

    /// Validates a run request against the sandbox and builds how to launch it.
    fn prepare_run(
        &self,
        sandbox: &Sandbox,
        req: &RunRequest,
        default_timeout: u64,
    ) -> NodeResult<(Launch, &'static str, u64)> {
        let view = sandbox.view();
        if view.status == SandboxStatus::Paused {
            return Err(NodeError::Paused);
        }
        let requested = req.language.as_deref().unwrap_or(defaults::LANGUAGE);
        let lang = language::canonical(requested)
            .filter(|l| sandbox.template.supports(l))
            .ok_or_else(|| {
                NodeError::Invalid(format!(
                    "unsupported language '{requested}' for template {}; use one of: {}",
                    sandbox.template.name,
                    sandbox.template.languages.join(", ")
                ))
            })?;
        let timeout = req.timeout.unwrap_or(default_timeout);
        if timeout == 0 || timeout > self.cfg.max_timeout_secs {
            return Err(NodeError::Invalid(format!(
                "timeout must be between 1 and {} seconds",
                self.cfg.max_timeout_secs
            )));
        }
        let cwd = req
            .workdir
            .clone()
            .unwrap_or_else(|| defaults::WORKDIR.into());
        if !cwd.starts_with('/') {
            return Err(NodeError::Invalid(
                "workdir must be an absolute path".into(),
            ));
        }
        let mut env: BTreeMap<String, String> = BASE_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(sandbox.env_vars());
        for (k, v) in req.env.iter().flatten() {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(NodeError::Invalid(format!(
                    "invalid environment variable name '{k}'"
                )));
            }
            env.insert(k.clone(), v.clone());
        }
        let (argv, delivery) =
            template::launcher(lang).expect("canonical languages have launchers");
        let init_pid = sandbox.state().init_pid;
        Ok((
            Launch {
                exe: self.exe.clone(),
                cgroups: self.cgroups.clone(),
                sandbox_id: sandbox.id.clone(),
                init_pid,
                uid: sandbox.uid,
                rlimits: self.rlimits(),
                argv,
                delivery,
                env: env.into_iter().collect(),
                cwd,
            },
            lang,
            timeout,
        ))
    }

    fn rlimits(&self) -> Rlimits {
        let cgroup_limits = self.cgroups.enforces_limits();
        Rlimits {
            nofile: 4096,
            nproc: self.cfg.sandbox_pids,
            fsize_bytes: 1024 * 1024 * 1024,
            as_bytes: if cgroup_limits {
                0
            } else {
                (self.cfg.sandbox_memory_mb + 512) * 1024 * 1024
            },
        }
    }

    /// Starts a process and returns at once. `recorded` processes are listed and stored
    /// (background runs); others live only as long as their caller follows them (streams).
    pub fn start_process(
        self: &Arc<Self>,
        sandbox: &Arc<Sandbox>,
        req: RunRequest,
        default_timeout: u64,
        recorded: bool,
    ) -> NodeResult<Arc<ProcessEntry>> {
        let (launch, lang, timeout) = self.prepare_run(sandbox, &req, default_timeout)?;
        if sandbox.processes.active_count() >= self.cfg.max_processes_per_sandbox {
            return Err(NodeError::LimitReached(format!(
                "this sandbox runs at most {} processes at once; wait for one to end or kill one",
                self.cfg.max_processes_per_sandbox
            )));
        }
        let entry = Arc::new(ProcessEntry::new(
            ids::process_id(),
            ids::execution_id(),
            req.name.clone(),
            lang.into(),
            timeout,
            self.cfg.output_cap_bytes,
        ));
        if recorded {
            self.store
                .insert_process(&record_of(&sandbox.id, &entry))
                .map_err(|e| NodeError::Internal(format!("store: {e}")))?;
            sandbox.processes.insert(entry.clone());
            self.trim_records(sandbox);
        }

        let node = self.clone();
        let (run_entry, sandbox_id) = (entry.clone(), sandbox.id.clone());
        tokio::spawn(async move {
            runner::run(run_entry.clone(), launch, req.code).await;
            if recorded {
                node.persist_finished(&sandbox_id, &run_entry);
            }
        });
        Ok(entry)
    }

    /// Runs code to completion (`POST /execute`); nothing is recorded.
    pub async fn run_sync(
        &self,
        sandbox: &Arc<Sandbox>,
        req: RunRequest,
    ) -> NodeResult<(Arc<ProcessEntry>, &'static str)> {
        let (launch, lang, timeout) =
            self.prepare_run(sandbox, &req, defaults::EXECUTE_TIMEOUT_SECS)?;
        if sandbox.processes.active_count() >= self.cfg.max_processes_per_sandbox {
            return Err(NodeError::LimitReached(
                "too many processes running in this sandbox".into(),
            ));
        }
        let entry = Arc::new(ProcessEntry::new(
            ids::process_id(),
            ids::execution_id(),
            None,
            lang.into(),
            timeout,
            self.cfg.output_cap_bytes,
        ));
        // Stop the run if the client goes away (the handler future is dropped).
        struct StopOnDrop(Arc<ProcessEntry>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.request_stop(StopReason::Killed);
            }
        }
        let guard = StopOnDrop(entry.clone());
        let run = tokio::spawn(runner::run(entry.clone(), launch, req.code));
        let _ = run.await;
        drop(guard);
        Ok((entry, lang))
    }

    fn persist_finished(&self, sandbox_id: &str, entry: &ProcessEntry) {
        if let Err(e) = self.store.finish_process(&record_of(sandbox_id, entry)) {
            warn!(process = %entry.id, "store: {e}");
        }
    }

    /// Drops the oldest finished records beyond the per-sandbox cap.
    fn trim_records(&self, sandbox: &Sandbox) {
        let all = sandbox.processes.all();
        let excess = all.len().saturating_sub(self.cfg.max_process_records);
        for old in all.iter().filter(|p| p.status().is_final()).take(excess) {
            sandbox.processes.remove(&old.id);
            let _ = self.store.delete_process(&old.id);
        }
    }

    pub fn find_process(
        &self,
        sandbox: &Sandbox,
        process_id: &str,
    ) -> NodeResult<Arc<ProcessEntry>> {
        sandbox
            .processes
            .get(process_id)
            .ok_or(NodeError::ProcessNotFound)
    }

    /// Kills a process's tree; resolves once it has ended.
    pub async fn kill_process(
        &self,
        sandbox: &Sandbox,
        process_id: &str,
    ) -> NodeResult<Arc<ProcessEntry>> {
        let entry = self.find_process(sandbox, process_id)?;
        if entry.request_stop(StopReason::Killed) {
            let _ = tokio::time::timeout(Duration::from_secs(10), entry.wait()).await;
        }
        Ok(entry)
    }

    /// Forgets a finished process's record.
    pub fn remove_process(
        &self,
        sandbox: &Sandbox,
        process_id: &str,
    ) -> NodeResult<Arc<ProcessEntry>> {
        let entry = self.find_process(sandbox, process_id)?;
        if !entry.status().is_final() {
            return Err(NodeError::Invalid(format!(
                "process {process_id} is still {}; kill it before removing its record",
                entry.status().as_str()
            )));
        }
        sandbox.processes.remove(process_id);
        self.store
            .delete_process(process_id)
            .map_err(|e| NodeError::Internal(format!("store: {e}")))?;
        Ok(entry)
    }

    /// After a start (possibly following a crash): sweep what the last run left, mark its
    /// unfinished processes failed, and bring its sandboxes back with their records.
    pub async fn recover(&self) -> std::io::Result<()> {
        let cgroups = self.cgroups.clone();
        let swept = tokio::task::spawn_blocking(move || cgroups.sweep())
            .await
            .unwrap_or(0);
        if swept > 0 {
            info!(
                swept,
                "killed and removed sandbox cgroups left by an earlier run"
            );
        }
        let failed = self
            .store
            .fail_unfinished(
                "sandlotd restarted while this process was running; it was stopped",
                unix_millis(SystemTime::now()),
            )
            .map_err(std::io::Error::other)?;
        if failed > 0 {
            warn!(
                failed,
                "processes were running when sandlotd last stopped; marked failed"
            );
        }
        let records = self.store.sandboxes().map_err(std::io::Error::other)?;
        let known: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let now = unix_millis(SystemTime::now());
        for record in records {
            if record.expires_at_ms.is_some_and(|t| t <= now) {
                info!(sandbox = %record.id, "sandbox expired while the server was down");
                let _ = self.store.delete_sandbox(&record.id);
                let _ = std::fs::remove_dir_all(self.sandbox_dir(&record.id));
                continue;
            }
            self.uids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(record.uid);
            match self.start(&record).await {
                Ok(sandbox) => {
                    let _ = self
                        .store
                        .set_sandbox_status(&record.id, SandboxStatus::Running);
                    for p in self
                        .store
                        .processes_of(&record.id)
                        .map_err(std::io::Error::other)?
                    {
                        sandbox
                            .processes
                            .insert(Arc::new(entry_of(p, self.cfg.output_cap_bytes)));
                    }
                }
                Err(e) => {
                    warn!(sandbox = %record.id, "could not restart sandbox: {e:?}");
                    self.release_uid(record.uid);
                    let _ = self.store.delete_sandbox(&record.id);
                }
            }
        }
        // Directories of sandboxes the store no longer knows.
        for entry in std::fs::read_dir(&self.sandboxes_dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) || !self.map().contains_key(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Kills every sandbox (server shutdown).
    pub async fn shutdown(&self) {
        let all: Vec<_> = self.map().values().cloned().collect();
        for sandbox in all {
            // Keep the records: a restarted server brings the sandboxes back.
            for p in sandbox.processes.all() {
                p.request_stop(StopReason::SandboxGone);
            }
            for p in sandbox.processes.all() {
                let _ = tokio::time::timeout(Duration::from_secs(5), p.wait()).await;
                if p.status().is_final() {
                    self.persist_finished(&sandbox.id, &p);
                }
            }
            let init_pid = sandbox.state().init_pid;
            // SAFETY: SIGKILL to our own sandbox's pid 1.
            unsafe { libc::kill(init_pid, libc::SIGKILL) };
            let cgroups = self.cgroups.clone();
            let id = sandbox.id.clone();
            let _ = tokio::task::spawn_blocking(move || {
                cgroups.kill_sandbox(&id);
                cgroups.remove_sandbox(&id);
            })
            .await;
        }
        let cgroups = self.cgroups.clone();
        let _ = tokio::task::spawn_blocking(move || cgroups.remove_base()).await;
        self.store.flush();
    }
}

fn record_of(sandbox_id: &str, entry: &ProcessEntry) -> ProcessRecord {
    let st = entry.lock();
    let started = unix_millis(st.started_at);
    let completed = st.completed_at.map(unix_millis);
    let (status, exit_code, pid, error) = (st.status, st.exit_code, st.pid, st.error.clone());
    drop(st);
    ProcessRecord {
        process_id: entry.id.clone(),
        sandbox_id: sandbox_id.into(),
        execution_id: entry.execution_id.clone(),
        name: entry.name.clone(),
        language: entry.language.clone(),
        status,
        exit_code,
        output: if status.is_final() {
            entry.output()
        } else {
            StoredOutput::default()
        },
        started_at_ms: started,
        completed_at_ms: completed,
        pid,
        timeout: entry.timeout_secs,
        error,
    }
}

fn entry_of(p: ProcessRecord, output_cap: usize) -> ProcessEntry {
    let entry = ProcessEntry::new(
        p.process_id,
        p.execution_id,
        p.name,
        p.language,
        p.timeout,
        output_cap,
    );
    {
        let mut st = entry.lock();
        st.status = if p.status.is_final() {
            p.status
        } else {
            ProcessStatus::Failed
        };
        st.exit_code = p.exit_code;
        st.started_at = from_unix_millis(p.started_at_ms);
        st.completed_at = p.completed_at_ms.map(from_unix_millis);
        st.pid = p.pid;
        st.error = p.error;
        st.stored_output = Some(p.output);
    }
    entry.finished.send_replace(true);
    entry
}

/// Environment every sandboxed process starts with (sandbox and request env override it).
const BASE_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/workspace"),
    ("USER", "user"),
    ("LOGNAME", "user"),
    ("LANG", "C.UTF-8"),
    ("PYTHONUNBUFFERED", "1"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
];

/// Host `/etc` entries the runtimes need, exposed read-only (missing ones are skipped).
const ETC_BINDS: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/mime.types",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
    "/etc/python3",
    "/etc/python3.11",
];

fn hostname_of(id: &str) -> String {
    format!("sandbox-{}", &id[id.len().saturating_sub(8)..])
}

fn etc_files(uid: u32, hostname: &str) -> Vec<(String, String)> {
    vec![
        (
            "passwd".into(),
            format!(
                "root:x:0:0:root:/root:/bin/bash\nuser:x:{uid}:{uid}:sandbox user:/workspace:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        ("group".into(), format!("root:x:0:\nuser:x:{uid}:\nnogroup:x:65534:\n")),
        ("hosts".into(), format!("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 {hostname}\n")),
        ("hostname".into(), format!("{hostname}\n")),
        ("resolv.conf".into(), String::new()),
    ]
}

fn prepare_dirs(root: &Path, workspace: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root)?;
    std::fs::create_dir_all(workspace)?;
    std::os::unix::fs::chown(workspace, Some(uid), Some(uid))?;
    std::fs::set_permissions(workspace, std::fs::Permissions::from_mode(0o755))?;
    // The sandbox directory itself is root's alone, so no other sandbox uid can look in.
    if let Some(parent) = workspace.parent() {
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))?;
    }
    Ok(())
}
