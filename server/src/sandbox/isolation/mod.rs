//! Linux isolation: the two helper sub-commands of the sandlotd binary.
//!
//! The multi-threaded tokio server never forks into sandbox code. It re-executes its own
//! binary as a single-threaded helper instead:
//!
//! * `sandlotd __sandbox-init` creates a sandbox: new mount, pid, net, ipc, uts and cgroup
//!   namespaces, a private root filesystem, and a tiny pid-1 that reaps zombies and lives as
//!   long as the sandbox does ([`init`]).
//! * `sandlotd __sandbox-exec` runs one process in an existing sandbox: it joins the
//!   sandbox's cgroups and namespaces (setns through a pidfd), forks, drops to the sandbox's
//!   unprivileged uid with no capabilities, `no_new_privs` and a seccomp allow-list, and
//!   execs ([`exec`]).
//! * `sandlotd __sandbox-pty` starts a shell on a pseudo-terminal in an existing sandbox the
//!   same way, and hands the terminal's master to the server over a Unix socket ([`pty`]).
//!
//! The configuration structs here are the only contract between the server and its helpers.
//! Both travel on the helper's stdin, never in its argv: `/proc/<pid>/cmdline` is readable
//! by every user of the host, and an exec config carries the process's environment
//! (tokens, keys).

pub mod exec;
pub mod fdpass;
pub mod init;
pub mod pty;
mod rootfs;
mod seccomp;
mod sys;
mod syscalls;

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
pub const PTY_SUBCOMMAND: &str = "__sandbox-pty";

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
    /// `tasks` files of the sandbox's v1 cgroups: the helper moves its own (only) thread
    /// there before it creates anything (`sandbox::cgroup::InitGroups` says why not
    /// `cgroup.procs`).
    pub cgroup_tasks: Vec<String>,
    /// The sandbox's v2 cgroup directory: pid 1 is created in it.
    pub cgroup_v2: Option<String>,
}

/// What `__sandbox-exec` needs, sent on its stdin ahead of the program text (see
/// [`exec_input`]).
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

/// What `__sandbox-pty` needs, sent as JSON on its stdin (its stdout is the Unix socket the
/// terminal's master comes back on).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PtyConfig {
    /// Host pid of the sandbox's pid 1.
    pub init_pid: i32,
    pub cgroup_procs: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    /// The shell to run; `None` tries `/bin/bash`, then `/bin/sh`.
    pub shell: Option<String>,
    pub env: Vec<(String, String)>,
    pub rlimits: Rlimits,
    pub cols: u16,
    pub rows: u16,
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

/// The `__sandbox-exec` helper's stdin: the config's JSON length in decimal and a newline,
/// the JSON, then the program text to the end.
pub fn exec_input(cfg: &ExecConfig, code: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(cfg).expect("exec config serialises");
    let mut input = format!("{}\n", json.len()).into_bytes();
    input.reserve(json.len() + code.len());
    input.extend_from_slice(&json);
    input.extend_from_slice(code);
    input
}

/// Splits what [`exec_input`] wrote into the config and the program text.
pub fn split_exec_input(input: &[u8]) -> Result<(ExecConfig, &[u8]), String> {
    let newline = input
        .iter()
        .take(20)
        .position(|&b| b == b'\n')
        .ok_or("no length line")?;
    let len: usize = std::str::from_utf8(&input[..newline])
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or("bad length line")?;
    let json = input
        .get(newline + 1..newline + 1 + len)
        .ok_or("config cut short")?;
    let cfg = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok((cfg, &input[newline + 1 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exec_input_round_trips_config_and_program() {
        let cfg = ExecConfig {
            init_pid: 42,
            cgroup_procs: vec!["/sys/fs/cgroup/x/cgroup.procs".into()],
            uid: 100_000,
            gid: 100_000,
            cwd: "/workspace".into(),
            argv: vec!["/bin/bash".into()],
            env: vec![("TOKEN".into(), "s3cr3t\n{}".into())],
            code: CodeDelivery::Stdin,
            rlimits: Rlimits {
                nofile: 1024,
                nproc: 256,
                fsize_bytes: 1 << 30,
                as_bytes: 0,
            },
        };
        let input = exec_input(&cfg, b"print('hi')\n");
        let (back, code) = split_exec_input(&input).unwrap();
        assert_eq!(code, b"print('hi')\n");
        assert_eq!(back.env, cfg.env);
        assert_eq!(back.init_pid, 42);
        assert!(split_exec_input(b"").is_err());
        assert!(split_exec_input(b"99\n{}").is_err());
    }
}
