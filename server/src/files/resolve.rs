//! Paths: the lexical policy (absolute, under `/workspace` or `/tmp` once normalised) and
//! their resolution inside the sandbox's root with `openat2`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::{FsError, FsResult};

/// The directories the files API may touch, as the sandbox names them.
pub const ALLOWED_ROOTS: &[&str] = &["workspace", "tmp"];
/// Longest path accepted (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;

/// How every path is resolved from the sandbox's root: `..` and absolute symlinks stay
/// inside it, and `/proc/<pid>/root`-style magic links are refused.
const IN_SANDBOX: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// A checked path: absolute, normalised, under an allowed root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPath {
    /// Components after the root, e.g. `["workspace", "a", "b.txt"]`.
    parts: Vec<String>,
}

impl SandboxPath {
    /// Applies the policy to a client's path: `.` and `..` are folded lexically (never
    /// above `/`), then the result must be `/workspace`, `/tmp` or below them.
    pub fn parse(raw: &str) -> FsResult<Self> {
        if raw.is_empty() {
            return Err(FsError::InvalidPath("the path is empty".into()));
        }
        if raw.contains('\0') {
            return Err(FsError::InvalidPath("the path contains a NUL byte".into()));
        }
        if raw.len() > MAX_PATH {
            return Err(FsError::InvalidPath(format!(
                "the path is longer than {MAX_PATH} bytes"
            )));
        }
        if !raw.starts_with('/') {
            return Err(FsError::NotAllowed(raw.to_string()));
        }
        let mut parts: Vec<String> = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => parts.push(name.to_string()),
            }
        }
        match parts.first() {
            Some(top) if ALLOWED_ROOTS.contains(&top.as_str()) => Ok(Self { parts }),
            _ => Err(FsError::NotAllowed(raw.to_string())),
        }
    }

    /// The absolute path as the sandbox sees it, e.g. `/workspace/a/b.txt`.
    pub fn display(&self) -> String {
        format!("/{}", self.parts.join("/"))
    }

    /// The path relative to the sandbox's root (`workspace/a/b.txt`).
    fn relative(&self) -> String {
        self.parts.join("/")
    }

    /// The last component.
    pub fn name(&self) -> &str {
        self.parts.last().map(String::as_str).unwrap_or_default()
    }

    /// The parent directory (`None` for an allowed root).
    pub fn parent(&self) -> Option<SandboxPath> {
        (self.parts.len() > 1).then(|| SandboxPath {
            parts: self.parts[..self.parts.len() - 1].to_vec(),
        })
    }

    /// A child of this path (a name from a directory listing: one component).
    pub fn join(&self, name: &str) -> SandboxPath {
        let mut parts = self.parts.clone();
        parts.push(name.to_string());
        SandboxPath { parts }
    }

    /// Each ancestor below the allowed root, then the path itself: `/workspace/a`,
    /// `/workspace/a/b`, ... (for `mkdir -p`).
    fn prefixes(&self) -> impl Iterator<Item = SandboxPath> + '_ {
        (1..=self.parts.len()).map(|n| SandboxPath {
            parts: self.parts[..n].to_vec(),
        })
    }
}

/// `openat2` from the sandbox's root. A rename elsewhere while `..` is being resolved makes
/// the kernel answer EAGAIN; that is retried a few times.
pub fn open(root: &OwnedFd, path: &SandboxPath, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let rel = path.relative();
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            root.as_fd(),
            rel.as_str(),
            flags | OFlags::CLOEXEC,
            mode,
            IN_SANDBOX,
        ) {
            Err(rustix::io::Errno::AGAIN) if tries < 8 => tries += 1,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// The path's parent directory opened as `O_PATH` (for `*at` calls on the last component).
pub fn open_parent(root: &OwnedFd, path: &SandboxPath) -> FsResult<OwnedFd> {
    let parent = path.parent().ok_or_else(|| {
        FsError::InvalidPath(format!(
            "{} is a sandbox root directory; it cannot be replaced, moved or removed",
            path.display()
        ))
    })?;
    open(
        root,
        &parent,
        OFlags::PATH | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| FsError::from_io(&parent.display(), e))
}

/// `mkdir -p`: creates what is missing of `path` (as the sandbox's user, mode 0755) and
/// returns it opened as `O_PATH`. Each step re-resolves from the root, so a symlink in the
/// way is followed inside the sandbox only.
pub fn make_dirs(root: &OwnedFd, path: &SandboxPath) -> FsResult<OwnedFd> {
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
    if let Ok(fd) = open(root, path, dir_flags, Mode::empty()) {
        return Ok(fd);
    }
    let mut current: Option<OwnedFd> = None;
    for prefix in path.prefixes() {
        let fd = match open(root, &prefix, dir_flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = current
                    .as_ref()
                    .ok_or_else(|| FsError::from_io(&prefix.display(), e))?;
                match rustix::fs::mkdirat(parent, prefix.name(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(FsError::from_io(&prefix.display(), e.into())),
                }
                open(root, &prefix, dir_flags, Mode::empty())
                    .map_err(|e| FsError::from_io(&prefix.display(), e))?
            }
            Err(e) => return Err(FsError::from_io(&prefix.display(), e)),
        };
        current = Some(fd);
    }
    current.ok_or_else(|| FsError::InvalidPath("empty path".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_before_the_policy_applies() {
        let ok = |raw: &str| SandboxPath::parse(raw).map(|p| p.display()).ok();
        assert_eq!(ok("/workspace"), Some("/workspace".into()));
        assert_eq!(ok("/workspace/./a//b/"), Some("/workspace/a/b".into()));
        assert_eq!(ok("/tmp/x/../y"), Some("/tmp/y".into()));
        assert_eq!(ok("/../../workspace/a"), Some("/workspace/a".into()));
        for bad in [
            "/workspace/../etc/passwd",
            "/etc/passwd",
            "workspace/a",
            "/",
            "/workspacex/a",
            "/tmp/../../proc/self/root",
            "/proc/1/root/workspace",
        ] {
            assert!(
                matches!(SandboxPath::parse(bad), Err(FsError::NotAllowed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            SandboxPath::parse("/workspace/a\0b"),
            Err(FsError::InvalidPath(_))
        ));
        assert!(matches!(
            SandboxPath::parse(""),
            Err(FsError::InvalidPath(_))
        ));
    }

    #[test]
    fn parents_prefixes_and_roots() {
        let p = SandboxPath::parse("/workspace/a/b").unwrap();
        assert_eq!(p.name(), "b");
        assert_eq!(p.parent().unwrap().display(), "/workspace/a");
        let all: Vec<_> = p.prefixes().map(|p| p.display()).collect();
        assert_eq!(all, ["/workspace", "/workspace/a", "/workspace/a/b"]);
        assert!(SandboxPath::parse("/tmp").unwrap().parent().is_none());
    }
}
