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
//! * `sandlotd __sandbox-spawner` is started once per server and forks each sandbox's
//!   `__sandbox-init` from itself, which saves re-executing the binary per create
//!   ([`spawner`]).
//! * `sandlotd __sandbox-zygote` starts the python fork server that contexts are forked
//!   from, in a mount namespace of its own ([`zygote`]); each fork confines itself with the
//!   steps of `__sandbox-exec` and the same seccomp programs ([`seccomp_programs`]).
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
pub mod spawner;
mod sys;
mod syscalls;
pub mod zygote;

use serde::{Deserialize, Serialize};

/// The namespaces a sandbox has of its own (and every process joins), besides its user
/// namespace ([`UserNamespace`]), which is joined only where the sandbox has one.
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
pub const ZYGOTE_SUBCOMMAND: &str = "__sandbox-zygote";
pub const SPAWNER_SUBCOMMAND: &str = "__sandbox-spawner";

/// One classic BPF instruction: `(code, jt, jf, k)`.
pub type BpfInstruction = (u16, u8, u8, u32);

/// The seccomp programs every sandboxed process runs under ([`seccomp`]), in installation
/// order, as raw BPF instructions `(code, jt, jf, k)`: the python fork server installs them
/// in the contexts it forks, so a forked context is filtered exactly as an exec'd one.
pub fn seccomp_programs() -> std::io::Result<Vec<Vec<BpfInstruction>>> {
    Ok(vec![seccomp::filter()?.instructions().collect()])
}

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
    /// The sandbox's user namespace; `None` makes none (pid 1 is then real root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_namespace: Option<UserNamespace>,
}

/// A sandbox's user namespace maps two ids: root inside is `root` outside (a host id of
/// this sandbox's alone, used by nothing else), and the sandbox's user is its own host id
/// inside and out (files in `/workspace` keep their owner). Every other id is unmapped. So
/// pid 1, and the helpers once they joined, hold capabilities over the sandbox's namespaces
/// only, never over the host.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct UserNamespace {
    pub root: u32,
    pub user: u32,
}

impl UserNamespace {
    /// The `uid_map` (and `gid_map`: the numbers are the same) of the namespace.
    pub fn id_map(&self) -> String {
        format!("0 {} 1\n{} {} 1\n", self.root, self.user, self.user)
    }
}

/// Whether the process `init_pid` (a sandbox's pid 1) has a user namespace of its own: a
/// sandbox made before user namespaces, or with `--user-namespace false`, has not.
pub fn has_own_user_namespace(init_pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(format!("/proc/{init_pid}/ns/user")),
        std::fs::metadata("/proc/self/ns/user"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs.ino() != ours.ino() || theirs.dev() != ours.dev(),
        _ => false,
    }
}

/// What `__sandbox-exec` needs, sent on its stdin ahead of the program text (see
/// [`exec_input`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecConfig {
    /// Host pid of the sandbox's pid 1.
    pub init_pid: i32,
    /// The sandbox's v1 `tasks` files and the process's v2 `cgroup.procs`
    /// (`Cgroups::create_process`; `exec::join_sandbox` says how each is joined).
    pub cgroup_procs: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// How the program text (read from the helper's stdin) reaches the program.
    pub code: CodeDelivery,
    pub rlimits: Rlimits,
    /// With [`CodeDelivery::Driver`]: the program's length, so the helper reads exactly it
    /// and leaves the rest of its stdin to the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_len: Option<u64>,
    /// The sandbox has a user namespace of its own, which the process joins too.
    #[serde(default)]
    pub user_ns: bool,
}

/// What `__sandbox-pty` needs, sent as JSON on its stdin (its stdout is the Unix socket the
/// terminal's master comes back on).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PtyConfig {
    /// Host pid of the sandbox's pid 1.
    pub init_pid: i32,
    /// The sandbox's v1 `tasks` files and the process's v2 `cgroup.procs`
    /// (`Cgroups::create_process`; `exec::join_sandbox` says how each is joined).
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
    /// The sandbox has a user namespace of its own, which the shell joins too.
    #[serde(default)]
    pub user_ns: bool,
}

/// The program text is read from the helper's stdin into a memfd, then handed over either as
/// fd 3 (`/proc/self/fd/3` in argv) or as the program's stdin.
///
/// `Driver` is a context's long-lived driver: the program is fd 3, the rest of the helper's
/// stdin stays the program's stdin (the server's commands), and the helper's fd 3 (a pipe
/// the server reads: the driver's replies) becomes the program's fd 4. The helper first
/// writes `{"type":"spawned","pid":N}` there: N is the program's host pid, whose process
/// group the server interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeDelivery {
    Fd3,
    Stdin,
    Driver,
}

/// The driver's reply channel: the helper's fd, and the program's.
pub const DRIVER_REPLY_FD_HELPER: libc::c_int = 3;
pub const DRIVER_REPLY_FD: libc::c_int = 4;

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

/// Reads what [`exec_input`] wrote from `input` without reading past the program when the
/// config gives its length (a driver's commands follow it); otherwise to the end.
pub fn read_exec_input(input: &mut impl std::io::Read) -> Result<(ExecConfig, Vec<u8>), String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        input.read_exact(&mut byte).map_err(|e| e.to_string())?;
        if byte[0] == b'\n' {
            break;
        }
        if line.len() >= 20 {
            return Err("bad length line".into());
        }
        line.push(byte[0]);
    }
    let len: usize = std::str::from_utf8(&line)
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or("bad length line")?;
    let mut json = vec![0u8; len];
    input
        .read_exact(&mut json)
        .map_err(|_| "config cut short")?;
    let cfg: ExecConfig = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    let mut code = Vec::new();
    match cfg.program_len {
        Some(n) => {
            code.resize(n as usize, 0);
            input
                .read_exact(&mut code)
                .map_err(|_| "program cut short")?;
        }
        None => {
            input.read_to_end(&mut code).map_err(|e| e.to_string())?;
        }
    }
    Ok((cfg, code))
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
            program_len: None,
            user_ns: true,
        };
        let input = exec_input(&cfg, b"print('hi')\n");
        let (back, code) = read_exec_input(&mut &input[..]).unwrap();
        assert_eq!(code, b"print('hi')\n");
        assert_eq!(back.env, cfg.env);
        assert_eq!(back.init_pid, 42);
        let driver = ExecConfig {
            program_len: Some(5),
            ..cfg.clone()
        };
        let mut input = exec_input(&driver, b"12345");
        input.extend_from_slice(b"commands");
        let mut reader = &input[..];
        let (_, code) = read_exec_input(&mut reader).unwrap();
        assert_eq!(code, b"12345");
        assert_eq!(reader, b"commands", "the rest stays for the driver");
        assert!(read_exec_input(&mut &b""[..]).is_err());
        assert!(read_exec_input(&mut &b"99\n{}"[..]).is_err());
    }
}
