//! The seccomp allow-list applied to every sandboxed process.
//!
//! The facts come from Docker's default profile (which syscalls an unprivileged container
//! may make, and which argument filters apply), applied to a process that holds no
//! capabilities at all: every syscall Docker gates behind a capability is left out. Where
//! this list is stricter than Docker's, the reason is next to the entry in [`REFUSED`].
//!
//! Three filters are stacked. The kernel runs all of them on every syscall and takes the
//! strictest answer; between two errno answers, the filter installed last wins.
//!
//! 1. [`allow_list`]: the syscalls below, a few with argument filters; anything else gets
//!    **EPERM**. EPERM is the kernel's own "you may not" for privileged operations, so a
//!    program that tries one fails visibly instead of quietly taking another path; it is
//!    also Docker's and runc's default. Foreign-architecture syscalls (`int 0x80`, i386
//!    numbers) kill the process: seccompiler checks the audit arch first.
//! 2. [`enosys_list`]: `clone3` answers **ENOSYS**, so libc falls back to `clone`, whose
//!    flags a filter can inspect (clone3 passes them in memory, out of the filter's reach).
//! 3. [`number_ranges`]: syscalls numbered above the newest one this list knows
//!    ([`LAST_KNOWN_SYSCALL`]) answer **ENOSYS**, as on an older kernel, so a libc newer than
//!    this list falls back to the older call it would use there instead of failing with
//!    EPERM (runc does the same). x32-ABI numbers (`__X32_SYSCALL_BIT`) answer EPERM: the
//!    x32 ABI is a second syscall table on the native arch, and nothing here uses it.
//!
//! Unconditionally allowed syscalls cost nothing per call: the kernel caches a verdict that
//! does not depend on the arguments. Only `clone`, `socket`, `socketpair` and `personality`
//! run the filter.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

use super::syscalls::*;

/// `clone` flags that would create namespaces.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWCGROUP) as u64;

/// Socket families a sandbox may create: local sockets, IPv4/IPv6 (its network namespace
/// decides where they reach), and netlink (libc lists interfaces and addresses with it).
/// Everything else (vsock to the hypervisor, packet, bluetooth, the many rarely-used
/// protocol families) is refused: it is kernel code nothing here needs.
const SOCKET_FAMILIES: &[libc::c_int] = &[
    libc::AF_UNIX,
    libc::AF_INET,
    libc::AF_INET6,
    libc::AF_NETLINK,
];

/// `personality` values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, both, and the
/// query. Others (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) weaken the process's hardening.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `__X32_SYSCALL_BIT`: x32-ABI syscalls are native-arch syscalls with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The filters to install, in order (see the module doc).
pub fn filters() -> io::Result<Vec<BpfProgram>> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| io::Error::other(format!("seccomp arch: {e:?}")))?;
    let allow = SeccompFilter::new(
        allow_list()?,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    );
    let enosys = SeccompFilter::new(
        enosys_list(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    );
    let mut programs = [allow, enosys]
        .into_iter()
        .map(|f| {
            f.and_then(|f| f.try_into())
                .map_err(|e| io::Error::other(format!("seccomp filter: {e:?}")))
        })
        .collect::<io::Result<Vec<BpfProgram>>>()?;
    programs.push(number_ranges());
    Ok(programs)
}

/// Every allowed syscall with its rules (an empty rule list allows any arguments).
fn allow_list() -> io::Result<BTreeMap<i64, Vec<SeccompRule>>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        allowed().into_iter().map(|nr| (nr, Vec::new())).collect();
    rules
        .extend(conditional_rules().map_err(|e| io::Error::other(format!("seccomp rule: {e:?}")))?);
    // A refused syscall that slipped onto the list is a bug: fail closed.
    if let Some((nr, why)) = refused().into_iter().find(|(nr, _)| rules.contains_key(nr)) {
        return Err(io::Error::other(format!(
            "syscall {nr} is on the allow-list but refused: {why}"
        )));
    }
    Ok(rules)
}

fn refused() -> Vec<(libc::c_long, &'static str)> {
    let mut all = REFUSED.to_vec();
    #[cfg(target_arch = "x86_64")]
    all.extend_from_slice(REFUSED_X86_64);
    all
}

fn allowed() -> Vec<libc::c_long> {
    let mut all = ALLOWED.to_vec();
    #[cfg(target_arch = "x86_64")]
    all.extend_from_slice(ALLOWED_X86_64);
    all
}

/// The syscalls allowed only with some arguments.
fn conditional_rules() -> Result<Vec<(i64, Vec<SeccompRule>)>, seccompiler::BackendError> {
    let arg0_is = |value: u64| -> Result<SeccompRule, seccompiler::BackendError> {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            value,
        )?])
    };
    // Threads and processes, but no namespaces: those would be new kernel attack surface
    // and could undo the sandbox's own (clone's flags are its first argument on x86-64 and
    // aarch64).
    let clone = SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS),
        0,
    )?])?;
    let families = SOCKET_FAMILIES
        .iter()
        .map(|&f| arg0_is(f as u64))
        .collect::<Result<Vec<_>, _>>()?;
    // socketpair only makes sense for local sockets.
    let pair = vec![arg0_is(libc::AF_UNIX as u64)?];
    let personalities = PERSONALITIES
        .iter()
        .map(|&p| arg0_is(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![
        (libc::SYS_clone, vec![clone]),
        (libc::SYS_socket, families),
        (libc::SYS_socketpair, pair),
        (libc::SYS_personality, personalities),
    ])
}

/// Refused with ENOSYS rather than EPERM: callers have a fallback they take on ENOSYS.
fn enosys_list() -> BTreeMap<i64, Vec<SeccompRule>> {
    BTreeMap::from([(libc::SYS_clone3, Vec::new())])
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 62 | 0x8000_0000 | 0x4000_0000; // EM_X86_64, 64-bit, LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 183 | 0x8000_0000 | 0x4000_0000; // EM_AARCH64, 64-bit, LE

/// Answers by syscall number range, which seccompiler's per-number rules cannot express:
/// x32-ABI numbers get EPERM, numbers beyond [`LAST_KNOWN_SYSCALL`] get ENOSYS, and the
/// rest is left to the allow-list. Only instructions the kernel's verdict cache understands
/// (loads of the number and arch, constant jumps), so allowed syscalls stay free.
fn number_ranges() -> BpfProgram {
    const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    // Offsets of `struct seccomp_data`: nr at 0, arch at 4.
    vec![
        op(LD_ABS_W, 4, 0, 0),
        op(JEQ, AUDIT_ARCH_NATIVE, 1, 0),
        op(RET, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        op(LD_ABS_W, 0, 0, 0),
        op(JGE, X32_SYSCALL_BIT, 0, 1),
        op(RET, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32, 0, 0),
        op(JGT, LAST_KNOWN_SYSCALL as u32, 0, 1),
        op(RET, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32, 0, 0),
        op(RET, libc::SECCOMP_RET_ALLOW, 0, 0),
    ]
}

/// Installs the filters on the calling thread (requires `no_new_privs`).
pub fn apply(programs: &[BpfProgram]) -> io::Result<()> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(|e| io::Error::other(format!("seccomp: {e:?}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_syscalls_are_never_allowed() {
        // allow_list() fails when a refused syscall is on it.
        allow_list().unwrap();
    }

    #[test]
    fn each_syscall_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for nr in allowed()
            .into_iter()
            .chain(refused().into_iter().map(|(nr, _)| nr))
        {
            assert!(seen.insert(nr), "syscall {nr} is listed twice");
            assert!(
                nr <= LAST_KNOWN_SYSCALL,
                "syscall {nr} is beyond the last known one"
            );
        }
        for (nr, _) in conditional_rules().unwrap() {
            assert!(
                seen.insert(nr),
                "syscall {nr} is both conditional and listed"
            );
        }
    }

    #[test]
    fn the_filters_compile_within_the_kernel_limit() {
        let programs = filters().unwrap();
        assert_eq!(programs.len(), 3);
        // BPF_MAXINSNS is 4096 per program.
        assert!(programs.iter().all(|p| p.len() < 4096));
    }
}
