//! The warm pool: a few `code-interpreter` sandboxes made ahead, each with its default python
//! context ready (with `--warm-python-context`, the default), so that a create takes one
//! instead of making one (about a millisecond instead of ~4, and a first run that finds its
//! interpreter already started).
//!
//! A pooled sandbox is made like any other (its id and uid chosen then), but it is in
//! neither the live map nor the store until a create takes it: nothing lists, expires or
//! idles it, and after a crash recovery sweeps it with the other leftovers. The create that
//! takes it writes its record (its timeout, its creation time: now) and makes it live.
//! Only a create that asks for nothing a pooled sandbox lacks takes one: the pooled
//! template, no internet access, no id of its own (a cluster's), and variables only where
//! python contexts are forked and a fork could start with them
//! ([`crate::contexts::driver::forkable_env`]: none that only an interpreter's start
//! reads). They are given to the pooled sandbox's context as it is taken, which makes them
//! its environment as if it had started with them (`os.environ`, `sys.path`, the time zone,
//! the home directory).
//!
//! The pool gives way: it is filled only once creates have stopped for a moment (so it never
//! competes with one for the CPU, as in a burst), never into the last free slot of
//! `--max-sandboxes`, and a create that finds no slot free evicts a pooled sandbox first.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sandlot_protocol::{Language, SandboxStatus};
use tracing::warn;

use super::lifecycle::until_none;
use super::local::LocalNode;
use super::{template, Sandbox};
use crate::contexts::driver::forkable_env;
use crate::ids;
use crate::node::{NodeError, SandboxSpec};
use crate::shutdown::Shutdown;
use crate::store::SandboxRecord;
use crate::time::unix_millis;

/// The template pooled sandboxes are made from.
const POOLED_TEMPLATE: &str = "code-interpreter";
/// How often an idle pool looks whether it should fill (a claim wakes it at once).
const FILL_CHECK: Duration = Duration::from_millis(250);
/// How long creates must have stopped before the pool fills: a burst's creates reach the
/// server a fraction of a millisecond apart, and a fill in a gap between two of them (a
/// claim ends before the next arrives) competes with all the rest for the CPU.
const FILL_QUIET: Duration = Duration::from_millis(10);

#[derive(Default)]
pub(super) struct WarmPool {
    ready: Mutex<Vec<Arc<Sandbox>>>,
    /// Creates in flight.
    creating: AtomicUsize,
    /// When the last create began or ended.
    last_create: Mutex<Option<Instant>>,
    /// Creates that took a pooled sandbox.
    taken: AtomicU64,
    /// Held while a pooled sandbox is being made: an eviction waits for it, so the slot that
    /// fill took is not missed.
    filling: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

impl WarmPool {
    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Sandbox>>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.ready().len()
    }

    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    fn note_create(&self) {
        *self.last_create.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// How long until creates will have stopped for [`FILL_QUIET`] (zero: they have).
    fn until_quiet(&self) -> Duration {
        let last = *self.last_create.lock().unwrap_or_else(|p| p.into_inner());
        last.map_or(Duration::ZERO, |at| FILL_QUIET.saturating_sub(at.elapsed()))
    }
}

/// Counts a create in flight while it lives; its end wakes the pool.
pub(super) struct Creating<'a>(&'a WarmPool);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.creating.fetch_sub(1, Ordering::SeqCst);
        self.0.note_create();
        self.0.wake.notify_one();
    }
}

impl LocalNode {
    fn pool_target(&self) -> usize {
        match self.cfg.node_name {
            Some(_) => 0, // a node's creates come with the control plane's ids
            None => usize::from(self.cfg.warm_pool),
        }
    }

    /// Waits (up to `within`) until no create is in flight.
    pub(super) async fn creates_done(&self, within: Duration) {
        until_none(&self.pool.creating, within).await
    }

    /// Notes a create in flight until the returned guard drops.
    pub(super) fn creating(&self) -> Creating<'_> {
        self.pool.creating.fetch_add(1, Ordering::SeqCst);
        self.pool.note_create();
        Creating(&self.pool)
    }

    /// A pooled sandbox for `spec`, made live with its record written; `None` when the
    /// create asks for something a pooled sandbox lacks or the pool is empty.
    pub(super) async fn claim(&self, spec: &SandboxSpec) -> Option<Arc<Sandbox>> {
        let env: Vec<(String, String)> = spec.env_vars.clone().into_iter().collect();
        let eligible = spec.id.is_none()
            && !spec.internet_access
            && spec.network.is_none()
            && (env.is_empty() || (self.contexts.forks_python() && forkable_env(&env)))
            && template::find(&spec.template).is_some_and(|t| t.name == POOLED_TEMPLATE);
        if !eligible {
            return None;
        }
        loop {
            let sandbox = self.pool.ready().pop()?;
            self.pool.wake.notify_one();
            if self.cfg.warm_python_context
                && !self.contexts.default_is_running(&sandbox, Language::Python)
            {
                // Its interpreter died while it waited (the fork server was restarted).
                self.destroy(&sandbox, false).await;
                continue;
            }
            if !env.is_empty() {
                *sandbox.env_vars.lock().unwrap_or_else(|p| p.into_inner()) = spec.env_vars.clone();
                if self.cfg.warm_python_context
                    && !self
                        .contexts
                        .give_env_to_default(&sandbox, spec.env_vars.clone())
                        .await
                {
                    // Made now instead, as if the pool were empty.
                    self.destroy(&sandbox, false).await;
                    return None;
                }
            }
            self.pool.taken.fetch_add(1, Ordering::Relaxed);
            return Some(sandbox);
        }
    }

    /// Makes a claimed sandbox live: its creation time, its timeout, its record (its
    /// variables were given to it by [`Self::claim`]).
    pub(super) fn adopt(
        &self,
        sandbox: &Arc<Sandbox>,
        spec: &SandboxSpec,
        expires_at_ms: Option<i64>,
    ) -> SandboxRecord {
        let now = SystemTime::now();
        *sandbox.created_at.lock().unwrap_or_else(|p| p.into_inner()) = now;
        {
            let mut st = sandbox.state();
            st.timeout_seconds = spec.timeout_seconds;
            st.expires_at = expires_at_ms.map(crate::time::from_unix_millis);
        }
        self.contexts.touch(sandbox);
        self.map_mut().insert(sandbox.id.clone(), sandbox.clone());
        SandboxRecord {
            id: sandbox.id.clone(),
            template: sandbox.template.name.into(),
            status: SandboxStatus::Running,
            uid: sandbox.uid,
            internet_access: false,
            network: None,
            env_vars: spec.env_vars.clone(),
            timeout_seconds: spec.timeout_seconds,
            expires_at_ms,
            created_at_ms: unix_millis(now),
            token_generation: 0,
            previous_token_until_ms: None,
        }
    }

    /// Frees a slot for a create that found none: a pooled sandbox goes. False: none was.
    pub(super) async fn evict_one(&self) -> bool {
        let _filled = self.pool.filling.lock().await;
        let Some(sandbox) = self.pool.ready().pop() else {
            return false;
        };
        self.destroy(&sandbox, false).await;
        true
    }

    /// Keeps the pool filled until shutdown (a task of its own, which the shutdown awaits
    /// before it stops the sandboxes: a fill in progress ends first, and its sandbox is
    /// then drained with the others).
    pub async fn keep_pool_filled(&self, shutdown: Shutdown) {
        if self.pool_target() == 0 {
            return;
        }
        loop {
            while self.should_fill() && !shutdown.is_requested() {
                if !self.fill_one().await {
                    break;
                }
            }
            tokio::select! {
                _ = shutdown.requested() => return,
                _ = self.pool.wake.notified() => {}
                _ = tokio::time::sleep(self.next_fill_check()) => {}
            }
        }
    }

    /// When to look again: as creates will have stopped long enough, else the usual check.
    fn next_fill_check(&self) -> Duration {
        match self.pool.until_quiet() {
            quiet if quiet.is_zero() => FILL_CHECK,
            quiet => quiet,
        }
    }

    fn should_fill(&self) -> bool {
        let headroom = {
            let uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
            uids.len() + 2 <= self.cfg.max_sandboxes
        };
        self.pool.creating.load(Ordering::SeqCst) == 0
            && self.pool.until_quiet().is_zero()
            && headroom
            && self.pool.len() < self.pool_target()
    }

    /// Makes one pooled sandbox and waits for its context; false if that failed.
    async fn fill_one(&self) -> bool {
        let _filling = self.pool.filling.lock().await;
        let Ok(uid) = self.reserve_uid() else {
            return false;
        };
        let template = template::find(POOLED_TEMPLATE).expect("a built-in template");
        let record = SandboxRecord {
            id: ids::sandbox_id(),
            template: template.name.into(),
            status: SandboxStatus::Running,
            uid,
            internet_access: false,
            network: None,
            env_vars: Default::default(),
            timeout_seconds: None,
            expires_at_ms: None,
            created_at_ms: unix_millis(SystemTime::now()),
            token_generation: 0,
            previous_token_until_ms: None,
        };
        let sandbox = match self.start(&record, true).await {
            Ok(sandbox) => sandbox,
            Err(e) => {
                if !matches!(e, NodeError::ShuttingDown) {
                    warn!("could not make a pooled sandbox: {e:?}");
                }
                self.layout.remove(&record.id);
                self.release_uid(uid);
                return false;
            }
        };
        // As a create would have it: its python context started if contexts start warm.
        if self.cfg.warm_python_context {
            self.contexts.warm(sandbox.clone(), Language::Python).await;
            // And its first run prepared: the pages and caches a first run fills are filled
            // now, while nothing waits (a first run took 7.3 ms instead of 10.3 here, one
            // sandbox every 150 ms).
            let ready = self.contexts.default_is_running(&sandbox, Language::Python)
                && self
                    .contexts
                    .warm_up_default(&sandbox, Language::Python)
                    .await;
            if !ready {
                self.destroy(&sandbox, false).await;
                return false;
            }
        }
        self.pool.ready().push(sandbox);
        true
    }

    /// Server shutdown: the pooled sandboxes go (they have no record to come back from).
    pub(super) async fn drain_pool(&self) {
        let all: Vec<_> = std::mem::take(&mut *self.pool.ready());
        for sandbox in all {
            self.destroy(&sandbox, false).await;
        }
    }
}
