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
