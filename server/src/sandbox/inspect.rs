//! What runs in a sandbox, read from `/proc` for the host pids in its cgroups.

use sandlot_protocol::SystemProcess;

/// The sandbox's processes as it sees them (its pids), without its pid 1 and without the
/// exec helpers, which live outside its pid namespace.
pub fn processes(host_pids: &[i32], sandbox_uid: u32) -> Vec<SystemProcess> {
    let ticks = clock_ticks();
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let mut out: Vec<SystemProcess> = host_pids
        .iter()
        .filter_map(|&pid| read(pid, sandbox_uid, ticks, uptime))
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

fn read(pid: i32, sandbox_uid: u32, ticks: f64, uptime: f64) -> Option<SystemProcess> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    // The last NSpid is its pid in the innermost namespace: the sandbox's.
    let ns_pids: Vec<i32> = field("NSpid")?
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let inner = *ns_pids.last()?;
    if ns_pids.len() < 2 || inner == 1 {
        return None;
    }
    let uid: u32 = field("Uid")?.split_whitespace().next()?.parse().ok()?;
    let rss_kb: f64 = field("VmRSS")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised name, which may itself hold spaces or parentheses.
    let rest: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let state = *rest.first()?;
    let cpu_ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    let started = rest.get(19)?.parse::<f64>().ok()? / ticks;
    let alive = (uptime - started).max(0.01);
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default();
    Some(SystemProcess {
        pid: inner,
        name: field("Name").unwrap_or_default().to_string(),
        status: match state {
            "R" => "running",
            "S" => "sleeping",
            "D" => "disk-sleep",
            "T" | "t" => "stopped",
            "Z" => "zombie",
            _ => "idle",
        }
        .into(),
        cpu_percent: (cpu_ticks / ticks / alive * 1000.0).round() / 10.0,
        memory_mb: (rss_kb / 1024.0 * 10.0).round() / 10.0,
        command,
        user: if uid == sandbox_uid { "user" } else { "root" }.into(),
        process_id: api_process_of(pid),
        context_id: context_of(pid),
    })
}

/// The API process whose tracking cgroup (`<sandbox>/<process id>` in the v2 tree) holds it.
fn api_process_of(pid: i32) -> Option<String> {
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let unified = groups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let last = unified.trim_end().rsplit('/').next()?;
    last.starts_with("proc_").then(|| last.to_string())
}

/// The context whose interpreter's tracking cgroup (`<sandbox>/context.<id>.<n>`) holds it.
fn context_of(pid: i32) -> Option<String> {
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let unified = groups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let last = unified.trim_end().rsplit('/').next()?;
    let rest = last.strip_prefix("context.")?;
    rest.rsplit_once('.').map(|(id, _)| id.to_string())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    }
}
