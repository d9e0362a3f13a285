//! Linux isolation: the two helper sub-commands of the sandlotd binary.
//!
//! The multi-threaded tokio server never forks into sandbox code. It re-executes its own
//! binary as a single-threaded helper instead:
//!
//! * `sandlotd __sandbox-init` creates a sandbox: new mount, pid, net, ipc, uts and cgroup
//!   namespaces, a private root filesystem, and a tiny pid-1 that reaps zombies and lives as
//!   long as the sandbox does ([`init`]).
//! * `sandlotd __sandbox-exec <json>` runs one process in an existing sandbox: it joins the
//!   sandbox's cgroups and namespaces (setns through a pidfd), forks, drops to the sandbox's
//!   unprivileged uid with no capabilities, `no_new_privs` and a seccomp deny-list, and execs
//!   ([`exec`]).
//!
//! The configuration structs here are the only contract between the server and its helpers.

pub mod exec;
pub mod init;
mod rootfs;
mod seccomp;
mod sys;

use serde::{Deserialize, Serialize};

/// The namespaces a sandbox has of its own (and every process joins). No user namespace:
/// the helpers run as real root and drop to an unprivileged uid instead.
const NAMESPACES: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

/// Sub-command names of the helpers (argv[1]).
pub const INIT_SUBCOMMAND: &str = "__sandbox-init";
pub const EXEC_SUBCOMMAND: &str = "__sandbox-exec";

/// What `__sandbox-init` needs, sent as JSON on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    /// Host directory (empty) on which the sandbox's root tmpfs is mounted inside its own
    /// mount namespace.
    pub root_dir: String,
    /// Host directory bind-mounted as `/workspace`.
    pub workspace_dir: String,
    /// Host paths bind-mounted read-only at the same place inside (e.g. `/usr`).
    pub ro_binds: Vec<String>,
    /// Host paths under `/etc` exposed read-only (missing ones are skipped).
    pub etc_binds: Vec<String>,
    /// Files written into the sandbox's `/etc` (name, content).
    pub etc_files: Vec<(String, String)>,
    pub hostname: String,
    /// Size of the sandbox's `/tmp` (and `/dev/shm`) tmpfs.
    pub tmp_size_mb: u64,
    /// `cgroup.procs` files the helper writes its own pid to before creating namespaces.
    pub cgroup_procs: Vec<String>,
}

/// What `__sandbox-exec` needs, passed as one JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecConfig {
    /// Host pid of the sandbox's pid 1.
    pub init_pid: i32,
    pub cgroup_procs: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// How the program text (read from the helper's stdin) reaches the program.
    pub code: CodeDelivery,
    pub rlimits: Rlimits,
}

/// The program text is read from the helper's stdin into a memfd, then handed over either as
/// fd 3 (`/proc/self/fd/3` in argv) or as the program's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeDelivery {
    Fd3,
    Stdin,
}

/// Per-process resource limits (a backstop under the cgroup limits).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rlimits {
    pub nofile: u64,
    pub nproc: u64,
    pub fsize_bytes: u64,
    /// Address-space limit; 0 = none (cgroups bound memory where they exist).
    pub as_bytes: u64,
}
