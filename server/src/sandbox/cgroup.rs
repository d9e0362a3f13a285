//! Per-sandbox cgroups: limits, kill-the-tree, freeze, and the start-up sweep.
//!
//! The layout is detected once at start:
//! * **hybrid** (this machine): limits live in the v1 `memory`, `pids` and `cpu` hierarchies;
//!   the v2 tree at `/sys/fs/cgroup/unified` (no controllers) gives `cgroup.kill` and
//!   `cgroup.freeze` for tracking and killing;
//! * **pure v2**: one tree carries limits, kill and freeze;
//! * **none usable**: rlimits alone (said in the log).
//!
//! Every group is created under the server's own cgroup (read from `/proc/self/cgroup`) in a
//! `sandlot-<instance>` sub-tree (one per data dir), so the server never touches groups it does not own and can sweep that
//! sub-tree after a crash. Each sandbox gets `<sub-tree>/<sandbox>`; each process additionally
//! gets `<sub-tree>/<sandbox>/<process>` in the tracking tree so killing one process kills its
//! whole tree and nothing else.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::subtree_lock::SubtreeLock;

const ROOT: &str = "/sys/fs/cgroup";
/// A server's sub-tree is this followed by its instance name.
const SUBTREE_PREFIX: &str = "sandlot-";
/// How long the sweep at start gives each leftover sandbox's groups to empty.
const SWEEP_WAIT: Duration = Duration::from_secs(1);

/// Resource limits of one sandbox.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u64,
    /// CPU quota in cores (e.g. 1.0).
    pub cpus: f64,
}

/// The cgroup layout sandlotd found at start.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// v1 hierarchies used for limits: (controller, our base dir).
    v1: Vec<(&'static str, PathBuf)>,
    /// v2 base dir used for tracking, kill and freeze (and limits when `v2_limits`).
    v2: Option<PathBuf>,
    v2_limits: bool,
    /// Our sub-tree's name (`sandlot-<instance>`) and its lock, held while the server runs
    /// (`None` where `/run/sandlot` cannot be written: nothing will sweep it after a crash).
    subtree: String,
    owner: Option<Arc<SubtreeLock>>,
}

impl Cgroups {
    /// Detects the layout and creates our sub-trees, named after `instance` so that servers
    /// with different data dirs never sweep each other's sandboxes.
    pub fn detect(instance: &str) -> Self {
        let name = format!("{SUBTREE_PREFIX}{instance}");
        let subtree = name.as_str();
        // Before the sub-tree exists: a server sweeping it (ours crashed) finishes first.
        let owner = match SubtreeLock::acquire(subtree) {
            Ok(lock) => Some(Arc::new(lock)),
            Err(e) => {
                warn!("cannot lock our cgroup sub-tree in /run/sandlot ({e}): after a crash, no other server will sweep it");
                None
            }
        };
        let own = own_cgroups();
        let mut v1 = Vec::new();
        let mut v2 = None;
        let mut v2_limits = false;

        let pure_v2 = fs::read_to_string(format!("{ROOT}/cgroup.controllers"))
            .map(|c| c.split_whitespace().any(|c| c == "memory"))
            .unwrap_or(false);
        if pure_v2 {
            let base = join(ROOT, own.v2.as_deref().unwrap_or("/")).join(subtree);
            if fs::create_dir_all(&base).is_ok() {
                // Controllers must be enabled top-down; the server's own group keeps its
                // processes, so this may fail, and then only kill/freeze are available.
                v2_limits = enable_controllers(&base);
                v2 = Some(base);
            }
        } else {
            for ctrl in ["memory", "pids", "cpu"] {
                let Some(rel) = own.v1.iter().find(|(c, _)| c.split(',').any(|c| c == ctrl)) else {
                    continue;
                };
                let base = join(&format!("{ROOT}/{ctrl}"), &rel.1).join(subtree);
                if fs::create_dir_all(&base).is_ok() {
                    v1.push((ctrl, base));
                }
            }
            let unified = format!("{ROOT}/unified");
            if Path::new(&unified).join("cgroup.procs").exists() {
                let base = join(&unified, own.v2.as_deref().unwrap_or("/")).join(subtree);
                if fs::create_dir_all(&base).is_ok() && base.join("cgroup.kill").exists() {
                    v2 = Some(base);
                }
            }
        }
        Self {
            v1,
            v2,
            v2_limits,
            subtree: name,
            owner,
        }
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        let limits: Vec<&str> = self.v1.iter().map(|(c, _)| *c).collect();
        match (&self.v2, self.v2_limits, limits.is_empty()) {
            (Some(_), true, _) => "cgroup v2 (limits, kill, freeze)".into(),
            (Some(_), false, false) => {
                format!("cgroup v1 limits ({}) + v2 kill/freeze", limits.join(","))
            }
            (Some(_), false, true) => "cgroup v2 kill/freeze only; limits by rlimits".into(),
            (None, _, false) => format!(
                "cgroup v1 limits ({}); kill by process group",
                limits.join(",")
            ),
            (None, _, true) => "no usable cgroups; limits by rlimits only".into(),
        }
    }

    /// Whether memory/pids limits are enforced by cgroups (else rlimits must do it).
    pub fn enforces_limits(&self) -> bool {
        self.v2_limits || self.v1.iter().any(|(c, _)| *c == "pids")
    }

    /// Creates a sandbox's groups and applies its limits; returns where its init goes.
    pub fn create_sandbox(&self, sandbox: &str, limits: Limits) -> io::Result<InitGroups> {
        let mut groups = InitGroups::default();
        for (ctrl, base) in &self.v1 {
            let dir = base.join(sandbox);
            fs::create_dir_all(&dir)?;
            match *ctrl {
                "memory" => {
                    write(&dir, "memory.limit_in_bytes", limits.memory_bytes)?;
                    // Swap is counted too where the kernel allows it.
                    let _ = write(&dir, "memory.memsw.limit_in_bytes", limits.memory_bytes);
                }
                "pids" => write(&dir, "pids.max", limits.pids)?,
                "cpu" => {
                    let period = 100_000u64;
                    write(&dir, "cpu.cfs_period_us", period)?;
                    write(
                        &dir,
                        "cpu.cfs_quota_us",
                        (limits.cpus * period as f64) as u64,
                    )?;
                }
                _ => {}
            }
            groups
                .v1_tasks
                .push(dir.join("tasks").to_string_lossy().into_owned());
        }
        if let Some(base) = &self.v2 {
            let dir = base.join(sandbox);
            fs::create_dir_all(&dir)?;
            if self.v2_limits {
                enable_controllers(&dir);
                let init = dir.join("init");
                fs::create_dir_all(&init)?;
                write(&dir, "memory.max", limits.memory_bytes)?;
                let _ = write(&dir, "memory.swap.max", 0);
                write(&dir, "pids.max", limits.pids)?;
                let quota = (limits.cpus * 100_000.0) as u64;
                fs::write(dir.join("cpu.max"), format!("{quota} 100000"))?;
                groups.v2 = Some(init.to_string_lossy().into_owned());
            } else {
                groups.v2 = Some(dir.to_string_lossy().into_owned());
            }
        }
        Ok(groups)
    }

    /// Where a process run by the exec or terminal helper goes, without the kernel's global
    /// cgroup lock (see [`InitGroups`]): the `tasks` files of the sandbox's v1 limit groups
    /// (the single-threaded helper moves its own thread there), then the `cgroup.procs` of
    /// the process's own v2 tracking group (created here), which the helper clones the
    /// process straight into (`isolation::exec::join_sandbox`).
    pub fn create_process(&self, sandbox: &str, process: &str) -> io::Result<Vec<String>> {
        let mut procs: Vec<String> = self
            .v1
            .iter()
            .map(|(_, base)| {
                base.join(sandbox)
                    .join("tasks")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        if let Some(base) = &self.v2 {
            let dir = base.join(sandbox).join(process);
            create_in_sandbox(&dir)?;
            procs.push(dir.join("cgroup.procs").to_string_lossy().into_owned());
        }
        Ok(procs)
    }

    /// Where a context forked from the python fork server goes, without the kernel's global
    /// cgroup lock (see [`InitGroups`]): its only thread joins the v1 limit groups through
    /// `tasks`, and the fork is made straight into its tracking group (v2), whose directory
    /// this creates. `v2_procs` is that group's `cgroup.procs`, for a kernel that cannot
    /// clone into a cgroup (the fork then joins it by a write, lock and all).
    pub fn create_forked_process(&self, sandbox: &str, process: &str) -> io::Result<ForkedGroups> {
        let v1_tasks = self
            .v1
            .iter()
            .map(|(_, base)| {
                base.join(sandbox)
                    .join("tasks")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let v2_dir = match &self.v2 {
            Some(base) => {
                let dir = base.join(sandbox).join(process);
                create_in_sandbox(&dir)?;
                Some(dir)
            }
            None => None,
        };
        Ok(ForkedGroups { v1_tasks, v2_dir })
    }

    /// Whether processes get tracking groups of their own (cgroup v2), which
    /// [`Self::kill_process`] kills whole.
    pub fn tracks_processes(&self) -> bool {
        self.v2.is_some()
    }

    /// Kills every process in a process's tracking group. False when there is no such group
    /// (the caller then falls back to the process group).
    pub fn kill_process(&self, sandbox: &str, process: &str) -> bool {
        match &self.v2 {
            Some(base) => {
                fs::write(base.join(sandbox).join(process).join("cgroup.kill"), "1").is_ok()
            }
            None => false,
        }
    }

    /// Removes a finished process's tracking group.
    pub fn remove_process(&self, sandbox: &str, process: &str) {
        if let Some(base) = &self.v2 {
            let _ = remove_dir_retrying(&base.join(sandbox).join(process));
        }
    }

    /// Freezes (`true`) or thaws a sandbox. Errors when no freezer is available.
    pub fn freeze_sandbox(&self, sandbox: &str, frozen: bool) -> io::Result<()> {
        match &self.v2 {
            Some(base) => fs::write(
                base.join(sandbox).join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
            ),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no cgroup freezer",
            )),
        }
    }

    /// Removes a killed sandbox's groups, killing whatever is still in them round after
    /// round for up to `within`: a process can land in a group after its sandbox was killed
    /// (a context forked as its sandbox went), or still be exiting, and `rmdir` fails while
    /// a member is left. False: a group is still there.
    pub fn remove_sandbox(&self, sandbox: &str, within: Duration) -> bool {
        self.kill_and_remove(&self.dirs_of(sandbox), within)
    }

    /// Kills and removes every sandbox group left by an earlier run. Returns how many
    /// sandboxes were swept.
    pub fn sweep(&self) -> usize {
        let mut seen = std::collections::BTreeSet::new();
        for base in self.bases() {
            for entry in fs::read_dir(&base).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    seen.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        for sandbox in &seen {
            self.remove_sandbox(sandbox, SWEEP_WAIT);
        }
        seen.len()
    }

    /// Removes our sub-trees on a clean shutdown, with whatever is left in them (as
    /// [`Cgroups::remove_sandbox`] does for one sandbox, for everything a delete could not
    /// remove).
    pub fn remove_base(&self, within: Duration) {
        // Whatever could not be removed stays marked as ours, for a later server to sweep.
        if self.kill_and_remove(&self.bases(), within) {
            if let Some(owner) = &self.owner {
                owner.remove_file();
            }
        }
    }

    /// Kills and removes the sub-trees beside ours whose server died and was not started
    /// again ([`SubtreeLock::take_orphaned`]); for each one gone, `also` is called with its
    /// instance name while its lock is still held (a server restarting on that data dir
    /// waits until then). Returns their instance names.
    pub fn sweep_orphaned_servers(&self, mut also: impl FnMut(&str)) -> Vec<String> {
        let parents: Vec<PathBuf> = self
            .bases()
            .iter()
            .filter_map(|b| b.parent().map(Path::to_path_buf))
            .collect();
        let mut names = std::collections::BTreeSet::new();
        for parent in &parents {
            for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(SUBTREE_PREFIX)
                    && name != self.subtree
                    && entry.file_type().is_ok_and(|t| t.is_dir())
                {
                    names.insert(name);
                }
            }
        }
        let mut swept = Vec::new();
        for name in names {
            let Some(lock) = SubtreeLock::take_orphaned(&name) else {
                continue;
            };
            let roots: Vec<PathBuf> = parents.iter().map(|p| p.join(&name)).collect();
            // Something left: the lock file stays, for a later server to try again.
            if self.kill_and_remove(&roots, SWEEP_WAIT) {
                let instance = &name[SUBTREE_PREFIX.len()..];
                also(instance);
                lock.remove_file();
                swept.push(instance.to_string());
            }
        }
        swept
    }

    /// Kills every member of the trees under `roots` and removes their groups, again every
    /// few milliseconds until none is left or `within` has passed. False: some are left.
    fn kill_and_remove(&self, roots: &[PathBuf], within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let mut left = false;
            for root in roots.iter().filter(|r| r.exists()) {
                match &self.v2 {
                    Some(v2) if root.starts_with(v2) => {
                        let _ = fs::write(root.join("cgroup.kill"), "1");
                    }
                    _ => kill_v1_members(root),
                }
                for dir in walk(root) {
                    let _ = fs::remove_dir(&dir);
                }
                left |= root.exists();
            }
            if !left {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // `rmdir` fails with EBUSY until the last member has been reaped.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What a sandbox uses now, read from whichever layout carries each number.
    pub fn usage(&self, sandbox: &str) -> Usage {
        let v1 = |ctrl: &str| {
            self.v1
                .iter()
                .find(|(c, _)| *c == ctrl)
                .map(|(_, base)| base.join(sandbox))
        };
        let v2 = self.v2.as_ref().map(|base| base.join(sandbox));
        let mut usage = Usage::default();
        if let Some(dir) = v1("memory") {
            usage.memory_bytes = read_u64(&dir, "memory.usage_in_bytes");
        } else if let (Some(dir), true) = (&v2, self.v2_limits) {
            usage.memory_bytes = read_u64(dir, "memory.current");
        }
        usage.oom_kills = self.oom_kills(sandbox);
        // v2 counts CPU time in every group; v1 only where cpuacct shares the cpu hierarchy.
        usage.cpu_usec = v2
            .as_ref()
            .and_then(|dir| read_key(dir, "cpu.stat", "usage_usec"))
            .or_else(|| read_u64(&v1("cpu")?, "cpuacct.usage").map(|ns| ns / 1000));
        // Every member: the v1 groups hold them directly, the v2 tree in sub-groups.
        usage.pids = match (v1("pids"), &v2) {
            (Some(dir), _) => read_pids(&dir),
            (None, Some(dir)) => walk(dir).iter().flat_map(|d| read_pids(d)).collect(),
            (None, None) => Vec::new(),
        };
        usage
    }

    /// Processes the out-of-memory killer has ended in a sandbox so far.
    pub fn oom_kills(&self, sandbox: &str) -> Option<u64> {
        if let Some((_, base)) = self.v1.iter().find(|(c, _)| *c == "memory") {
            return read_key(&base.join(sandbox), "memory.oom_control", "oom_kill");
        }
        let dir = self.v2.as_ref().filter(|_| self.v2_limits)?.join(sandbox);
        read_key(&dir, "memory.events", "oom_kill")
    }

    fn bases(&self) -> Vec<PathBuf> {
        self.v1
            .iter()
            .map(|(_, b)| b.clone())
            .chain(self.v2.clone())
            .collect()
    }

    fn dirs_of(&self, sandbox: &str) -> Vec<PathBuf> {
        self.bases().into_iter().map(|b| b.join(sandbox)).collect()
    }
}

/// Where a forked context goes ([`Cgroups::create_forked_process`]).
#[derive(Debug, Clone, Default)]
pub struct ForkedGroups {
    /// The v1 limit groups' `tasks` files.
    pub v1_tasks: Vec<String>,
    /// Its tracking group (v2).
    pub v2_dir: Option<PathBuf>,
}

impl ForkedGroups {
    /// The tracking group's `cgroup.procs`.
    pub fn v2_procs(&self) -> Option<String> {
        self.v2_dir
            .as_ref()
            .map(|d| d.join("cgroup.procs").to_string_lossy().into_owned())
    }
}

/// Where a sandbox's init goes, chosen so that getting there never takes the kernel's
/// global cgroup lock for writing: moving a whole process (a `cgroup.procs` write) does,
/// and it then waits for an RCU grace period unless another move happened within the last
/// one (10–20 ms on this 2-core host, most of a create whenever creates were not back to
/// back). The single-threaded `__sandbox-init` moves only its own thread into the v1 groups
/// (`tasks`, which skips that lock), and creates the sandbox's pid 1 directly in the v2
/// group (`clone3` with `CLONE_INTO_CGROUP`), from where everything in the sandbox descends.
#[derive(Debug, Clone, Default)]
pub struct InitGroups {
    /// `tasks` files of the sandbox's v1 groups.
    pub v1_tasks: Vec<String>,
    /// The v2 group (directory) pid 1 starts in: the sandbox's group, or its `init` leaf
    /// where v2 carries the limits.
    pub v2: Option<String>,
}

/// A sandbox's use of its limits (`None` where this host's cgroups do not say).
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu_usec: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Processes the out-of-memory killer has killed in the sandbox so far.
    pub oom_kills: Option<u64>,
    /// Host pids of every process in the sandbox's groups.
    pub pids: Vec<i32>,
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// The number after `key` in a flat-keyed file (`memory.events`, `cpu.stat`).
fn read_key(dir: &Path, file: &str, key: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn read_pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

struct OwnCgroups {
    /// (controller list, path) for each v1 hierarchy.
    v1: Vec<(String, String)>,
    v2: Option<String>,
}

fn own_cgroups() -> OwnCgroups {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        if ctrls.is_empty() {
            v2 = Some(path.to_string());
        } else {
            v1.push((ctrls.to_string(), path.to_string()));
        }
    }
    OwnCgroups { v1, v2 }
}

fn join(root: &str, rel: &str) -> PathBuf {
    Path::new(root).join(rel.trim_start_matches('/'))
}

fn write(dir: &Path, file: &str, value: u64) -> io::Result<()> {
    fs::write(dir.join(file), value.to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("{}/{file}: {e}", dir.display())))
}

fn enable_controllers(dir: &Path) -> bool {
    let parent = dir.parent().unwrap_or(dir);
    fs::write(parent.join("cgroup.subtree_control"), "+memory +pids +cpu").is_ok()
        && fs::write(dir.join("cgroup.subtree_control"), "+memory +pids +cpu").is_ok()
}

/// v1 has no `cgroup.kill`: signal every member until the group is empty (a fork racing the
/// loop is caught by the next round).
fn kill_v1_members(dir: &Path) {
    for _ in 0..50 {
        let mut any = false;
        for d in walk(dir) {
            for pid in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    any = true;
                    // SAFETY: signalling a pid read from our own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `dir` and its sub-directories, deepest first. The entry's own type (from the directory
/// listing) tells the groups from the control files: a `stat` of each of a v1 memory
/// group's ~40 files cost a delete more than everything else it does.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&entry.path()));
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// Makes a process's group inside its sandbox's, which must exist: a start that comes
/// after the sandbox was destroyed fails instead of making the sandbox's group again,
/// where nothing would remove it.
fn create_in_sandbox(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(e.kind(), "the sandbox is gone"),
        _ => e,
    })
}

/// `rmdir` fails with EBUSY until the last member has been reaped; give it a moment.
fn remove_dir_retrying(dir: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for _ in 0..100 {
        last = fs::remove_dir(dir);
        match &last {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    last
}
