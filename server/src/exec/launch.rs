//! Turning a run request into a launch: the language's launcher, the environment, the
//! working directory, the time limit, and the resource limits of the helper.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sandlot_protocol::{defaults, Language, RunSpec};

use crate::node::{NodeError, NodeResult};
use crate::sandbox::cgroup::Cgroups;
use crate::sandbox::isolation::{CodeDelivery, Rlimits};
use crate::sandbox::template::TemplateSpec;
use crate::shutdown::Shutdown;

/// Everything about the sandbox a process needs to start in it.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: PathBuf,
    pub cgroups: Arc<Cgroups>,
    pub sandbox_id: String,
    pub init_pid: i32,
    pub uid: u32,
    pub rlimits: Rlimits,
    pub argv: Vec<String>,
    pub delivery: CodeDelivery,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// The sandbox's memory limit (named when the out-of-memory killer ends the process).
    pub memory_mb: u64,
    pub shutdown: Shutdown,
}

/// A run request, checked: what to start and how long it may take.
#[derive(Debug)]
pub struct CheckedRun {
    pub code: String,
    pub language: Language,
    pub timeout_secs: u64,
    pub cwd: String,
    /// The request's own variables (the sandbox's are added at launch).
    pub env: BTreeMap<String, String>,
    pub name: Option<String>,
}

/// Environment every sandboxed process starts with (sandbox and request env override it).
const BASE_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/workspace"),
    ("USER", "user"),
    ("LOGNAME", "user"),
    ("LANG", "C.UTF-8"),
    ("PYTHONUNBUFFERED", "1"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
];

/// Checks an environment map: names non-empty without `=` or NUL, values without NUL.
pub fn check_env(env: &BTreeMap<String, String>) -> NodeResult<()> {
    let mut total = 0;
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(NodeError::Invalid(format!(
                "invalid environment variable name '{k}'"
            )));
        }
        // The kernel refuses an exec whose single `NAME=value` string passes 128 KiB.
        if k.len() + v.len() + 1 > MAX_ENV_ENTRY_BYTES {
            return Err(NodeError::Invalid(format!(
                "environment variable '{k}' is too large (at most {MAX_ENV_ENTRY_BYTES} bytes)"
            )));
        }
        total += k.len() + v.len() + 1;
    }
    if total > MAX_ENV_TOTAL_BYTES {
        return Err(NodeError::Invalid(format!(
            "the environment is too large ({total} bytes; at most {MAX_ENV_TOTAL_BYTES})"
        )));
    }
    Ok(())
}

/// Bounds of one environment (the sandbox's, or a request's), so an exec never fails on
/// the kernel's argument limits after the request was accepted.
const MAX_ENV_ENTRY_BYTES: usize = 64 * 1024;
const MAX_ENV_TOTAL_BYTES: usize = 256 * 1024;

/// Validates a run request against the sandbox's template and the server's limits.
pub fn check(
    spec: RunSpec,
    template: &TemplateSpec,
    default_timeout: u64,
    max_timeout: u64,
) -> NodeResult<CheckedRun> {
    let code = spec.code.clone().ok_or(NodeError::MissingField("code"))?;
    let requested = spec.language.as_deref().unwrap_or(defaults::LANGUAGE);
    let language = Language::parse(requested)
        .filter(|l| template.supports(*l))
        .ok_or_else(|| {
            NodeError::Invalid(format!(
                "unsupported language '{requested}' for template {}; use one of: {}",
                template.name,
                template
                    .languages
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let timeout_secs = spec.timeout.unwrap_or(default_timeout);
    if timeout_secs == 0 || timeout_secs > max_timeout {
        return Err(NodeError::Invalid(format!(
            "timeout must be between 1 and {max_timeout} seconds"
        )));
    }
    let cwd = spec.workdir().unwrap_or(defaults::WORKDIR).to_string();
    if !cwd.starts_with('/') {
        return Err(NodeError::Invalid(
            "workdir must be an absolute path".into(),
        ));
    }
    // The helper hands it to chdir(2), which cannot take a NUL: refuse it here, not later.
    if cwd.contains('\0') {
        return Err(NodeError::Invalid(
            "workdir must not contain a NUL character".into(),
        ));
    }
    let env = spec.env.unwrap_or_default();
    check_env(&env)?;
    Ok(CheckedRun {
        code,
        language,
        timeout_secs,
        cwd,
        env,
        name: spec.name.filter(|n| !n.is_empty()),
    })
}

/// The process's full environment: base, then the sandbox's, then the request's.
pub fn environment(
    sandbox_env: BTreeMap<String, String>,
    request_env: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BASE_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(sandbox_env);
    env.extend(request_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.into_iter().collect()
}

/// Open files one sandbox may hold through descriptors, all its processes together
/// (`RLIMIT_NOFILE` × `--sandbox-pids`). The host has one file table, and a file past
/// `fs.file-max` fails for every unprivileged process of the host, other sandboxes
/// included. Measured here (file-max 2,466,170): with the old 4096 per process, one sandbox
/// held 1,031,184 files (252 processes × 4092; 42 % of the table) in 290 MiB of its
/// 512 MiB, so the memory limit alone did not stop it. With 1024 it holds 257,040 (10.4 %;
/// 77 MiB of kernel memory for the whole sandbox, charged to its memory cgroup). Files kept
/// open by mappings rather than descriptors escape this count; the memory limit bounds them
/// (about 400 bytes each: 1.3 million at 512 MiB).
const FD_BUDGET_PER_SANDBOX: u64 = 262_144;
/// Linux's usual soft limit: what programs are written to live within.
const NOFILE_MAX: u64 = 1024;
/// Below this, ordinary programs (a shell pipeline, `pip`) stop working.
const NOFILE_MIN: u64 = 64;

/// The per-process descriptor limit that keeps a sandbox within its budget.
pub fn nofile_for(pids: u64) -> u64 {
    (FD_BUDGET_PER_SANDBOX / pids.max(1)).clamp(NOFILE_MIN, NOFILE_MAX)
}

/// Limits of the helper and what it runs. Without cgroup memory limits (no controller),
/// an address-space limit stands in.
pub fn rlimits(pids: u64, memory_mb: u64, cgroup_limits: bool) -> Rlimits {
    Rlimits {
        nofile: nofile_for(pids),
        nproc: pids,
        fsize_bytes: 1024 * 1024 * 1024,
        as_bytes: if cgroup_limits {
            0
        } else {
            (memory_mb + 512) * 1024 * 1024
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_limit_keeps_a_sandbox_within_its_budget() {
        assert_eq!(nofile_for(256), 1024, "the default: 256 processes x 1024");
        assert_eq!(nofile_for(32), 1024, "never above the usual soft limit");
        assert_eq!(nofile_for(1024), 256);
        assert_eq!(nofile_for(1 << 20), 64, "never below what a shell needs");
        assert_eq!(nofile_for(0), 1024);
        for pids in [1, 100, 256, 1000, 4096] {
            assert!(pids * nofile_for(pids) <= FD_BUDGET_PER_SANDBOX.max(pids * NOFILE_MIN));
        }
    }
}

#[cfg(test)]
mod check_tests {
    use super::*;
    use crate::sandbox::template::TEMPLATES;

    /// Found by `fuzz/` (fuzz_request_bodies): a NUL in `workdir` passed the checks, and the
    /// run then failed in the exec helper's chdir instead of being answered 400.
    #[test]
    fn a_workdir_with_a_nul_is_refused() {
        for (workdir, working_dir) in [(Some("/\0workspace"), None), (None, Some("/tmp\0"))] {
            let spec = RunSpec {
                code: Some("true".into()),
                language: Some("bash".into()),
                workdir: workdir.map(Into::into),
                working_dir: working_dir.map(Into::into),
                ..Default::default()
            };
            match check(spec, &TEMPLATES[1], 60, 86_400) {
                Err(NodeError::Invalid(m)) => assert!(m.contains("NUL"), "{m}"),
                other => panic!("a NUL workdir was not refused: {other:?}"),
            }
        }
        let fine = RunSpec {
            code: Some("true".into()),
            language: Some("bash".into()),
            workdir: Some("/workspace/app".into()),
            ..Default::default()
        };
        assert_eq!(
            check(fine, &TEMPLATES[1], 60, 86_400).unwrap().cwd,
            "/workspace/app"
        );
    }
}
