//! File watch: inotify on directories of the sandbox.
//!
//! Each watch has its own inotify instance. A watched directory is opened from the
//! sandbox's root like any other path (as the sandbox's user) and handed to
//! `inotify_add_watch` as `/proc/self/fd/<fd>`, so the kernel watches exactly the directory
//! that was resolved inside the sandbox, never one a path could lead to on the host.
//! Recursive watches add each subdirectory, and each new one as it appears (a file made in
//! a brand-new directory before its watch is added can go unreported). Watches per sandbox
//! are bounded ([`super::MAX_WATCHES_PER_SANDBOX`]), and so are directories per watch.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use sandlot_protocol::FileEventKind;

use super::resolve::{self, SandboxPath};
use super::{FsError, FsResult, SandboxFs, WatchSlot};

/// Directories one recursive watch covers at most.
pub const MAX_WATCHED_DIRS: usize = 4096;
/// Repeated `modified` events of one path closer together than this are folded.
const MODIFY_FOLD: Duration = Duration::from_millis(200);

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::MOVE_SELF
        | WatchMask::EXCL_UNLINK
}

/// What a watch reports next.
#[derive(Debug)]
pub enum WatchEvent {
    Change {
        path: String,
        kind: FileEventKind,
    },
    /// The kernel's queue overflowed: events were lost.
    Overflow,
    /// The watched path itself is gone (deleted or moved away); nothing follows.
    Ended,
}

pub struct Watcher {
    fs: SandboxFs,
    stream: EventStream<Vec<u8>>,
    watches: Watches,
    dirs: HashMap<WatchDescriptor, SandboxPath>,
    top: WatchDescriptor,
    recursive: bool,
    last_modified: Option<(String, Instant)>,
    /// Rename cookies of the API's own temporary files (see [`super::ops::TEMP_SUFFIX`]).
    temp_moves: VecDeque<u32>,
    _slot: WatchSlot,
}

fn init_error(e: std::io::Error) -> FsError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOSPC | libc::ENOMEM) => FsError::LimitReached(
            "the host's inotify limits are reached (fs.inotify.max_user_instances / \
             max_user_watches); close a watch or raise them"
                .into(),
        ),
        _ => FsError::Io(format!("inotify: {e}")),
    }
}

/// Adds a watch on `path` (a directory, or a file when not recursive), opened in the
/// sandbox.
fn add(root: &OwnedFd, watches: &mut Watches, path: &SandboxPath) -> FsResult<WatchDescriptor> {
    let fd = resolve::open(root, path, OFlags::PATH, Mode::empty())
        .map_err(|e| FsError::from_io(&path.display(), e))?;
    watches
        .add(format!("/proc/self/fd/{}", fd.as_raw_fd()), mask())
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSPC) => init_error(e),
            _ => FsError::from_io(&path.display(), e),
        })
}

/// Adds `top` and, breadth first, the directories below it (up to the bound).
fn add_tree(
    root: &OwnedFd,
    watches: &mut Watches,
    top: &SandboxPath,
    recursive: bool,
    budget: usize,
) -> FsResult<Vec<(WatchDescriptor, SandboxPath)>> {
    let mut added = vec![(add(root, watches, top)?, top.clone())];
    if !recursive {
        return Ok(added);
    }
    let mut queue = VecDeque::from([top.clone()]);
    while let Some(dir) = queue.pop_front() {
        let Ok(fd) = resolve::open(
            root,
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        ) else {
            continue;
        };
        let Ok(mut entries) = rustix::fs::Dir::read_from(&fd) else {
            continue;
        };
        while let Some(Ok(entry)) = entries.read() {
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let is_dir = match entry.file_type() {
                FileType::Directory => true,
                FileType::Unknown => rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
                _ => false,
            };
            let Ok(name) = name.to_str() else { continue };
            if !is_dir || added.len() >= budget {
                continue;
            }
            let child = dir.join(name);
            if let Ok(wd) = add(root, watches, &child) {
                added.push((wd, child.clone()));
                queue.push_back(child);
            }
        }
    }
    Ok(added)
}

impl Watcher {
    /// Starts watching `path` (and its subdirectories when `recursive`).
    pub async fn start(fs: &SandboxFs, path: SandboxPath, recursive: bool) -> FsResult<Self> {
        let slot = fs.watch_slot()?;
        let inotify = Inotify::init().map_err(init_error)?;
        let mut watches = inotify.watches();
        let top = path.clone();
        let added = fs
            .blocking(move |root| add_tree(root, &mut watches, &top, recursive, MAX_WATCHED_DIRS))
            .await?;
        let stream = inotify
            .into_event_stream(vec![0u8; 16 * 1024])
            .map_err(init_error)?;
        let watches = stream.watches();
        Ok(Self {
            fs: fs.clone(),
            stream,
            watches,
            top: added[0].0.clone(),
            dirs: added.into_iter().collect(),
            recursive,
            last_modified: None,
            temp_moves: VecDeque::new(),
            _slot: slot,
        })
    }

    /// The next event; `None` once the inotify stream itself has ended.
    pub async fn next(&mut self) -> Option<FsResult<WatchEvent>> {
        loop {
            let event = match self.stream.next().await? {
                Ok(event) => event,
                Err(e) => return Some(Err(FsError::Io(format!("inotify: {e}")))),
            };
            let mask = event.mask;
            if mask.contains(EventMask::Q_OVERFLOW) {
                return Some(Ok(WatchEvent::Overflow));
            }
            let is_top = event.wd == self.top;
            if mask.contains(EventMask::IGNORED) {
                self.dirs.remove(&event.wd);
                if is_top {
                    return Some(Ok(WatchEvent::Ended));
                }
                continue;
            }
            let Some(base) = self.dirs.get(&event.wd).cloned() else {
                continue;
            };
            // The API writes through a temporary file and a rename: its own temporary names
            // are not reported, and their rename into place reads as `created`.
            let temp = event.name.as_ref().is_some_and(|n| {
                n.as_encoded_bytes()
                    .ends_with(super::ops::TEMP_SUFFIX.as_bytes())
            });
            if temp {
                if mask.contains(EventMask::MOVED_FROM) {
                    if self.temp_moves.len() >= 64 {
                        self.temp_moves.pop_front();
                    }
                    self.temp_moves.push_back(event.cookie);
                }
                continue;
            }
            let from_temp = mask.contains(EventMask::MOVED_TO)
                && self
                    .temp_moves
                    .iter()
                    .position(|c| *c == event.cookie)
                    .map(|i| self.temp_moves.remove(i))
                    .is_some();
            let path = match &event.name {
                Some(name) => base.join(&name.to_string_lossy()),
                None => base,
            };
            let kind = if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
                // A subdirectory's removal is reported by its parent's watch.
                if !is_top {
                    continue;
                }
                if mask.contains(EventMask::DELETE_SELF) {
                    FileEventKind::Deleted
                } else {
                    FileEventKind::Renamed
                }
            } else if mask.contains(EventMask::CREATE) || from_temp {
                FileEventKind::Created
            } else if mask.contains(EventMask::DELETE) {
                FileEventKind::Deleted
            } else if mask.intersects(EventMask::MOVED_FROM | EventMask::MOVED_TO) {
                FileEventKind::Renamed
            } else if mask.intersects(EventMask::MODIFY | EventMask::CLOSE_WRITE) {
                FileEventKind::Modified
            } else {
                continue;
            };
            if self.recursive
                && mask.contains(EventMask::ISDIR)
                && mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
            {
                self.watch_new_dir(path.clone()).await;
            }
            let shown = path.display();
            if kind == FileEventKind::Modified {
                let now = Instant::now();
                if let Some((last, at)) = &self.last_modified {
                    if *last == shown && now.duration_since(*at) < MODIFY_FOLD {
                        continue;
                    }
                }
                self.last_modified = Some((shown.clone(), now));
            } else {
                self.last_modified = None;
            }
            return Some(Ok(WatchEvent::Change { path: shown, kind }));
        }
    }

    async fn watch_new_dir(&mut self, dir: SandboxPath) {
        let budget = MAX_WATCHED_DIRS.saturating_sub(self.dirs.len());
        if budget == 0 {
            return;
        }
        let mut watches = self.watches.clone();
        let added = self
            .fs
            .blocking(move |root| add_tree(root, &mut watches, &dir, true, budget))
            .await;
        if let Ok(added) = added {
            self.dirs.extend(added);
        }
    }
}
