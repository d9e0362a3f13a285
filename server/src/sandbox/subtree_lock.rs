//! Which servers' cgroup sub-trees are still in use. A server holds an exclusive `flock` on
//! `/run/sandlot/<sub-tree>.lock` while it runs, from before it creates its sub-tree until it
//! has removed it. A sub-tree whose lock file exists but is held by no one belongs to a
//! server that died without a clean stop: its sandboxes' processes run on (a restart on the
//! same data dir would kill them and bring the sandboxes back from their records), but if no
//! server is started on that data dir again (a temporary one, one moved away) nothing would
//! ever stop them. Another server starting sweeps them ([`super::cgroup::Cgroups`]). A
//! sub-tree without a lock file (a server from before this) is never touched.
//!
//! The one who sweeps holds the lock while it does, then removes the file: a server starting
//! on that data dir meanwhile waits for the lock, and, finding its file gone (another inode
//! at the path, or none), takes the lock anew.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::data_dir_lock::{flock, open_lock_file};

const RUN_DIR: &str = "/run/sandlot";

#[derive(Debug)]
pub struct SubtreeLock {
    /// Held open: the lock lasts as long as it does.
    _file: File,
    path: PathBuf,
}

impl SubtreeLock {
    /// Takes the lock of sub-tree `name`, waiting while another server sweeps it.
    pub fn acquire(name: &str) -> io::Result<Self> {
        fs::create_dir_all(RUN_DIR)?;
        let path = lock_path(name);
        loop {
            let file = open_lock_file(&path)?;
            flock(&file, libc::LOCK_EX)?;
            if let Some(lock) = Self::if_current(file, &path) {
                return Ok(lock);
            }
        }
    }

    /// The lock of sub-tree `name` if its server is gone: its file exists and no one holds
    /// it. `None` for a live server's, or one that never had a lock file.
    pub fn take_orphaned(name: &str) -> Option<Self> {
        let path = lock_path(name);
        let file = OpenOptions::new().read(true).open(&path).ok()?;
        flock(&file, libc::LOCK_EX | libc::LOCK_NB).ok()?;
        Self::if_current(file, &path)
    }

    /// Removes the lock file (the sub-tree is gone): the lock itself goes with the process
    /// or this value.
    pub fn remove_file(&self) {
        let _ = fs::remove_file(&self.path);
    }

    /// `file`, locked, if it is still the file at `path` (not one a sweeper removed).
    fn if_current(file: File, path: &Path) -> Option<Self> {
        let (held, now) = (file.metadata().ok()?, fs::metadata(path).ok()?);
        (held.dev() == now.dev() && held.ino() == now.ino()).then(|| Self {
            _file: file,
            path: path.to_path_buf(),
        })
    }
}

fn lock_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{name}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_tree_is_orphaned_only_once_its_holder_lets_go_and_never_without_a_file() {
        let name = format!("sandlot-lock-test-{}", std::process::id());
        assert!(
            SubtreeLock::take_orphaned(&name).is_none(),
            "no file: not ours"
        );
        let held = SubtreeLock::acquire(&name).unwrap();
        assert!(SubtreeLock::take_orphaned(&name).is_none(), "held: alive");
        drop(held);
        let orphan = SubtreeLock::take_orphaned(&name).expect("released: orphaned");
        // A server starting meanwhile waits; once the sweeper removed the file and let go,
        // it holds a new file, which is its own.
        let waiter = std::thread::spawn({
            let name = name.clone();
            move || SubtreeLock::acquire(&name).unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "it waits for the sweep");
        orphan.remove_file();
        drop(orphan);
        let restarted = waiter.join().unwrap();
        assert!(SubtreeLock::take_orphaned(&name).is_none(), "held again");
        restarted.remove_file();
    }
}
