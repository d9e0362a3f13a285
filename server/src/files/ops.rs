//! The file operations, each a blocking function run through [`super::SandboxFs::blocking`]
//! (as the sandbox's user, from the sandbox's root).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};

use super::resolve::{self, SandboxPath};
use super::{FsError, FsResult};

/// The end of the temporary names files are written under before their rename into place.
pub const TEMP_SUFFIX: &str = ".sandlot-tmp";
/// Entries one listing returns at most.
pub const MAX_LIST_ENTRIES: usize = 10_000;
/// Directory depth a recursive remove goes to.
const MAX_REMOVE_DEPTH: usize = 256;

fn io_err(path: &SandboxPath) -> impl Fn(io::Error) -> FsError + '_ {
    move |e| FsError::from_io(&path.display(), e)
}

fn errno(path: &SandboxPath) -> impl Fn(rustix::io::Errno) -> FsError + '_ {
    move |e| FsError::from_io(&path.display(), e.into())
}

/// Opens a regular file for reading (a final symlink is followed, inside the sandbox).
/// `O_NONBLOCK` keeps a FIFO from blocking the open; anything but a regular file is refused
/// before a byte is read (so `/dev/zero` is never streamed).
pub fn open_regular(root: &OwnedFd, path: &SandboxPath) -> FsResult<(OwnedFd, u64)> {
    let fd = resolve::open(
        root,
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(io_err(path))?;
    let st = rustix::fs::fstat(&fd).map_err(errno(path))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok((fd, st.st_size as u64)),
        FileType::Directory => Err(FsError::IsADirectory(path.display())),
        _ => Err(FsError::NotRegular(path.display())),
    }
}

/// The whole file, if it has at most `max` bytes.
pub fn read(root: &OwnedFd, path: &SandboxPath, max: u64) -> FsResult<Vec<u8>> {
    let (fd, size) = open_regular(root, path)?;
    let too_large = || {
        FsError::TooLarge(format!(
            "{} is larger than {max} bytes, the most /files/read returns; use /files/download",
            path.display()
        ))
    };
    if size > max {
        return Err(too_large());
    }
    let mut data = Vec::with_capacity(size as usize);
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut data)
        .map_err(io_err(path))?;
    if data.len() as u64 > max {
        return Err(too_large());
    }
    Ok(data)
}

/// A fresh name in `dir` for a file being written, created `O_EXCL` so nothing existing is
/// ever reused.
fn create_temp(dir: &OwnedFd, path: &SandboxPath, mode: u32) -> FsResult<(String, OwnedFd)> {
    for _ in 0..16 {
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).map_err(|e| FsError::Io(format!("random: {e}")))?;
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!(".{}.{hex}{TEMP_SUFFIX}", truncate(path.name(), 200));
        match rustix::fs::openat(
            dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => {
                // The server's umask must not narrow what the client asked for.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno(path))?;
                return Ok((name, fd));
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(FsError::from_io(&path.display(), e.into())),
        }
    }
    Err(FsError::Io("no free temporary name".into()))
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A file being written under a temporary name in its target directory; [`Staged::commit`]
/// renames it into place, [`Staged::discard`] removes it.
#[derive(Debug)]
pub struct Staged {
    pub dir: OwnedFd,
    pub temp: String,
    pub target: SandboxPath,
}

/// Starts writing `path`: creates its missing parents and a temporary file beside it.
pub fn stage(root: &OwnedFd, path: &SandboxPath, mode: u32) -> FsResult<(Staged, OwnedFd)> {
    let parent = path
        .parent()
        .ok_or_else(|| FsError::IsADirectory(path.display()))?;
    let dir = resolve::make_dirs(root, &parent)?;
    let (temp, fd) = create_temp(&dir, path, mode)?;
    Ok((
        Staged {
            dir,
            temp,
            target: path.clone(),
        },
        fd,
    ))
}

impl Staged {
    /// Renames the temporary file over the target (a final symlink is replaced, never
    /// followed); with `overwrite == false` an existing target is left alone (409).
    pub fn commit(&self, overwrite: bool) -> FsResult<()> {
        let flags = if overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        let renamed = rustix::fs::renameat_with(
            &self.dir,
            self.temp.as_str(),
            &self.dir,
            self.target.name(),
            flags,
        );
        renamed.map_err(|e| {
            self.discard();
            FsError::from_io(&self.target.display(), e.into())
        })
    }

    pub fn discard(&self) {
        let _ = rustix::fs::unlinkat(&self.dir, self.temp.as_str(), AtFlags::empty());
    }
}

/// Writes `data` to `path` through a temporary file and a rename: a failed write (a full
/// disk) leaves the old content whole.
pub fn write(
    root: &OwnedFd,
    path: &SandboxPath,
    data: &[u8],
    mode: u32,
    overwrite: bool,
) -> FsResult<u64> {
    let (staged, fd) = stage(root, path, mode)?;
    let mut file = std::fs::File::from(fd);
    if let Err(e) = file.write_all(data) {
        staged.discard();
        return Err(FsError::from_io(&path.display(), e));
    }
    drop(file);
    staged.commit(overwrite)?;
    Ok(data.len() as u64)
}

/// Whether something exists at `path` (a symlink counts if its target does).
pub fn exists(root: &OwnedFd, path: &SandboxPath) -> FsResult<bool> {
    match resolve::open(root, path, OFlags::PATH, Mode::empty()) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(false),
        Err(e) => Err(FsError::from_io(&path.display(), e)),
    }
}

/// One directory entry as listed (symlinks are described, not followed).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub path: String,
    pub size: u64,
    pub kind: FileType,
    pub mode: u32,
    pub modified: SystemTime,
}

fn modified(st: &Stat) -> SystemTime {
    let secs = st.st_mtime.max(0) as u64;
    UNIX_EPOCH + Duration::new(secs, st.st_mtime_nsec as u32)
}

/// The entries of a directory, sorted by name; `bool` is whether some were left out.
pub fn list(root: &OwnedFd, path: &SandboxPath) -> FsResult<(Vec<Entry>, bool)> {
    let fd = resolve::open(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(io_err(path))?;
    let mut dir = rustix::fs::Dir::read_from(&fd).map_err(errno(path))?;
    let mut entries = Vec::new();
    let mut truncated = false;
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(errno(path))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if entries.len() >= MAX_LIST_ENTRIES {
            truncated = true;
            break;
        }
        // Gone between readdir and stat: skip it.
        let Ok(st) = rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        entries.push(Entry {
            path: path.join(&name).display(),
            name,
            size: st.st_size as u64,
            kind: FileType::from_raw_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            modified: modified(&st),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, truncated))
}

/// `mkdir -p`.
pub fn mkdir(root: &OwnedFd, path: &SandboxPath) -> FsResult<()> {
    resolve::make_dirs(root, path).map(|_| ())
}

/// Removes `path`: a file or symlink (never its target), or a directory with everything in
/// it. Each level is opened `O_NOFOLLOW` from its parent's descriptor, so a symlink swapped
/// in for a directory is unlinked, not descended into.
pub fn remove(root: &OwnedFd, path: &SandboxPath) -> FsResult<()> {
    let dir = resolve::open_parent(root, path)?;
    let name = path.name();
    let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno(path))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        remove_tree(&dir, name, 0).map_err(errno(path))
    } else {
        rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(errno(path))
    }
}

fn remove_tree(parent: &OwnedFd, name: &str, depth: usize) -> rustix::io::Result<()> {
    if depth > MAX_REMOVE_DEPTH {
        return Err(rustix::io::Errno::NAMETOOLONG);
    }
    let fd = match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // No longer a directory (swapped for a file or a symlink): unlink the entry itself.
        Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty())
        }
        Err(e) => return Err(e),
    };
    loop {
        // Read a batch of names, then remove them (removing while reading can skip entries).
        let mut names = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&fd)?;
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push((entry.file_name().to_owned(), entry.file_type()));
            }
            if names.len() >= 1024 {
                break;
            }
        }
        if names.is_empty() {
            break;
        }
        for (child, kind) in names {
            let is_dir = match kind {
                FileType::Directory => true,
                FileType::Unknown => rustix::fs::statat(&fd, &child, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
                _ => false,
            };
            if is_dir {
                let child = child.to_str().map_err(|_| rustix::io::Errno::INVAL)?;
                remove_tree(&fd, child, depth + 1)?;
            } else {
                match rustix::fs::unlinkat(&fd, &child, AtFlags::empty()) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    drop(fd);
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Renames `from` to `to` (neither final symlink is followed); `to`'s missing parents are
/// created. Without `overwrite` an existing `to` is refused.
pub fn rename(
    root: &OwnedFd,
    from: &SandboxPath,
    to: &SandboxPath,
    overwrite: bool,
) -> FsResult<()> {
    let from_dir = resolve::open_parent(root, from)?;
    let to_parent = to.parent().ok_or_else(|| {
        FsError::InvalidPath(format!(
            "{} is a sandbox root directory; nothing can be renamed onto it",
            to.display()
        ))
    })?;
    let to_dir = resolve::make_dirs(root, &to_parent)?;
    let flags = if overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::NOREPLACE
    };
    rustix::fs::renameat_with(&from_dir, from.name(), &to_dir, to.name(), flags).map_err(|e| {
        // Say which side is missing.
        if e == rustix::io::Errno::NOENT {
            FsError::NotFound(from.display())
        } else {
            FsError::from_io(&to.display(), e.into())
        }
    })
}

impl Staged {
    /// Moves a file staged before its destination was known (a multipart `file` part that
    /// came before the `path` field) beside `target`, still under a temporary name. Across
    /// filesystems (`/workspace` to `/tmp`) it is copied.
    pub fn retarget(self, root: &OwnedFd, target: &SandboxPath, mode: u32) -> FsResult<Staged> {
        let parent = target
            .parent()
            .ok_or_else(|| FsError::IsADirectory(target.display()))?;
        let dir = resolve::make_dirs(root, &parent)?;
        let (temp, to) = match create_temp(&dir, target, mode) {
            Ok(made) => made,
            Err(e) => {
                self.discard();
                return Err(e);
            }
        };
        let moved = rustix::fs::renameat(&self.dir, self.temp.as_str(), &dir, temp.as_str());
        let next = Staged {
            dir,
            temp,
            target: target.clone(),
        };
        match moved {
            Ok(()) => Ok(next),
            Err(rustix::io::Errno::XDEV) => {
                let copied = rustix::fs::openat(
                    &self.dir,
                    self.temp.as_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .and_then(|from| {
                    let mut reader = std::fs::File::from(from);
                    let mut writer = std::fs::File::from(to);
                    io::copy(&mut reader, &mut writer).map(|_| ()).map_err(|e| {
                        rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO)
                    })
                });
                self.discard();
                match copied {
                    Ok(()) => Ok(next),
                    Err(e) => {
                        next.discard();
                        Err(FsError::from_io(&target.display(), e.into()))
                    }
                }
            }
            Err(e) => {
                self.discard();
                next.discard();
                Err(FsError::from_io(&target.display(), e.into()))
            }
        }
    }
}
