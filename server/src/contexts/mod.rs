//! Execution contexts: long-lived interpreters in a sandbox whose state persists between
//! runs (python with IPython semantics, javascript, bash).
//!
//! A context is a driver process ([`process`]) speaking the driver protocol ([`driver`]);
//! each run in it is a cell with its own [`crate::exec::ProcessEntry`], so output caps,
//! streams, kills and timeouts work as for any process. Cells of one context run one at a
//! time (a context is one interpreter); contexts run side by side. The [`manager`] starts
//! contexts when first used (or at sandbox create, to be warm), restarts one that died
//! (the next run reports it, [`cell`]), and stops idle ones (the next run starts one
//! transparently). An interpreter is started by [`start`]: a python one is forked from the
//! fork server ([`zygote`]), the others are exec'd.

mod cell;
pub mod driver;
pub mod manager;
mod process;
mod replies;
mod start;
pub use start::Preforked;
pub mod zygote;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use indexmap::IndexMap;
use sandlot_protocol::{ContextInfo, ContextState, Language};

use crate::exec::{ProcessEntry, StopReason};
use crate::time::rfc3339_millis;
use process::ContextProcess;

/// What the runs of a context share: its interpreter, or why it is gone.
#[derive(Default)]
struct Slot {
    process: Option<ContextProcess>,
    /// The interpreter died (crash, out of memory, stuck): the next run restarts it and
    /// reports this reason instead of running.
    died: Option<String>,
}

#[derive(Debug, Clone)]
struct Activity {
    state: ContextState,
    last_activity: SystemTime,
    executions: u64,
    starts: u64,
}

/// One context of a sandbox.
pub struct Context {
    pub id: String,
    pub language: Language,
    pub cwd: String,
    /// Runs that name no context use it.
    pub default: bool,
    pub created_at: SystemTime,
    /// Held by the run in progress (and by a start): runs of a context queue here.
    slot: tokio::sync::Mutex<Slot>,
    activity: Mutex<Activity>,
    /// The cell running now, so a restart or removal can stop it.
    current: Mutex<Option<Arc<ProcessEntry>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("language", &self.language)
            .finish()
    }
}

impl Context {
    fn new(id: String, language: Language, cwd: String, default: bool) -> Self {
        let now = SystemTime::now();
        Self {
            id,
            language,
            cwd,
            default,
            created_at: now,
            slot: tokio::sync::Mutex::new(Slot::default()),
            activity: Mutex::new(Activity {
                state: ContextState::Stopped,
                last_activity: now,
                executions: 0,
                starts: 0,
            }),
            current: Mutex::new(None),
        }
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: ContextState) {
        let mut a = self.activity();
        a.state = state;
        a.last_activity = SystemTime::now();
    }

    fn set_current(&self, entry: Option<Arc<ProcessEntry>>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = entry;
    }

    /// Stops the cell running now, if any.
    fn stop_current(&self) {
        if let Some(entry) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            entry.request_stop(StopReason::Killed);
        }
    }

    pub fn info(&self) -> ContextInfo {
        let a = self.activity().clone();
        ContextInfo {
            id: self.id.clone(),
            language: self.language,
            cwd: self.cwd.clone(),
            default: self.default,
            state: a.state,
            execution_count: a.executions,
            starts: a.starts,
            created_at: Some(rfc3339_millis(self.created_at)),
            last_activity: Some(rfc3339_millis(a.last_activity)),
        }
    }
}

/// The contexts of one sandbox, in creation order.
#[derive(Debug, Default)]
pub struct ContextTable {
    map: Mutex<IndexMap<String, Arc<Context>>>,
}

impl ContextTable {
    fn map(&self) -> MutexGuard<'_, IndexMap<String, Arc<Context>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Context>> {
        self.map().get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Context>> {
        self.map().values().cloned().collect()
    }

    fn remove(&self, id: &str) -> Option<Arc<Context>> {
        self.map().shift_remove(id)
    }

    /// Adds `make()` under `id` unless it exists, within `max` contexts.
    fn get_or_insert(
        &self,
        id: &str,
        max: usize,
        make: impl FnOnce() -> Context,
    ) -> Result<Arc<Context>, usize> {
        let mut map = self.map();
        if let Some(c) = map.get(id) {
            return Ok(c.clone());
        }
        if map.len() >= max {
            return Err(max);
        }
        let c = Arc::new(make());
        map.insert(id.to_string(), c.clone());
        Ok(c)
    }
}

/// The id of a language's default context.
pub fn default_id(language: Language) -> String {
    format!("default-{}", language.as_str())
}
