//! One sandlotd per data dir. A second server on the same directory would take the first
//! one's live sandboxes for leftovers of a crash and kill them (recovery sweeps the data
//! dir's cgroup sub-tree), and both would write one store. The first server holds an
//! exclusive `flock` on `<data dir>/sandlotd.lock` for as long as it runs; another finds it
//! taken and stops with the holder's pid.
//!
//! The lock goes with the process: the kernel releases it when the server exits, however it
//! exits, so a restart after a crash finds it free. Its descriptor is close-on-exec, and the
//! server starts every helper by executing a program, so no helper (which may outlive the
//! server) keeps it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const LOCK_FILE: &str = "sandlotd.lock";

/// Held while the server runs; dropping it releases the data dir.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the data dir, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join(LOCK_FILE);
        let mut file =
            open_lock_file(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        if let Err(err) = flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            if err.kind() != io::ErrorKind::WouldBlock {
                return Err(format!("cannot lock {}: {err}", path.display()));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            return Err(format!(
                "another sandlotd{holder} is using the data dir {}: stop it, or give this one \
                 another --data-dir",
                data_dir.display()
            ));
        }
        // Ours: the file says who holds it, for the next one's message.
        let pid = std::process::id();
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{pid}"));
        if let Err(e) = written {
            return Err(format!("cannot write {}: {e}", path.display()));
        }
        Ok(Self { _file: file })
    }
}

/// A lock file at `path`, made if missing (readable and writable by the server only).
pub(crate) fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// `flock(2)` on `file` (`how`: `LOCK_EX`, with `LOCK_NB` not to wait).
pub(crate) fn flock(file: &File, how: i32) -> io::Result<()> {
    // SAFETY: flock on a descriptor we own.
    match unsafe { libc::flock(file.as_raw_fd(), how) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_one_s_pid_until_it_lets_go() {
        let dir = std::env::temp_dir().join(format!("sandlot-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DataDirLock::acquire(&dir).expect("the first takes it");
        // flock locks belong to an open file: a second open, even in this process, is refused.
        let refused = DataDirLock::acquire(&dir)
            .err()
            .expect("the second is refused");
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        assert!(refused.contains(&dir.display().to_string()), "{refused}");
        drop(first);
        let again = DataDirLock::acquire(&dir);
        assert!(again.is_ok(), "free once the first lets go");
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
