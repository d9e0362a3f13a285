//! The seccomp allow-list applied to every sandboxed process.
//!
//! The facts come from Docker's default profile (which syscalls an unprivileged container
//! may make, and which argument filters apply), applied to a process that holds no
//! capabilities at all: every syscall Docker gates behind a capability is left out. Where
//! this list is stricter than Docker's, the reason is next to the entry in [`REFUSED`].
//!
//! One program, checked in this order:
//!
//! 1. a foreign architecture (`int 0x80`, i386 numbers) kills the process;
//! 2. x32-ABI numbers (`__X32_SYSCALL_BIT`) answer **EPERM**: the x32 ABI is a second
//!    syscall table on the native arch, and nothing here uses it;
//! 3. numbers above the newest one this list knows ([`LAST_KNOWN_SYSCALL`]) answer
//!    **ENOSYS**, as on an older kernel, so a libc newer than this list falls back to the
//!    older call it would use there instead of failing with EPERM (runc does the same);
//! 4. `clone3` answers **ENOSYS**, so libc falls back to `clone`, whose flags a filter can
//!    inspect (clone3 passes them in memory, out of the filter's reach);
//! 5. the syscalls below are allowed, a few only with some arguments; anything else gets
//!    **EPERM**, the kernel's own "you may not" for privileged operations, so a program
//!    that tries one fails visibly instead of quietly taking another path (Docker's and
//!    runc's default too).
//!
//! The syscall number is found by a binary search over ranges of numbers with one answer
//! (about ten comparisons), not a comparison per listed syscall. That matters at
//! installation, which every sandboxed process pays: the kernel translates and compiles the
//! program, and works out which syscalls it allows whatever their arguments by running it
//! once per syscall number. With seccompiler's one-comparison-per-syscall chain (~1,200
//! instructions in three stacked programs) that took ~0.7 ms per process.
//!
//! Unconditionally allowed syscalls cost nothing per call: the kernel caches a verdict that
//! does not depend on the arguments. Only `clone`, `socket`, `socketpair` and `personality`
//! run the filter.

use std::io;

use libc::sock_filter;

use super::syscalls::*;

/// `clone` flags that would create namespaces.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWCGROUP) as u64;
// The filter compares only the flags' low 32 bits: every namespace flag is there.
const _: () = assert!(NAMESPACE_FLAGS >> 32 == 0);

/// Socket families a sandbox may create: local sockets, IPv4/IPv6 (its network namespace
/// decides where they reach), and netlink (libc lists interfaces and addresses with it).
/// Everything else (vsock to the hypervisor, packet, bluetooth, the many rarely-used
/// protocol families) is refused: it is kernel code nothing here needs.
const SOCKET_FAMILIES: &[u32] = &[
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
    libc::AF_NETLINK as u32,
];

/// `personality` values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, both, and the
/// query. Others (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) weaken the process's hardening.
const PERSONALITIES: &[u32] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `__X32_SYSCALL_BIT`: x32-ABI syscalls are native-arch syscalls with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 62 | 0x8000_0000 | 0x4000_0000; // EM_X86_64, 64-bit, LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 183 | 0x8000_0000 | 0x4000_0000; // EM_AARCH64, 64-bit, LE

// Offsets in `struct seccomp_data`: the number, the arch, and the low half of the first
// argument (both architectures are little-endian).
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARG0_LOW_OFFSET: u32 = 16;

const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// The compiled filter, ready to install.
pub struct Program(Vec<sock_filter>);

impl Program {
    /// The instructions, `(code, jt, jf, k)` each.
    pub fn instructions(&self) -> impl Iterator<Item = (u16, u8, u8, u32)> + '_ {
        self.0.iter().map(|i| (i.code, i.jt, i.jf, i.k))
    }
}

/// What a syscall number gets.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Answer {
    /// A fixed return value.
    Ret(u32),
    /// Allowed only if the first argument's low 32 bits are one of these values.
    Arg0In(&'static [u32]),
    /// Allowed only if the first argument has none of these bits.
    Arg0Without(u32),
}

/// The filter (see the module doc).
pub fn filter() -> io::Result<Program> {
    let ranges = answers()?;
    let mut program = vec![
        op(LD_ABS_W, ARCH_OFFSET, 0, 0),
        op(JEQ, AUDIT_ARCH_NATIVE, 1, 0),
        op(RET, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        op(LD_ABS_W, NR_OFFSET, 0, 0),
    ];
    program.extend(search(&ranges));
    // BPF_MAXINSNS.
    if program.len() > 4096 {
        return Err(io::Error::other(format!(
            "seccomp filter: {} instructions",
            program.len()
        )));
    }
    Ok(Program(program))
}

/// Installs the filter on the calling thread (requires `no_new_privs`).
pub fn apply(program: &Program) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.0.len() as u16,
        filter: program.0.as_ptr() as *mut sock_filter,
    };
    // SAFETY: `prog` points at instructions that outlive the call; the kernel copies them.
    // prctl is variadic and reads its arguments as unsigned longs: pass them at that width.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog as libc::c_ulong,
        )
    };
    if ret != 0 {
        return Err(io::Error::other(format!(
            "seccomp: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn op(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Every syscall number, from 0 to `u32::MAX`, as ranges `(first number, answer)` in
/// ascending order, each running up to the next one's first number.
fn answers() -> io::Result<Vec<(u32, Answer)>> {
    let mut by_number = vec![Answer::Ret(EPERM); LAST_KNOWN_SYSCALL as usize + 1];
    for nr in allowed() {
        by_number[nr as usize] = Answer::Ret(ALLOW);
    }
    for (nr, answer) in conditional_rules() {
        by_number[nr as usize] = answer;
    }
    // A refused syscall that slipped onto the list is a bug: fail closed.
    if let Some((nr, why)) = refused()
        .into_iter()
        .find(|&(nr, _)| by_number[nr as usize] != Answer::Ret(EPERM))
    {
        return Err(io::Error::other(format!(
            "syscall {nr} is on the allow-list but refused: {why}"
        )));
    }
    // Refused too, but with ENOSYS (see the module doc).
    by_number[libc::SYS_clone3 as usize] = Answer::Ret(ENOSYS);
    let mut ranges: Vec<(u32, Answer)> = Vec::new();
    let all = by_number
        .into_iter()
        .enumerate()
        .map(|(nr, answer)| (nr as u32, answer))
        .chain([
            (LAST_KNOWN_SYSCALL as u32 + 1, Answer::Ret(ENOSYS)),
            (X32_SYSCALL_BIT, Answer::Ret(EPERM)),
        ]);
    for (nr, answer) in all {
        // Neighbours with the same fixed answer share a range; argument rules stay single.
        match ranges.last() {
            Some(&(_, last)) if last == answer && matches!(answer, Answer::Ret(_)) => {}
            _ => ranges.push((nr, answer)),
        }
    }
    Ok(ranges)
}

/// A binary search over `ranges` for the number in the accumulator, ending in each
/// range's answer.
fn search(ranges: &[(u32, Answer)]) -> Vec<sock_filter> {
    if let [(_, answer)] = ranges {
        return answer_code(*answer);
    }
    let mid = ranges.len() / 2;
    let (below, above) = (search(&ranges[..mid]), search(&ranges[mid..]));
    let mut code = Vec::with_capacity(below.len() + above.len() + 2);
    match u8::try_from(below.len()) {
        // Past the pivot: jump over the lower half.
        Ok(skip) => code.push(op(JGE, ranges[mid].0, skip, 0)),
        // Too far for a conditional jump (8 bits): through an unconditional one.
        Err(_) => {
            code.push(op(JGE, ranges[mid].0, 0, 1));
            code.push(op(JA, below.len() as u32, 0, 0));
        }
    }
    code.extend(below);
    code.extend(above);
    code
}

fn answer_code(answer: Answer) -> Vec<sock_filter> {
    match answer {
        Answer::Ret(value) => vec![op(RET, value, 0, 0)],
        Answer::Arg0In(values) => {
            // Each match jumps to the ALLOW after the final EPERM.
            let n = values.len();
            let mut code = vec![op(LD_ABS_W, ARG0_LOW_OFFSET, 0, 0)];
            code.extend(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| op(JEQ, v, (n - i) as u8, 0)),
            );
            code.extend([op(RET, EPERM, 0, 0), op(RET, ALLOW, 0, 0)]);
            code
        }
        Answer::Arg0Without(bits) => vec![
            op(LD_ABS_W, ARG0_LOW_OFFSET, 0, 0),
            op(AND, bits, 0, 0),
            op(JEQ, 0, 1, 0),
            op(RET, EPERM, 0, 0),
            op(RET, ALLOW, 0, 0),
        ],
    }
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
fn conditional_rules() -> Vec<(libc::c_long, Answer)> {
    vec![
        // Threads and processes, but no namespaces: those would be new kernel attack
        // surface and could undo the sandbox's own (clone's flags are its first argument
        // on x86-64 and aarch64).
        (libc::SYS_clone, Answer::Arg0Without(NAMESPACE_FLAGS as u32)),
        (libc::SYS_socket, Answer::Arg0In(SOCKET_FAMILIES)),
        // socketpair only makes sense for local sockets.
        (
            libc::SYS_socketpair,
            Answer::Arg0In(&[libc::AF_UNIX as u32]),
        ),
        (libc::SYS_personality, Answer::Arg0In(PERSONALITIES)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;

    /// What the kernel does with `program` for a syscall: the answer, whether an argument was
    /// read on the way (the kernel caches only answers that read none), and the number of
    /// instructions run.
    fn run(program: &Program, nr: u32, arch: u32, arg0: u64) -> (u32, bool, usize) {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let code: Vec<_> = program.instructions().collect();
        let (mut pc, mut acc, mut read_arg) = (0usize, 0u32, false);
        for steps in 1.. {
            let (op, jt, jf, k) = code[pc];
            pc += 1;
            let jump = |taken: bool| if taken { jt as usize } else { jf as usize };
            match op {
                LD_ABS_W => {
                    read_arg |= k >= 16;
                    acc = u32::from_le_bytes(data[k as usize..k as usize + 4].try_into().unwrap());
                }
                JEQ => pc += jump(acc == k),
                JGE => pc += jump(acc >= k),
                JGT => pc += jump(acc > k),
                JA => pc += k as usize,
                AND => acc &= k,
                RET => return (k, read_arg, steps),
                other => panic!("unexpected instruction {other:#x} at {}", pc - 1),
            }
        }
        unreachable!()
    }

    /// The policy of the module doc, read straight off the lists.
    fn expected(nr: u32, arch: u32, arg0: u64) -> u32 {
        let low = arg0 as u32;
        let nr_l = nr as libc::c_long;
        if arch != AUDIT_ARCH_NATIVE {
            KILL
        } else if nr >= X32_SYSCALL_BIT {
            EPERM
        } else if nr_l > LAST_KNOWN_SYSCALL || nr_l == libc::SYS_clone3 {
            ENOSYS
        } else if allowed().contains(&nr_l)
            || (nr_l == libc::SYS_clone && arg0 & NAMESPACE_FLAGS == 0)
            || (nr_l == libc::SYS_socket && SOCKET_FAMILIES.contains(&low))
            || (nr_l == libc::SYS_socketpair && low == libc::AF_UNIX as u32)
            || (nr_l == libc::SYS_personality && PERSONALITIES.contains(&low))
        {
            ALLOW
        } else {
            EPERM
        }
    }

    #[test]
    fn the_program_answers_every_syscall_as_the_policy_says() {
        let program = filter().unwrap();
        let numbers = (0..=LAST_KNOWN_SYSCALL as u32 + 40).chain([
            1000,
            65535,
            X32_SYSCALL_BIT - 1,
            X32_SYSCALL_BIT,
            X32_SYSCALL_BIT | libc::SYS_read as u32,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX,
        ]);
        let args: Vec<u64> = [0, 1, 2, 8, 10, 16, 17, 40, 0x20000, 0x20008, 0xffff_ffff]
            .into_iter()
            .chain([
                1 << 32,
                libc::CLONE_NEWUSER as u64,
                (libc::CLONE_NEWNET | libc::SIGCHLD) as u64,
                0x3d0f00, // pthread_create's flags
                (1 << 32) | libc::SIGCHLD as u64,
            ])
            .collect();
        let mut checked = 0;
        for nr in numbers {
            for arch in [AUDIT_ARCH_NATIVE, AUDIT_ARCH_I386, 0] {
                for &arg0 in &args {
                    let (got, read_arg, steps) = run(&program, nr, arch, arg0);
                    assert_eq!(
                        got,
                        expected(nr, arch, arg0),
                        "nr {nr} arch {arch:#x} arg0 {arg0:#x}"
                    );
                    let conditional = arch == AUDIT_ARCH_NATIVE
                        && conditional_rules()
                            .iter()
                            .any(|&(c, _)| c == nr as libc::c_long);
                    // Answers that do not depend on the arguments stay cacheable.
                    assert_eq!(read_arg, conditional, "nr {nr}");
                    assert!(steps <= 24, "nr {nr} takes {steps} instructions");
                    checked += 1;
                }
            }
        }
        assert!(checked > 20_000);
    }

    #[test]
    fn the_program_is_small() {
        // seccompiler's chains took ~1,200 instructions; the kernel allows 4,096.
        let len = filter().unwrap().instructions().count();
        assert!(len < 400, "{len} instructions");
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
        for (nr, _) in conditional_rules() {
            assert!(
                seen.insert(nr),
                "syscall {nr} is both conditional and listed"
            );
        }
    }
}
