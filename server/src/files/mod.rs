//! The files API's filesystem side: every operation acts as the sandbox, inside the sandbox.
//!
//! A [`SandboxFs`] holds an `O_PATH` descriptor of the sandbox's root (`/proc/<pid 1>/root`,
//! which reaches its private `/tmp` tmpfs and its `/workspace` bind as the sandbox sees
//! them). Every path is checked lexically ([`resolve::SandboxPath`]), then resolved from that
//! descriptor with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` and absolute
//! symlinks stop at the sandbox's root, `/proc` magic links are refused, and a symlink
//! swapped in mid-operation can point only at another place inside the same sandbox. The
//! last component is then handled with `*at` calls on the opened parent, never following a
//! final symlink where that would matter (create, remove, rename).
//!
//! Blocking calls run on the blocking pool as the sandbox's user ([`creds::AsSandbox`]):
//! the kernel's own permission checks apply as they would to the sandbox's processes, and
//! new files belong to its uid. No helper process is spawned.

mod creds;
pub mod ops;
pub mod resolve;
pub mod watch;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use tokio_util::sync::CancellationToken;

pub use resolve::SandboxPath;

/// Why a file operation failed; the API maps each to a status and code.
#[derive(Debug)]
pub enum FsError {
    /// Outside `/workspace` and `/tmp`, or not absolute.
    NotAllowed(String),
    /// Cannot name a file (message says why).
    InvalidPath(String),
    NotFound(String),
    IsADirectory(String),
    NotADirectory(String),
    NotRegular(String),
    AlreadyExists(String),
    PermissionDenied(String),
    /// Over a size bound (message says which).
    TooLarge(String),
    NotText(String),
    /// Too many watches, or the kernel's inotify limits.
    LimitReached(String),
    /// ENOSPC / EDQUOT: nothing was written.
    StorageFull(String),
    /// Anything else; logged, answered generically.
    Io(String),
}

pub type FsResult<T> = Result<T, FsError>;

impl FsError {
    /// Maps an errno of an operation on `path`.
    pub fn from_io(path: &str, e: io::Error) -> Self {
        let p = path.to_string();
        match e.raw_os_error() {
            Some(libc::ENOENT) => Self::NotFound(p),
            Some(libc::ENOTDIR) => Self::NotADirectory(p),
            Some(libc::EISDIR) => Self::IsADirectory(p),
            Some(libc::EEXIST | libc::ENOTEMPTY) => Self::AlreadyExists(p),
            Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY) => {
                Self::PermissionDenied(p)
            }
            Some(libc::ELOOP) => Self::InvalidPath(format!(
                "{p}: too many levels of symbolic links, a symbolic link where none may be, \
                 or a /proc magic link"
            )),
            Some(libc::ENAMETOOLONG) => Self::InvalidPath(format!("{p}: name too long")),
            Some(libc::EXDEV) => Self::InvalidPath(format!(
                "{p}: cannot move between /workspace and /tmp (different filesystems)"
            )),
            Some(libc::EBUSY) => Self::PermissionDenied(p),
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => Self::StorageFull(p),
            Some(libc::ENXIO | libc::ENODEV) => Self::NotRegular(p),
            _ => Self::Io(format!("{p}: {e}")),
        }
    }
}

/// Watches one sandbox may hold at once.
pub const MAX_WATCHES_PER_SANDBOX: usize = 16;

/// What a node hands the API for one sandbox's files: owned, cheap to clone, usable from
/// any task. It keeps the sandbox's root open; drop it when the request is done.
#[derive(Debug, Clone)]
pub struct SandboxFs {
    root: Arc<OwnedFd>,
    pub uid: u32,
    pub gid: u32,
    /// Watches open on this sandbox (shared by every handle of it).
    watches: Arc<AtomicUsize>,
    /// Cancelled when the sandbox dies: watches end then.
    pub gone: CancellationToken,
}

impl SandboxFs {
    /// Opens the root of the sandbox whose pid 1 is `init_pid` (host pid). Needs root: it
    /// runs before any switch to the sandbox's user.
    pub fn open(
        init_pid: i32,
        uid: u32,
        gid: u32,
        watches: Arc<AtomicUsize>,
        gone: CancellationToken,
    ) -> io::Result<Self> {
        let pid = rustix::process::Pid::from_raw(init_pid)
            .ok_or_else(|| io::Error::other("sandbox has no pid 1"))?;
        // The pidfd pins the identity of pid 1: if it is still alive after /proc/<pid>/root
        // was opened, that root is the sandbox's and not a recycled pid's.
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        let root = rustix::fs::open(
            format!("/proc/{init_pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if rustix::event::poll(&mut fds, Some(&zero))? != 0 {
            return Err(io::Error::other("the sandbox's pid 1 has exited"));
        }
        Ok(Self {
            root: Arc::new(root),
            uid,
            gid,
            watches,
            gone,
        })
    }

    /// Runs `f` on the blocking pool as the sandbox's user, with the sandbox's root.
    pub async fn blocking<T, F>(&self, f: F) -> FsResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&OwnedFd) -> FsResult<T> + Send + 'static,
    {
        let (root, uid, gid) = (self.root.clone(), self.uid, self.gid);
        tokio::task::spawn_blocking(move || {
            let _as = creds::AsSandbox::enter(uid, gid)
                .map_err(|e| FsError::Io(format!("switch to the sandbox's user: {e}")))?;
            f(&root)
        })
        .await
        .map_err(|e| FsError::Io(format!("file task: {e}")))?
    }

    /// Takes one of the sandbox's watch slots until the returned guard is dropped.
    pub fn watch_slot(&self) -> FsResult<WatchSlot> {
        let n = self.watches.fetch_add(1, Ordering::SeqCst);
        let slot = WatchSlot(self.watches.clone());
        if n >= MAX_WATCHES_PER_SANDBOX {
            return Err(FsError::LimitReached(format!(
                "a sandbox may hold at most {MAX_WATCHES_PER_SANDBOX} file watches; close one first"
            )));
        }
        Ok(slot)
    }
}

/// One watch of a sandbox's bounded number.
#[derive(Debug)]
pub struct WatchSlot(Arc<AtomicUsize>);

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
