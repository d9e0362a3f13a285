//! Running code in contexts: choosing the context, starting, restarting and stopping its
//! interpreter (a cell's own run is in [`super::cell`]).
//!
//! Crashes are told, idle stops are not: a context whose interpreter died (a signal, the
//! out-of-memory killer, a cell that would not stop when interrupted) is restarted by the
//! next run, which reports `ContextRestarted` with the reason *instead of running* (code
//! written for the lost state would otherwise run against an empty one). An interpreter that
//! exited on request (bash's `exit 3`, `process.exit()`) or was stopped for being idle is
//! started again without a word.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sandlot_protocol::{
    defaults, CodeRunRequest, ContextInfo, ContextState, CreateContextRequest, Language,
    SandboxStatus,
};
use tokio::task::JoinHandle;
use tracing::warn;

use super::cell::{run_in, CellOutcome, Job};
use super::driver;
use super::process::{ContextProcess, Quiet};
use super::start::{discard, prefork, Preforked};
use super::zygote::{Usual, Zygote};
use super::{default_id, Context, Slot};
use crate::config::Config;
use crate::exec::launch::{self, Launch};
use crate::exec::{ProcessEntry, RecordSink};
use crate::ids;
use crate::node::{NodeError, NodeResult};
use crate::sandbox::cgroup::Cgroups;
use crate::sandbox::Sandbox;
use crate::shutdown::Shutdown;

/// How long a pooled context's warm-up may take (a few milliseconds when the host is idle).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pooled context may take to take its sandbox's variables (well under a
/// millisecond): a create waits for it, and makes a sandbox anew (~10 ms) if it gives up.
const TAKE_ENV_TIMEOUT: Duration = Duration::from_secs(1);

pub struct ContextManager {
    cfg: Arc<Config>,
    cgroups: Arc<Cgroups>,
    exe: PathBuf,
    shutdown: Shutdown,
    /// Python contexts are forked from it (`--context-zygote`, where processes have
    /// tracking cgroups to be killed by).
    zygote: Option<Arc<Zygote>>,
}

impl ContextManager {
    pub fn new(cfg: Arc<Config>, cgroups: Arc<Cgroups>, exe: PathBuf, shutdown: Shutdown) -> Self {
        let usual = Usual {
            env: context_env(&cfg, Default::default()),
            workdir: defaults::WORKDIR.into(),
        };
        let zygote = (cfg.context_zygote && cgroups.tracks_processes())
            .then(|| Arc::new(Zygote::new(exe.clone(), usual)));
        Self {
            cfg,
            cgroups,
            exe,
            shutdown,
            zygote,
        }
    }

    /// Whether python contexts are forked (from the fork server) rather than executed.
    pub fn forks_python(&self) -> bool {
        self.zygote.is_some()
    }

    /// Starts the python fork server (at server start: the first context need not wait).
    pub async fn prepare(&self) {
        if let Some(z) = &self.zygote {
            z.prepare().await;
        }
    }

    /// Stops the python fork server (server shutdown).
    pub async fn stop(&self) {
        if let Some(z) = &self.zygote {
            z.stop().await;
        }
    }

    fn launch(&self, sandbox: &Sandbox, cwd: &str) -> Launch {
        let env = context_env(&self.cfg, sandbox.env_vars());
        Launch {
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
            argv: Vec::new(),
            delivery: crate::sandbox::isolation::CodeDelivery::Driver,
            env,
            cwd: cwd.to_string(),
            memory_mb: self.cfg.sandbox_memory_mb,
            shutdown: self.shutdown.clone(),
        }
    }

    fn language_of(sandbox: &Sandbox, requested: Option<&str>) -> NodeResult<Language> {
        let requested = requested.unwrap_or(defaults::LANGUAGE);
        Language::parse(requested)
            .filter(|l| sandbox.template.supports(*l))
            .ok_or_else(|| {
                NodeError::Invalid(format!(
                    "unsupported language '{requested}' for template {}",
                    sandbox.template.name
                ))
            })
    }

    /// A language's default context, made on first use.
    pub fn default_context(
        &self,
        sandbox: &Sandbox,
        language: Language,
    ) -> NodeResult<Arc<Context>> {
        let id = default_id(language);
        sandbox
            .contexts
            .get_or_insert(&id, self.cfg.max_contexts_per_sandbox, || {
                Context::new(id.clone(), language, defaults::WORKDIR.into(), true)
            })
            .map_err(|max| {
                NodeError::LimitReached(format!(
                    "this sandbox has at most {max} contexts; remove one first"
                ))
            })
    }

    /// Checks a run and starts it in its context: the entry is `queued` until the context
    /// is free. The task resolves with the results once the entry has its final state.
    pub fn start_cell(
        &self,
        sandbox: &Arc<Sandbox>,
        req: CodeRunRequest,
        default_timeout: u64,
        sink: Option<RecordSink>,
    ) -> NodeResult<(Arc<ProcessEntry>, JoinHandle<CellOutcome>)> {
        let explicit_cwd = req.run.workdir().is_some();
        let context = match req.context_id.as_deref() {
            Some(id) => {
                let c = sandbox.contexts.get(id).ok_or(NodeError::ContextNotFound)?;
                if let Some(asked) = req.run.language.as_deref() {
                    if Language::parse(asked) != Some(c.language) {
                        return Err(NodeError::Invalid(format!(
                            "context {id} runs {}, not '{asked}'",
                            c.language
                        )));
                    }
                }
                c
            }
            None => {
                let language = Self::language_of(sandbox, req.run.language.as_deref())?;
                self.default_context(sandbox, language)?
            }
        };
        let mut spec = req.run;
        spec.language = Some(context.language.as_str().into());
        let run = launch::check(
            spec,
            sandbox.template,
            default_timeout,
            self.cfg.max_timeout_secs,
        )?;
        let entry = Arc::new(ProcessEntry::new(
            ids::process_id(),
            ids::execution_id(),
            run.name.clone(),
            context.language,
            run.timeout_secs,
            sink,
            self.cfg.output_cap_bytes,
        ));
        let mut env = sandbox.env_vars();
        env.extend(run.env);
        let cwd = explicit_cwd.then_some(run.cwd);
        let job = Job {
            launch: self.launch(sandbox, &context.cwd),
            zygote: self.zygote.clone(),
            result_cap: result_cap(&self.cfg),
            code: run.code,
            env,
            cwd,
        };
        let task = tokio::spawn(run_in(context, entry.clone(), job));
        Ok((entry, task))
    }

    /// `POST /contexts`: a new context; its interpreter starts now.
    pub async fn create(
        &self,
        sandbox: &Arc<Sandbox>,
        req: CreateContextRequest,
    ) -> NodeResult<ContextInfo> {
        let language = Self::language_of(sandbox, req.language.as_deref())?;
        let cwd = req.cwd.unwrap_or_else(|| defaults::WORKDIR.into());
        if !cwd.starts_with('/') || cwd.contains('\0') {
            return Err(NodeError::Invalid("cwd must be an absolute path".into()));
        }
        let id = ids::context_id();
        let context = sandbox
            .contexts
            .get_or_insert(&id, self.cfg.max_contexts_per_sandbox, || {
                Context::new(id.clone(), language, cwd.clone(), false)
            })
            .map_err(|max| {
                NodeError::LimitReached(format!(
                    "this sandbox has at most {max} contexts; remove one first"
                ))
            })?;
        let mut slot = context.slot.lock().await;
        if let Err(e) = self.ensure_started(sandbox, &context, &mut slot).await {
            drop(slot);
            sandbox.contexts.remove(&id);
            return Err(NodeError::Invalid(e));
        }
        drop(slot);
        Ok(context.info())
    }

    async fn ensure_started(
        &self,
        sandbox: &Sandbox,
        context: &Context,
        slot: &mut Slot,
    ) -> Result<(), String> {
        if slot.process.is_some() {
            return Ok(());
        }
        self.start_with(sandbox, context, slot, None).await
    }

    async fn start_with(
        &self,
        sandbox: &Sandbox,
        context: &Context,
        slot: &mut Slot,
        preforked: Option<Preforked>,
    ) -> Result<(), String> {
        start(
            context,
            slot,
            self.launch(sandbox, &context.cwd),
            result_cap(&self.cfg),
            self.zygote.as_deref(),
            preforked,
        )
        .await
    }

    /// Forks a new sandbox's default python context as soon as its pid 1 exists, while the
    /// rest of the sandbox is made (`None`: it cannot be forked; it starts the usual way).
    pub fn prefork(
        &self,
        sandbox_id: &str,
        init_pid: i32,
        env: &[(String, String)],
    ) -> Option<JoinHandle<Result<Preforked, String>>> {
        let zygote = self.zygote.clone()?;
        if !self.cfg.warm_python_context || !driver::forkable_env(env) {
            return None;
        }
        let group = format!(
            "context.{}.{}",
            default_id(Language::Python),
            ids::process_id()
        );
        let (cgroups, sid) = (self.cgroups.clone(), sandbox_id.to_string());
        Some(tokio::spawn(async move {
            prefork(&zygote, &cgroups, &sid, init_pid, group).await
        }))
    }

    /// Starts a sandbox's default python context ahead of its first run (at create), from
    /// its fork made ahead when there is one.
    pub async fn warm(&self, sandbox: Arc<Sandbox>, language: Language) {
        let Ok(context) = self.default_context(&sandbox, language) else {
            return;
        };
        // The slot first: a run that comes meanwhile waits for this start.
        let mut slot = context.slot.lock().await;
        let preforked = match sandbox.take_prefork() {
            Some(handle) => handle.await.ok().and_then(Result::ok),
            None => None,
        };
        let started = match (&slot.process, preforked) {
            (Some(_), Some(p)) => {
                discard(&self.cgroups, &sandbox.id, p.group()).await;
                Ok(())
            }
            (Some(_), None) => Ok(()),
            (None, preforked) => {
                self.start_with(&sandbox, &context, &mut slot, preforked)
                    .await
            }
        };
        if let Err(e) = started {
            // A sandbox deleted right after its create takes its context down with it.
            if sandbox.status() != SandboxStatus::Deleted {
                warn!(sandbox = %sandbox.id, "could not warm the {language} context: {e}");
            }
        }
    }

    /// `POST /contexts/{id}/restart`: stops a running cell, then starts a new interpreter.
    pub async fn restart(&self, sandbox: &Arc<Sandbox>, id: &str) -> NodeResult<ContextInfo> {
        let context = sandbox.contexts.get(id).ok_or(NodeError::ContextNotFound)?;
        context.stop_current();
        let mut slot = context.slot.lock().await;
        if let Some(mut p) = slot.process.take() {
            p.kill().await;
        }
        slot.died = None;
        self.ensure_started(sandbox, &context, &mut slot)
            .await
            .map_err(NodeError::Invalid)?;
        drop(slot);
        Ok(context.info())
    }

    /// `DELETE /contexts/{id}`: stops its interpreter and forgets it.
    pub async fn remove(&self, sandbox: &Sandbox, id: &str) -> NodeResult<()> {
        let context = sandbox
            .contexts
            .remove(id)
            .ok_or(NodeError::ContextNotFound)?;
        context.stop_current();
        let mut slot = context.slot.lock().await;
        if let Some(mut p) = slot.process.take() {
            p.kill().await;
        }
        Ok(())
    }

    /// Stops interpreters idle for longer than `--context-idle-secs` (the next run starts
    /// one again, transparently).
    /// Whether the sandbox's default context of `language` has a live interpreter.
    pub fn default_is_running(&self, sandbox: &Sandbox, language: Language) -> bool {
        let Some(context) = sandbox.contexts.get(&default_id(language)) else {
            return false;
        };
        let Ok(mut slot) = context.slot.try_lock() else {
            return true; // running a cell
        };
        slot.process
            .as_mut()
            .is_some_and(|p| p.has_exited().is_none())
    }

    /// Has a sandbox's running default context of `language` run its driver's warm-up (for
    /// the warm pool; python only). False if it has no such context or the warm-up failed,
    /// in which case the context is stopped.
    pub async fn warm_up_default(&self, sandbox: &Sandbox, language: Language) -> bool {
        self.quiet_to_default(sandbox, language, Quiet::WarmUp, WARM_UP_TIMEOUT)
            .await
    }

    /// Gives a sandbox made ahead (the warm pool), and handed to a create with variables of
    /// its own, a default python context that has them as if it had started with them.
    /// False if it has no such context or the driver could not (the context is stopped).
    pub async fn give_env_to_default(
        &self,
        sandbox: &Sandbox,
        env_vars: BTreeMap<String, String>,
    ) -> bool {
        let env = context_env(&self.cfg, env_vars);
        self.quiet_to_default(
            sandbox,
            Language::Python,
            Quiet::TakeEnv(&env),
            TAKE_ENV_TIMEOUT,
        )
        .await
    }

    /// Has a sandbox's running default context of `language` carry out `command`; stops
    /// the context if it fails.
    async fn quiet_to_default(
        &self,
        sandbox: &Sandbox,
        language: Language,
        command: Quiet<'_>,
        within: Duration,
    ) -> bool {
        let Some(context) = sandbox.contexts.get(&default_id(language)) else {
            return false;
        };
        let mut slot = context.slot.lock().await;
        let Some(process) = slot.process.as_mut() else {
            return false;
        };
        if process.quiet(command, within).await {
            return true;
        }
        if let Some(mut p) = slot.process.take() {
            p.kill().await;
        }
        false
    }

    /// Starts the idle time of every context of a sandbox now (one made ahead in the warm
    /// pool, just handed out).
    pub fn touch(&self, sandbox: &Sandbox) {
        for context in sandbox.contexts.all() {
            if let Ok(mut slot) = context.slot.try_lock() {
                if let Some(p) = slot.process.as_mut() {
                    p.last_used = std::time::Instant::now();
                }
            }
        }
    }

    pub async fn stop_idle(&self, sandbox: &Sandbox) {
        let idle = Duration::from_secs(self.cfg.context_idle_secs);
        if idle.is_zero() {
            return;
        }
        for context in sandbox.contexts.all() {
            let Ok(mut slot) = context.slot.try_lock() else {
                continue; // running
            };
            if slot
                .process
                .as_ref()
                .is_some_and(|p| p.last_used.elapsed() >= idle)
            {
                if let Some(mut p) = slot.process.take() {
                    p.kill().await;
                }
                context.set_state(ContextState::Stopped);
            }
        }
    }
}

pub(super) async fn start(
    context: &Context,
    slot: &mut Slot,
    launch: Launch,
    result_cap: usize,
    zygote: Option<&Zygote>,
    preforked: Option<Preforked>,
) -> Result<(), String> {
    context.set_state(ContextState::Starting);
    let group = match &preforked {
        Some(p) => p.group().to_string(),
        None => format!("context.{}.{}", context.id, ids::process_id()),
    };
    match ContextProcess::start(
        context.language,
        launch,
        group,
        result_cap,
        zygote,
        preforked,
    )
    .await
    {
        Ok(p) => {
            slot.process = Some(p);
            context.activity().starts += 1;
            context.set_state(ContextState::Idle);
            Ok(())
        }
        Err(e) => {
            context.set_state(ContextState::Stopped);
            Err(e)
        }
    }
}

/// Most a run's results may weigh together (the driver drops what comes after).
fn result_cap(cfg: &Config) -> usize {
    cfg.output_cap_bytes.saturating_mul(4).max(1 << 20)
}

/// A context's environment: the sandbox's variables over the server's defaults, and the
/// driver's result limit.
fn context_env(cfg: &Config, sandbox_env: BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut env = launch::environment(sandbox_env, &Default::default());
    env.push(("SANDLOT_RESULT_LIMIT".into(), result_cap(cfg).to_string()));
    env
}
