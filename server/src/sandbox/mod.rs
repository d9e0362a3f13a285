//! Sandboxes on this host: the live sandbox, the local node that creates, pauses and kills
//! them ([`LocalNode`], the implementation of [`crate::node::Node`]), recovery after a
//! restart, the on-disk layout, templates, cgroups and isolation.

pub mod cgroup;
mod init_helper;
pub mod inspect;
pub mod isolation;
pub mod layout;
mod lifecycle;
mod local;
mod local_contexts;
mod pool;
mod recovery;
mod subtree_lock;
pub mod supervised;
pub mod template;
mod terminals;
mod uid_range;
pub mod volume;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sandlot_protocol::SandboxStatus;

use crate::exec::ProcessTable;
use crate::terminal::TerminalTable;
pub use local::LocalNode;
use template::TemplateSpec;

/// One live sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    pub template: &'static TemplateSpec,
    pub uid: u32,
    pub internet_access: bool,
    /// Its network when it has internet access (veth, addresses, egress rules).
    pub network: Option<Arc<crate::network::Attachment>>,
    /// When it was created (for one made ahead in the pool: when it was handed out).
    created_at: Mutex<SystemTime>,
    /// The sandbox's global environment (`env_vars` at create, `/env` later).
    env_vars: Mutex<BTreeMap<String, String>>,
    state: Mutex<SandboxState>,
    /// Processes running (or just ended) in it; finished records are in the store.
    pub processes: ProcessTable,
    /// Its execution contexts (interpreters that keep state between runs).
    pub contexts: crate::contexts::ContextTable,
    /// Its interactive terminals (running, and exited ones for a while).
    pub terminals: TerminalTable,
    /// File watches open on it (bounded: `crate::files::MAX_WATCHES_PER_SANDBOX`).
    pub watches: Arc<AtomicUsize>,
    /// Cancelled when the sandbox is destroyed; file watches end then.
    pub gone: tokio_util::sync::CancellationToken,
    /// Resolves once the `__sandbox-init` helper that waits for the sandbox's pid 1 is reaped.
    init_helper: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Its default python context, forked while the sandbox was made (taken by the warm-up).
    prefork: Mutex<Option<Prefork>>,
}

/// A default python context being forked ahead (`crate::contexts::manager::prefork`).
pub type Prefork = tokio::task::JoinHandle<Result<crate::contexts::Preforked, String>>;

#[derive(Debug, Clone)]
struct SandboxState {
    status: SandboxStatus,
    timeout_seconds: Option<u64>,
    expires_at: Option<SystemTime>,
    init_pid: i32,
    token_generation: u32,
    previous_token_until: Option<SystemTime>,
}

impl Sandbox {
    pub fn created_at(&self) -> SystemTime {
        *self.created_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The default python context forked ahead, once.
    pub fn take_prefork(&self) -> Option<Prefork> {
        self.prefork
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn state(&self) -> MutexGuard<'_, SandboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> SandboxStatus {
        self.state().status
    }

    pub fn init_pid(&self) -> i32 {
        self.state().init_pid
    }

    pub fn env_vars(&self) -> BTreeMap<String, String> {
        self.env_vars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
