//! A server's processes on the host, for the tests that stop or kill it: its descendants, and
//! the check that none (and no process carrying a test's marker) outlived it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `(ppid, state, start time in clock ticks since boot)` of a host pid.
pub fn proc_stat(pid: i32) -> Option<(i32, char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.first()?.chars().next()?,
        f.get(19)?.parse().ok()?,
    ))
}

/// One host process, identified by pid and start time (so a reused pid is not a survivor).
#[derive(Debug)]
pub struct HostProc {
    pub pid: i32,
    pub start: u64,
    pub cmdline: String,
}

impl HostProc {
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((_, state, start)) if start == self.start && !matches!(state, 'Z' | 'X'))
    }
}

/// Every live descendant of `root`: sandbox helpers, sandbox inits and the user's processes.
pub fn descendants(root: i32) -> Vec<HostProc> {
    let mut children: HashMap<i32, Vec<(i32, u64)>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some((ppid, state, start)) = proc_stat(pid) {
            if !matches!(state, 'Z' | 'X') {
                children.entry(ppid).or_default().push((pid, start));
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        for &(pid, start) in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            out.push(HostProc {
                pid,
                start,
                cmdline,
            });
            stack.push(pid);
        }
    }
    out
}

/// Asserts that none of `tree` and no process carrying `marker` is alive. The kernel gets up
/// to 1 s to finish tearing down what was SIGKILLed; a survivor (`sleep 300`, a ticker loop)
/// would still be there.
pub async fn assert_nothing_left(tree: &[HostProc], marker: &str, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left: Vec<&HostProc> = tree.iter().filter(|p| p.alive()).collect();
        let marked = super::pids_with_cmdline(marker);
        if left.is_empty() && marked.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of sandlotd outlived it after {after}: {left:#?}; pids with the marker: {marked:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `sandlot-<instance>` cgroup sub-tree a host process is in, if any.
pub fn instance_of(pid: i32) -> Option<String> {
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    groups.lines().find_map(|line| {
        line.split('/')
            .find(|part| part.starts_with("sandlot-"))
            .map(str::to_string)
    })
}

/// Whether a host process has begun to exit (`PF_EXITING`): a pid 1 stays so until every
/// process of its namespace is reaped, which for one whose parent died first is the host
/// init's to do, in its own time.
fn exiting(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().nth(6)?.parse::<u64>().ok()
        })
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

/// Nothing of the `sandlot-<instance>` sub-tree outlives the server (the kernel gets a
/// moment to finish tearing down what was killed; a zombie, or a process that has begun
/// to exit, is dead).
pub async fn assert_no_process_of(instance: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left: Vec<(i32, String)> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| instance_of(pid).as_deref() == Some(instance))
            .filter(|&pid| !matches!(proc_stat(pid), Some((_, 'Z' | 'X', _)) | None))
            .filter(|&pid| !exiting(pid))
            .map(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"));
                (pid, comm.unwrap_or_default().trim().to_string())
            })
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the server's sandboxes outlived it: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The directories of the `sandlot-<instance>` sub-tree still present, in every cgroup
/// hierarchy this host mounts.
pub fn instance_groups(instance: &str) -> Vec<std::path::PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            let fs_type = fs.split_whitespace().next()?;
            matches!(fs_type, "cgroup" | "cgroup2")
                .then(|| fields.split_whitespace().nth(4).map(str::to_string))?
        })
        .map(|mount_point| std::path::Path::new(&mount_point).join(instance))
        .filter(|dir| dir.exists())
        .collect()
}
