//! The node interface: the only way the HTTP layer reaches sandboxes.
//!
//! A node runs sandboxes and the processes in them. Today the one implementation is
//! [`crate::sandbox::LocalNode`] (this host); a cluster's control plane will implement the
//! same trait by calling a remote node's internal API, so handlers never learn where a
//! sandbox lives. Everything crossing this interface is owned data (wire records, event
//! streams), never a reference into a node's tables. `docs/architecture.md` draws the layers.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::Stream;
use sandlot_protocol::{
    CodeRunRequest, ContextInfo, CreateContextRequest, CreateTerminalRequest, ExecutionError,
    ExitEvent, Language, NetworkRules, NetworkUsage, ProcessInfo, ProcessStatus, RichResult,
    RunSpec, SandboxStatus, TerminalInfo,
};

use crate::exec::events::{Gap, OutputEvent};
use crate::files::SandboxFs;
use crate::sandbox::template::TemplateSpec;

/// Why a node operation was refused.
#[derive(Debug)]
pub enum NodeError {
    SandboxNotFound,
    ProcessNotFound,
    ContextNotFound,
    TerminalNotFound,
    /// The terminal's shell has exited (with this code); it takes no more input.
    TerminalExited(Option<i32>),
    TemplateNotFound(String),
    Invalid(String),
    /// A required request field is absent.
    MissingField(&'static str),
    /// The operation conflicts with the target's state (e.g. removing a running process).
    Conflict(String),
    LimitReached(String),
    Paused,
    /// Nothing answers on a port inside the sandbox.
    PortUnreachable(String),
    /// The data disk is full: nothing was written; it works again once space is freed.
    StorageFull(String),
    /// Briefly unable to serve (the store stayed locked through its retries); try again.
    Unavailable(String),
    /// The server is stopping: it starts nothing more.
    ShuttingDown,
    /// A fault of ours; the message goes to the log, never to the client.
    Internal(String),
}

pub type NodeResult<T> = Result<T, NodeError>;

impl From<crate::store::StoreError> for NodeError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreErrorKind;
        match e.kind() {
            StoreErrorKind::Full => Self::StorageFull(format!("store: {e}")),
            StoreErrorKind::Busy => Self::Unavailable(format!("store: {e}")),
            StoreErrorKind::Other => Self::Internal(format!("store: {e}")),
        }
    }
}

impl NodeError {
    /// A file operation of the node failed: a full disk (ENOSPC, EDQUOT) is
    /// [`NodeError::StorageFull`], anything else a fault of ours.
    pub fn io(what: &str, e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => Self::StorageFull(format!("{what}: {e}")),
            _ => Self::Internal(format!("{what}: {e}")),
        }
    }
}

/// What a new sandbox should be.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// The id a cluster's control plane chose; standalone: a new one.
    pub id: Option<String>,
    pub template: String,
    pub timeout_seconds: Option<u64>,
    pub internet_access: bool,
    /// Egress rules (only with `internet_access`).
    pub network: Option<NetworkRules>,
    pub env_vars: BTreeMap<String, String>,
}

/// A snapshot of one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub id: String,
    pub template: &'static TemplateSpec,
    pub status: SandboxStatus,
    pub internet_access: bool,
    /// Its egress rules when it has a network (none: no internet access).
    pub network: Option<NetworkRules>,
    pub timeout_seconds: Option<u64>,
    pub expires_at: Option<SystemTime>,
    pub created_at: SystemTime,
    /// The agent base URL clients use for this sandbox.
    pub public_host: String,
    pub node_id: String,
    /// Agent tokens must carry this generation, or the one before it until
    /// `previous_token_until`.
    pub token_generation: u32,
    pub previous_token_until: Option<SystemTime>,
}

impl SandboxInfo {
    /// Whether a token of `generation` still opens this sandbox.
    pub fn accepts_token(&self, generation: u32) -> bool {
        generation == self.token_generation
            || (generation.saturating_add(1) == self.token_generation
                && self
                    .previous_token_until
                    .is_some_and(|until| SystemTime::now() < until))
    }
}

/// What a sandbox uses now and what runs in it (`None` where this host cannot say).
#[derive(Debug, Clone, Default)]
pub struct SandboxUsage {
    pub cpu_seconds: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: u64,
    pub disk_bytes: Option<u64>,
    /// The workspace quota (0: none).
    pub disk_limit_bytes: u64,
    pub oom_kills: u64,
    /// Operating-system processes in it.
    pub processes: Vec<sandlot_protocol::SystemProcess>,
    /// Processes started through the API that are running now.
    pub active_executions: u64,
    pub network: NetworkUsage,
}

/// Which process records a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ProcessFilter {
    pub statuses: Option<Vec<ProcessStatus>>,
    pub name: Option<String>,
    /// Without output, `stdout`/`stderr` are empty (sizes and flags stay): cheap polling.
    pub without_output: bool,
}

impl ProcessFilter {
    pub fn keeps(&self, status: ProcessStatus, name: Option<&str>) -> bool {
        self.statuses.as_ref().is_none_or(|s| s.contains(&status))
            && self.name.as_deref().is_none_or(|n| name == Some(n))
    }
}

/// A run of code that ended: its process record plus what a context run returns.
#[derive(Debug, Clone)]
pub struct CodeRun {
    pub info: ProcessInfo,
    pub language: Language,
    pub results: Vec<RichResult>,
    /// The exception the code raised (or why a context run did not happen).
    pub error: Option<ExecutionError>,
    /// `None` for a fresh process.
    pub context_id: Option<String>,
    pub execution_count: Option<u64>,
}

/// What a follower of a process's output sees next.
#[derive(Debug)]
pub enum Followed {
    /// Events that were dropped to stay within the output cap (or are no longer kept).
    Gap(Gap),
    Output(OutputEvent),
    /// The process ended; nothing follows.
    Exit(ExitEvent),
    /// Nothing happened for a keepalive period.
    Idle,
}

/// A process's output, live, up to its exit.
pub type ProcessEvents = Pin<Box<dyn Stream<Item = Followed> + Send>>;

/// What a follower of a terminal's output sees next.
#[derive(Debug)]
pub enum TerminalFollowed {
    /// Output events `from_seq..=to_seq` left the replay ring before this reader saw them.
    Gap { from_seq: u64, to_seq: u64 },
    /// Bytes the terminal wrote (split only at UTF-8 character boundaries).
    Output {
        seq: u64,
        data: std::sync::Arc<[u8]>,
    },
    /// The shell exited; nothing follows.
    Exit { seq: u64, code: Option<i32> },
    /// Nothing happened for a keepalive period.
    Idle,
}

/// A terminal's output, live, up to its exit. While it is held, a client counts as attached.
pub type TerminalEvents = Pin<Box<dyn Stream<Item = TerminalFollowed> + Send>>;

#[async_trait]
pub trait Node: TerminalNode + ContextNode + Send + Sync + 'static {
    async fn create_sandbox(&self, spec: SandboxSpec) -> NodeResult<SandboxInfo>;
    fn sandbox(&self, id: &str) -> NodeResult<SandboxInfo>;
    /// Every sandbox, oldest first.
    fn sandboxes(&self) -> Vec<SandboxInfo>;
    /// Sandboxes made ahead and ready for a create to take (the warm pool).
    fn warm_pool_ready(&self) -> usize;
    /// Creates that took a sandbox from the warm pool since the server started.
    fn warm_pool_taken(&self) -> u64;
    /// Kills a sandbox and everything in it, and forgets it.
    async fn kill_sandbox(&self, id: &str) -> NodeResult<()>;
    async fn pause_sandbox(&self, id: &str) -> NodeResult<()>;
    async fn resume_sandbox(&self, id: &str) -> NodeResult<()>;
    /// Sets the sandbox to die `seconds` from now.
    fn set_sandbox_timeout(&self, id: &str, seconds: u64) -> NodeResult<SandboxInfo>;
    /// Starts a new token generation; earlier tokens stop working after `grace`.
    fn rotate_sandbox_token(&self, id: &str, grace: std::time::Duration)
        -> NodeResult<SandboxInfo>;
    /// Replaces a sandbox's egress rules; connections opened from now on follow them.
    async fn set_sandbox_network(&self, id: &str, rules: NetworkRules) -> NodeResult<SandboxInfo>;
    /// A connection to `port` on the sandbox's own loopback (the port proxy's way in).
    async fn connect_port(&self, id: &str, port: u16) -> NodeResult<tokio::net::TcpStream>;
    fn sandbox_env(&self, id: &str) -> NodeResult<BTreeMap<String, String>>;
    /// Replaces (`merge == false`) or merges into the sandbox's global environment.
    fn set_sandbox_env(
        &self,
        id: &str,
        vars: BTreeMap<String, String>,
        merge: bool,
    ) -> NodeResult<BTreeMap<String, String>>;

    /// Runs code to completion; nothing is recorded. Dropping the future stops the run.
    async fn run(&self, sandbox_id: &str, spec: RunSpec) -> NodeResult<(ProcessInfo, Language)>;
    /// Starts a recorded process (listed, stored, kept after it ends) and returns at once.
    fn start_process(
        &self,
        sandbox_id: &str,
        spec: RunSpec,
        default_timeout: u64,
    ) -> NodeResult<ProcessInfo>;
    /// Follows a recorded process's output from after event `after`.
    fn follow_process(
        &self,
        sandbox_id: &str,
        process_id: &str,
        after: u64,
    ) -> NodeResult<ProcessEvents>;
    /// Resolves with the process's record once it has ended.
    async fn wait_process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo>;
    fn process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo>;
    /// Recorded processes in start order.
    fn processes(
        &self,
        sandbox_id: &str,
        filter: &ProcessFilter,
    ) -> NodeResult<Vec<Box<serde_json::value::RawValue>>>;
    /// Kills a process's tree; resolves once it has ended.
    /// What the sandbox uses now and what runs in it.
    async fn sandbox_usage(&self, id: &str) -> NodeResult<SandboxUsage>;
    async fn kill_process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo>;
    /// Forgets a finished process's record.
    fn remove_process(&self, sandbox_id: &str, process_id: &str) -> NodeResult<ProcessInfo>;

    /// The sandbox's files as its own processes see them (`crate::files`): a handle that
    /// keeps its root open, acts as its user, and tells when the sandbox is gone.
    fn sandbox_fs(&self, sandbox_id: &str) -> NodeResult<SandboxFs>;
}

/// Interactive terminals, the part of [`Node`] that drives shells on PTYs.
#[async_trait]
pub trait TerminalNode: Send + Sync {
    /// Starts a shell on a new PTY in the sandbox.
    async fn open_terminal(
        &self,
        sandbox_id: &str,
        spec: CreateTerminalRequest,
    ) -> NodeResult<TerminalInfo>;
    /// The sandbox's terminals in start order (exited ones while they are kept).
    fn terminals(&self, sandbox_id: &str) -> NodeResult<Vec<TerminalInfo>>;
    fn terminal(&self, sandbox_id: &str, terminal_id: &str) -> NodeResult<TerminalInfo>;
    /// Types bytes into a terminal.
    async fn terminal_input(
        &self,
        sandbox_id: &str,
        terminal_id: &str,
        data: Vec<u8>,
    ) -> NodeResult<()>;
    fn resize_terminal(
        &self,
        sandbox_id: &str,
        terminal_id: &str,
        cols: u16,
        rows: u16,
    ) -> NodeResult<TerminalInfo>;
    /// Kills a terminal's whole session; resolves once it has exited.
    async fn kill_terminal(&self, sandbox_id: &str, terminal_id: &str) -> NodeResult<TerminalInfo>;
    /// Follows a terminal's output from after event `after`.
    fn follow_terminal(
        &self,
        sandbox_id: &str,
        terminal_id: &str,
        after: u64,
    ) -> NodeResult<TerminalEvents>;
}

/// Execution contexts, the part of [`Node`] that runs code in interpreters that keep state
/// between runs (`crate::contexts`).
#[async_trait]
pub trait ContextNode: Send + Sync {
    /// Runs code to completion in its context (or, with `fresh`, a new process). Dropping
    /// the future interrupts the run.
    async fn run_code(
        &self,
        sandbox_id: &str,
        req: CodeRunRequest,
        default_timeout: u64,
    ) -> NodeResult<CodeRun>;
    /// Starts code in its context (or a fresh process) and follows it. `recorded` runs are
    /// listed and stored like background processes and run on without a follower; the
    /// others stop when the stream is dropped.
    fn start_code_followed(
        &self,
        sandbox_id: &str,
        req: CodeRunRequest,
        default_timeout: u64,
        recorded: bool,
    ) -> NodeResult<(ProcessInfo, ProcessEvents)>;
    async fn create_context(
        &self,
        sandbox_id: &str,
        req: CreateContextRequest,
    ) -> NodeResult<ContextInfo>;
    fn contexts(&self, sandbox_id: &str) -> NodeResult<Vec<ContextInfo>>;
    async fn restart_context(&self, sandbox_id: &str, context_id: &str) -> NodeResult<ContextInfo>;
    async fn remove_context(&self, sandbox_id: &str, context_id: &str) -> NodeResult<()>;
}
