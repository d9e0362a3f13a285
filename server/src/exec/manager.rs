//! The processes of a node's sandboxes: checking and starting runs, reading their records
//! (live from RAM, finished from the store), following, killing and removing them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sandlot_protocol::{defaults, Language, ProcessInfo, RunSpec, SandboxStatus};
use serde_json::value::RawValue;
use tracing::warn;

use super::follow::{self, Follower};
use super::launch::{self, CheckedRun, Launch};
use super::{runner, ProcessEntry, RecordSink, StopReason};
use crate::config::Config;
use crate::ids;
use crate::node::{NodeError, NodeResult, ProcessEvents, ProcessFilter};
use crate::sandbox::cgroup::Cgroups;
use crate::sandbox::{template, Sandbox};
use crate::shutdown::Shutdown;
use crate::store::{ProcessRecord, SqliteStore};

/// Longest pause between attempts to store a final record the store refused.
const STORE_RETRY_MAX: Duration = Duration::from_secs(30);

pub struct ProcessManager {
    cfg: Arc<Config>,
    store: Arc<SqliteStore>,
    cgroups: Arc<Cgroups>,
    exe: PathBuf,
    shutdown: Shutdown,
}

impl ProcessManager {
    pub fn new(
        cfg: Arc<Config>,
        store: Arc<SqliteStore>,
        cgroups: Arc<Cgroups>,
        exe: PathBuf,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            cfg,
            store,
            cgroups,
            exe,
            shutdown,
        }
    }

    fn keepalive(&self) -> Duration {
        Duration::from_secs(self.cfg.stream_keepalive_secs.max(1))
    }

    /// Checks a run against the sandbox and the limits, and makes its process entry.
    fn prepare(
        &self,
        sandbox: &Sandbox,
        spec: RunSpec,
        default_timeout: u64,
        recorded: bool,
    ) -> NodeResult<(CheckedRun, Launch, Arc<ProcessEntry>)> {
        if sandbox.status() == SandboxStatus::Paused {
            return Err(NodeError::Paused);
        }
        let run = launch::check(
            spec,
            sandbox.template,
            default_timeout,
            self.cfg.max_timeout_secs,
        )?;
        if sandbox.processes.active_count() >= self.cfg.max_processes_per_sandbox {
            return Err(NodeError::LimitReached(format!(
                "this sandbox runs at most {} processes at once; wait for one to end or kill one",
                self.cfg.max_processes_per_sandbox
            )));
        }
        let (argv, delivery) = template::launcher(run.language);
        let launch = Launch {
            exe: self.exe.clone(),
            cgroups: self.cgroups.clone(),
            sandbox_id: sandbox.id.clone(),
            init_pid: sandbox.init_pid(),
            uid: sandbox.uid,
            rlimits: launch::rlimits(
                self.cfg.sandbox_pids,
                self.cfg.sandbox_memory_mb,
                self.cgroups.enforces_limits(),
            ),
            argv,
            delivery,
            env: launch::environment(sandbox.env_vars(), &run.env),
            cwd: run.cwd.clone(),
            memory_mb: self.cfg.sandbox_memory_mb,
            shutdown: self.shutdown.clone(),
        };
        let sink = recorded.then(|| RecordSink {
            store: self.store.clone(),
            sandbox_id: sandbox.id.clone(),
        });
        let entry = Arc::new(ProcessEntry::new(
            ids::process_id(),
            ids::execution_id(),
            run.name.clone(),
            run.language,
            run.timeout_secs,
            sink,
            self.cfg.output_cap_bytes,
        ));
        Ok((run, launch, entry))
    }

    /// Starts a recorded process: stored from the start, listed, kept after it ends.
    pub fn start_recorded(
        &self,
        sandbox: &Arc<Sandbox>,
        spec: RunSpec,
        default_timeout: u64,
    ) -> NodeResult<Arc<ProcessEntry>> {
        let (run, launch, entry) = self.prepare(sandbox, spec, default_timeout, true)?;
        self.register_recorded(sandbox, &entry)?;
        let task_entry = entry.clone();
        let ran = async move {
            // The runner ends the entry, which stores its final record first.
            runner::run(task_entry, launch, run.code).await;
        };
        self.retire_recorded(sandbox, &entry, ran);
        Ok(entry)
    }

    /// Stores a new recorded process's first record and lists it.
    pub fn register_recorded(
        &self,
        sandbox: &Sandbox,
        entry: &Arc<ProcessEntry>,
    ) -> NodeResult<()> {
        self.store
            .insert_process(&entry.record(&sandbox.id, false))?;
        sandbox.processes.insert(entry.clone());
        if let Err(e) = self
            .store
            .trim_processes(&sandbox.id, self.cfg.max_process_records)
        {
            warn!(sandbox = %sandbox.id, "store: {e}");
        }
        Ok(())
    }

    /// Once `ran` has ended the recorded `entry`, keeps it in RAM until its record is stored
    /// and for the linger, then leaves reads to the store.
    pub fn retire_recorded(
        &self,
        sandbox: &Arc<Sandbox>,
        entry: &Arc<ProcessEntry>,
        ran: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (sandbox, task_entry) = (sandbox.clone(), entry.clone());
        let linger = Duration::from_secs(self.cfg.finished_linger_secs);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            ran.await;
            // A record the store refused (full disk) is stored once it can be; until then
            // the entry stays in RAM and serves reads.
            let mut wait = Duration::from_secs(1);
            while !task_entry.is_durable() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.requested() => return,
                }
                task_entry.store_final();
                wait = (wait * 2).min(STORE_RETRY_MAX);
            }
            // Readers that reconnect right after the end still resume exactly; then the
            // output leaves RAM and the store serves the record.
            tokio::time::sleep(linger).await;
            sandbox.processes.remove(&task_entry.id);
        });
    }

    /// Where a recorded process of `sandbox` keeps its final record.
    pub fn sink(&self, sandbox: &Sandbox) -> RecordSink {
        RecordSink {
            store: self.store.clone(),
            sandbox_id: sandbox.id.clone(),
        }
    }

    /// A live process's events, from the start (for runs started elsewhere, e.g. cells).
    pub fn follow_entry(
        &self,
        entry: Arc<ProcessEntry>,
        on_drop: Option<Box<dyn FnOnce() + Send>>,
    ) -> ProcessEvents {
        Follower::new(entry, 0, self.keepalive()).into_events(on_drop)
    }

    /// Starts a process that lives only while its events are followed.
    pub fn start_followed(
        &self,
        sandbox: &Arc<Sandbox>,
        spec: RunSpec,
        default_timeout: u64,
    ) -> NodeResult<(ProcessInfo, ProcessEvents)> {
        let (run, launch, entry) = self.prepare(sandbox, spec, default_timeout, false)?;
        tokio::spawn(run_unrecorded(
            sandbox.clone(),
            entry.clone(),
            launch,
            run.code,
        ));
        let stop = entry.clone();
        let events = Follower::new(entry.clone(), 0, self.keepalive()).into_events(Some(Box::new(
            move || {
                stop.request_stop(StopReason::Killed);
            },
        )));
        Ok((entry.info(false), events))
    }

    /// Runs code to completion (`POST /execute`); nothing is recorded. Dropping the future
    /// (the client went away) stops the run.
    pub async fn run_sync(
        &self,
        sandbox: &Arc<Sandbox>,
        spec: RunSpec,
    ) -> NodeResult<(ProcessInfo, Language)> {
        let (run, launch, entry) =
            self.prepare(sandbox, spec, defaults::EXECUTE_TIMEOUT_SECS, false)?;
        struct StopOnDrop(Arc<ProcessEntry>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.request_stop(StopReason::Killed);
            }
        }
        let guard = StopOnDrop(entry.clone());
        let task = run_unrecorded(sandbox.clone(), entry.clone(), launch, run.code);
        let _ = tokio::spawn(task).await;
        drop(guard);
        Ok((entry.info(true), run.language))
    }

    /// A stored record of this sandbox.
    fn stored(&self, sandbox: &Sandbox, process_id: &str) -> NodeResult<ProcessRecord> {
        self.store
            .process(process_id)?
            .filter(|r| r.sandbox_id == sandbox.id)
            .ok_or(NodeError::ProcessNotFound)
    }

    pub fn info(&self, sandbox: &Sandbox, process_id: &str) -> NodeResult<ProcessInfo> {
        match sandbox.processes.recorded(process_id) {
            Some(entry) => Ok(entry.info(true)),
            None => Ok(self.stored(sandbox, process_id)?.into_info()),
        }
    }

    /// Recorded processes in start order, each as its wire JSON: finished ones as the
    /// store keeps them (final and complete), the others read live from RAM.
    pub fn list(
        &self,
        sandbox: &Sandbox,
        filter: &ProcessFilter,
    ) -> NodeResult<Vec<Box<RawValue>>> {
        let with_output = !filter.without_output;
        let rows = self.store.listing(&sandbox.id, with_output)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(json) = row.json {
                if filter.keeps(row.status, row.name.as_deref()) {
                    out.push(json);
                }
                continue;
            }
            let info = if let Some(entry) = sandbox.processes.recorded(&row.process_id) {
                entry.info(with_output)
            } else {
                // Ended and left RAM since the query, or stored before JSON was kept.
                match self.store.process(&row.process_id)? {
                    Some(record) if with_output => record.into_info(),
                    Some(record) => ProcessInfo {
                        stdout: String::new(),
                        stderr: String::new(),
                        ..record.into_info()
                    },
                    None => continue,
                }
            };
            if filter.keeps(info.status, info.name.as_deref()) {
                let json = serde_json::value::to_raw_value(&info)
                    .map_err(|e| NodeError::Internal(e.to_string()))?;
                out.push(json);
            }
        }
        Ok(out)
    }

    pub fn follow(
        &self,
        sandbox: &Sandbox,
        process_id: &str,
        after: u64,
    ) -> NodeResult<ProcessEvents> {
        match sandbox.processes.recorded(process_id) {
            Some(entry) => Ok(Follower::new(entry, after, self.keepalive()).into_events(None)),
            None => Ok(follow::replay(&self.stored(sandbox, process_id)?, after)),
        }
    }

    pub async fn wait(&self, sandbox: &Sandbox, process_id: &str) -> NodeResult<ProcessInfo> {
        if let Some(entry) = sandbox.processes.recorded(process_id) {
            entry.wait().await;
        }
        // The runner's task stores the record right after the end.
        for _ in 0..100 {
            let record = self.stored(sandbox, process_id)?;
            if record.status.is_final() {
                return Ok(record.into_info());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.info(sandbox, process_id)
    }

    /// Kills a process's tree; resolves once it has ended.
    pub async fn kill(&self, sandbox: &Sandbox, process_id: &str) -> NodeResult<ProcessInfo> {
        if let Some(entry) = sandbox.processes.recorded(process_id) {
            if entry.request_stop(StopReason::Killed) {
                let _ = tokio::time::timeout(Duration::from_secs(10), entry.wait()).await;
            }
        } else if let Some(entry) = sandbox.processes.live(process_id) {
            // A streamed run in a context: addressable while it runs (its id was in the
            // stream's first event), not recorded.
            entry.request_stop(StopReason::Killed);
            let _ = tokio::time::timeout(Duration::from_secs(10), entry.wait()).await;
            return Ok(entry.info(true));
        }
        self.info(sandbox, process_id)
    }

    /// Forgets a finished process's record.
    pub fn remove(&self, sandbox: &Sandbox, process_id: &str) -> NodeResult<ProcessInfo> {
        let info = self.info(sandbox, process_id)?;
        if !info.status.is_final() {
            return Err(NodeError::Conflict(format!(
                "process {process_id} is still {}; kill it before removing its record",
                info.status.as_str()
            )));
        }
        sandbox.processes.remove(process_id);
        self.store.delete_process(process_id)?;
        Ok(info)
    }

    /// Stops every process of a sandbox, waits (at most `wait` each) for them to end, and
    /// stores the final records the store had refused so far.
    pub async fn stop_all(&self, sandbox: &Sandbox, reason: StopReason, wait: Duration) {
        let all = sandbox.processes.all();
        for p in &all {
            p.request_stop(reason);
        }
        for p in &all {
            let _ = tokio::time::timeout(wait, p.wait()).await;
            p.store_final();
        }
    }
}

/// Runs a process that is not recorded; it is in the sandbox's table only while it runs, so
/// a sandbox kill or a shutdown stops and waits for it too.
async fn run_unrecorded(
    sandbox: Arc<Sandbox>,
    entry: Arc<ProcessEntry>,
    launch: Launch,
    code: String,
) {
    sandbox.processes.insert(entry.clone());
    runner::run(entry.clone(), launch, code).await;
    sandbox.processes.remove(&entry.id);
}
