//! The python fork server ("zygote"): one pre-initialised interpreter per server that
//! python contexts are forked from, so a context is ready in milliseconds instead of the
//! ~250 ms IPython takes to import.
//!
//! It runs `drivers/python.py` (imports, the shell, a warm-up run) followed by
//! `drivers/zygote_context.py` (what a fork does to become a context) and
//! `drivers/zygote.py` (the fork loop), started through `sandlotd __sandbox-zygote`
//! (`sandbox::isolation::zygote`), which gives it a mount namespace with a private `/tmp`.
//! The server talks to it over a `SOCK_SEQPACKET` socket pair: one message per context,
//! carrying the sandbox's pid 1, the context's four pipes and its tracking cgroup; the reply
//! is the host pid of the fork, which the zygote makes straight into the sandbox's pid
//! namespace and that cgroup (`clone3` with `CLONE_INTO_CGROUP`). The fork reads
//! its configuration (cgroups, uid, directory, environment, limits) from its own command
//! pipe, so the zygote never holds a sandbox's data, confines itself with the exec helper's
//! steps and seccomp programs, and becomes the driver. The zygote is the fork's parent, as
//! the exec helper is an exec'd driver's: it reports each fork's exit status, which reaches
//! the context through [`Forked::exit`]. `docs/architecture.md` walks through
//! the steps; `tests/contexts_zygote.rs` checks that a forked context cannot be told apart
//! from an exec'd one.
//!
//! The zygote starts with the server (in the background) and again on demand if it dies.
//! While it cannot serve (starting failed, or it died mid-request), contexts start through
//! the exec helper as before, only slower.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::driver;
use crate::sandbox::isolation::fdpass::seqpacket_pair;
use crate::sandbox::isolation::zygote::ZygoteConfig;
use crate::sandbox::isolation::{seccomp_programs, ZYGOTE_SUBCOMMAND};
use crate::sandbox::supervised::{send_message, Connection, Supervised};

/// How long the zygote may take to import IPython and say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one fork may take before the zygote counts as stuck.
const FORK_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Zygote {
    exe: PathBuf,
    usual: Usual,
    inner: tokio::sync::Mutex<Inner>,
}

/// What most contexts start with: the environment of a sandbox that sets no variables of
/// its own, and the default working directory. The zygote takes them on before it forks, so
/// that such a context's start changes neither (every value it would compare or set is a
/// page it copies).
#[derive(Debug, Clone)]
pub struct Usual {
    pub env: Vec<(String, String)>,
    pub workdir: String,
}

struct Inner {
    zygote: Supervised<Conn>,
    /// The last fork request's number.
    next: u64,
}

/// A running zygote.
struct Conn {
    sock: Arc<AsyncFd<OwnedFd>>,
    child: Child,
    /// Answers to fork requests, in order (the reader task sorts them from exit reports).
    answers: mpsc::UnboundedReceiver<serde_json::Value>,
    exits: Arc<Mutex<ExitBook>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Connection for Conn {
    fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
        let _ = self.child.start_kill();
    }
}

/// Exit statuses of forks, by host pid, on their way to the contexts.
#[derive(Default)]
struct ExitBook {
    waiting: HashMap<i32, oneshot::Sender<i32>>,
    /// Reported before the fork's answer was read (a fork that failed at once).
    early: HashMap<i32, i32>,
}

/// A forked context as the zygote reported it.
#[derive(Debug)]
pub struct Forked {
    pub pid: i32,
    /// Its exit status (128 + signal when killed); an error once the zygote is gone without
    /// saying (its forks die with it).
    pub exit: oneshot::Receiver<i32>,
}

impl Zygote {
    pub fn new(exe: PathBuf, usual: Usual) -> Self {
        Self {
            exe,
            usual,
            inner: tokio::sync::Mutex::new(Inner {
                zygote: Supervised::new("python fork server"),
                next: 0,
            }),
        }
    }

    /// Starts the zygote unless it runs (at server start, so the first context need not
    /// wait for it).
    pub async fn prepare(&self) {
        let mut inner = self.inner.lock().await;
        let _ = self.ensure(&mut inner).await;
    }

    /// Forks a context into the sandbox whose pid 1 has host pid `init_pid`, with `fds` as
    /// its command pipe, stdout, stderr and reply pipe (the fork's ends), and, fifth if
    /// given, the cgroup (v2) directory to make it in. An error means: use the exec helper.
    pub async fn fork(&self, init_pid: i32, fds: &[RawFd]) -> Result<Forked, String> {
        let mut inner = self.inner.lock().await;
        inner.next += 1;
        let n = inner.next;
        let conn = self.ensure(&mut inner).await?;
        match tokio::time::timeout(FORK_TIMEOUT, conn.fork(n, init_pid, fds)).await {
            Ok(Ok(forked)) => Ok(forked),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => "no answer within 5 s".into(),
                };
                // A refusal (the sandbox just went) is an answer; anything else is a fault.
                if !why.starts_with("refused") {
                    warn!("python fork server failed ({why}); restarting it");
                    inner.zygote.forget();
                }
                Err(why)
            }
        }
    }

    /// Stops the zygote (server shutdown). Contexts forked from it live on until their
    /// sandboxes go.
    pub async fn stop(&self) {
        self.inner.lock().await.zygote.stop().await;
    }

    async fn ensure<'a>(&self, inner: &'a mut Inner) -> Result<&'a mut Conn, String> {
        let zygote = &mut inner.zygote;
        if zygote.alive() {
            return Ok(zygote.conn());
        }
        if !zygote.may_start() {
            return Err("the python fork server is not available".into());
        }
        let started = Instant::now();
        match tokio::time::timeout(START_TIMEOUT, self.start()).await {
            Ok(Ok(conn)) => {
                info!(
                    "python fork server ready in {} ms",
                    started.elapsed().as_millis()
                );
                Ok(zygote.started(conn))
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => format!("not ready within {} s", START_TIMEOUT.as_secs()),
                };
                warn!("python fork server did not start ({why}); python contexts start without it");
                zygote.start_failed();
                Err(why)
            }
        }
    }

    async fn start(&self) -> Result<Conn, String> {
        let (ours, theirs) = seqpacket_pair().map_err(|e| format!("socket pair: {e}"))?;
        let mut child = Command::new(&self.exe)
            .arg(ZYGOTE_SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        for (pipe, what) in [
            (child.stdout.take().map(|p| Box::new(p) as Box<_>), "stdout"),
            (child.stderr.take().map(|p| Box::new(p) as Box<_>), "stderr"),
        ] {
            if let Some(pipe) = pipe {
                tokio::spawn(log_lines(pipe, what));
            }
        }
        // SAFETY: an `OwnedFd` keeps its one descriptor open until it is dropped, which
        // happens only with the `AsyncFd`.
        let sock =
            Arc::new(unsafe { AsyncFd::register(ours) }.map_err(|e| format!("socket: {e}"))?);
        let (tx, answers) = mpsc::unbounded_channel();
        let exits = Arc::new(Mutex::new(ExitBook::default()));
        let reader = tokio::spawn(read_messages(sock.clone(), tx, exits.clone()));
        let mut conn = Conn {
            sock,
            child,
            answers,
            exits,
            reader,
        };
        let config = ZygoteConfig {
            argv: driver::python_argv(),
            env: ZYGOTE_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            program: driver::zygote_program(),
        };
        let programs = seccomp_programs().map_err(|e| format!("seccomp: {e}"))?;
        conn.send(
            &serde_json::to_vec(&config).expect("config serialises"),
            &[],
        )
        .await?;
        let init = serde_json::json!({
            "type": "init",
            "seccomp": programs,
            "env": self.usual.env,
            "workdir": self.usual.workdir,
        });
        conn.send(init.to_string().as_bytes(), &[]).await?;
        let ready = conn.answer().await?;
        if ready.get("type").and_then(|t| t.as_str()) != Some("ready") {
            return Err(format!("unexpected first message: {ready}"));
        }
        Ok(conn)
    }
}

/// The zygote's own environment. No sandbox's and none of the server's: a forked context
/// replaces it, but `/proc/<pid>/environ` keeps showing what the interpreter started with.
/// `HOME` points nowhere so that no user site directory of the host is imported.
const ZYGOTE_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/nonexistent"),
    ("LANG", "C.UTF-8"),
    ("PYTHONUNBUFFERED", "1"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("SANDLOT_ZYGOTE", "1"),
];

impl Conn {
    async fn fork(&mut self, n: u64, init_pid: i32, fds: &[RawFd]) -> Result<Forked, String> {
        let msg = format!("{n} {init_pid}");
        self.send(msg.as_bytes(), fds).await?;
        let reply = self.answer().await?;
        if reply.get("n").and_then(|v| v.as_u64()) != Some(n) {
            return Err(format!("answer out of order: {reply}"));
        }
        let Some(pid) = reply.get("pid").and_then(|p| p.as_i64()) else {
            return Err(format!("refused: {}", reply.get("error").unwrap_or(&reply)));
        };
        let pid = pid as i32;
        let (tx, exit) = oneshot::channel();
        let mut book = self.exits.lock().unwrap_or_else(|p| p.into_inner());
        match book.early.remove(&pid) {
            Some(status) => {
                let _ = tx.send(status);
            }
            None => {
                book.waiting.insert(pid, tx);
            }
        }
        Ok(Forked { pid, exit })
    }

    async fn send(&mut self, msg: &[u8], fds: &[RawFd]) -> Result<(), String> {
        send_message(&self.sock, msg, fds).await
    }

    async fn answer(&mut self) -> Result<serde_json::Value, String> {
        self.answers
            .recv()
            .await
            .ok_or_else(|| "the fork server closed its socket".to_string())
    }
}

/// Reads the zygote's messages: exit reports go to their contexts, the rest (answers) to
/// the requests in order. Ends when the zygote does: every context still waiting for its
/// exit then learns that nobody will tell it.
async fn read_messages(
    sock: Arc<AsyncFd<OwnedFd>>,
    answers: mpsc::UnboundedSender<serde_json::Value>,
    exits: Arc<Mutex<ExitBook>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut guard) = sock.readable().await else {
            break;
        };
        let got = guard.try_io(|s| {
            // SAFETY: a read into our own buffer.
            let n = unsafe {
                libc::recv(
                    s.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        let n = match got {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_would_block) => continue,
        };
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&buf[..n]) else {
            continue;
        };
        if msg.get("type").and_then(|t| t.as_str()) == Some("exited") {
            let pid = msg.get("pid").and_then(|p| p.as_i64()).unwrap_or(0) as i32;
            let status = msg.get("status").and_then(|s| s.as_i64()).unwrap_or(-1) as i32;
            let mut book = exits.lock().unwrap_or_else(|p| p.into_inner());
            match book.waiting.remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(status);
                }
                None => {
                    book.early.insert(pid, status);
                }
            }
        } else if answers.send(msg).is_err() {
            break;
        }
    }
    exits
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .waiting
        .clear();
}

async fn log_lines(pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>, what: &'static str) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        warn!("python fork server ({what}): {line}");
    }
}
