//! The sandbox's root filesystem, built by pid 1 inside its new mount namespace.
//!
//! Layout: a small tmpfs root holding read-only binds of the template's system directories
//! (`/usr` and the merged-usr symlinks), a synthetic `/etc` (generated passwd/group/hosts plus
//! a few read-only host entries the runtimes need), a minimal `/dev` with a private devpts
//! (the sandbox's terminals), a fresh `/proc` of the sandbox's pid namespace, private `/tmp`
//! and `/dev/shm` tmpfs mounts, and the sandbox's own `/workspace` bound from the host data
//! dir. Nothing else of the host is reachable.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::sys::{check, cstr, mount};
use super::InitConfig;

const RO_FLAGS: libc::c_ulong = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;

pub fn build(cfg: &InitConfig) -> io::Result<()> {
    // Nothing we mount may propagate back to the host.
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    set_hostname(&cfg.hostname)?;

    let root = cfg.root_dir.as_str();
    mount(
        Some("sandlot"),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=8m,mode=0755"),
    )?;

    for dir in [
        "proc",
        "dev",
        "tmp",
        "etc",
        "workspace",
        "root",
        "home",
        "run",
        "var",
    ] {
        fs::create_dir_all(format!("{root}/{dir}"))?;
    }
    for host in &cfg.ro_binds {
        let target = format!("{root}{host}");
        fs::create_dir_all(&target)?;
        bind_ro(host, &target)?;
    }
    // Debian's merged /usr: /bin, /lib, /lib64 and /sbin are symlinks into it.
    for (link, to) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        if Path::new(&format!("{root}/{to}")).exists() {
            symlink(to, format!("{root}/{link}"))?;
        }
    }
    fs::create_dir_all(format!("{root}/var/tmp"))?;
    fs::set_permissions(
        format!("{root}/var/tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )?;

    build_etc(cfg, root)?;
    build_dev(cfg, root)?;

    mount(
        Some("proc"),
        &format!("{root}/proc"),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    mask_proc(&format!("{root}/proc"))?;
    // Inodes bounded too (one per 4 KiB): each costs kernel memory outside the size limit.
    let tmp_opts = format!(
        "size={}m,nr_inodes={},mode=1777",
        cfg.tmp_size_mb,
        cfg.tmp_size_mb.max(1) * 256
    );
    mount(
        Some("tmpfs"),
        &format!("{root}/tmp"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&tmp_opts),
    )?;
    mount(
        Some(&cfg.workspace_dir),
        &format!("{root}/workspace"),
        None,
        libc::MS_BIND,
        None,
    )?;
    // A set-user-ID file or a device node in the workspace confers nothing (no_new_privs
    // already stops set-user-ID at exec; this holds even for a process that escaped it).
    remount_bind(
        &format!("{root}/workspace"),
        libc::MS_NOSUID | libc::MS_NODEV,
    )?;

    pivot_into(root)?;
    // The root tmpfs itself becomes read-only; /tmp, /dev/shm and /workspace stay writable.
    mount(
        None,
        "/",
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    Ok(())
}

/// `/proc` files that show the host's kernel rather than the sandbox's processes, hidden
/// behind `/dev/null` as Docker does: kernel memory (`kcore`), every keyring the kernel
/// holds (`keys`), timers and scheduler state of all CPUs with kernel addresses
/// (`timer_list`, `sched_debug`, `timer_stats`, `latency_stats`).
const PROC_MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "timer_stats",
    "latency_stats",
];
/// `/proc` directories of host hardware (ACPI, SCSI, sound), covered by an empty read-only
/// tmpfs.
const PROC_MASKED_DIRS: &[&str] = &["acpi", "scsi", "asound"];
/// `/proc` entries that write kernel settings: sysctls (`sys`), IRQ affinity (`irq`), bus
/// and file-system tunables (`bus`, `fs`), and `sysrq-trigger` (reboot, crash, kill-all).
/// They become read-only mounts. A sandbox process is not root and could not write them
/// anyway; this is the second wall, for a process that became root.
const PROC_READ_ONLY: &[&str] = &["sys", "irq", "bus", "fs", "sysrq-trigger"];

/// Masks and seals the host-facing parts of the sandbox's `/proc` (entries missing on this
/// kernel are skipped).
fn mask_proc(proc_dir: &str) -> io::Result<()> {
    for name in PROC_MASKED_FILES {
        let target = format!("{proc_dir}/{name}");
        if Path::new(&target).exists() {
            mount(Some("/dev/null"), &target, None, libc::MS_BIND, None)?;
        }
    }
    for name in PROC_MASKED_DIRS {
        let target = format!("{proc_dir}/{name}");
        if Path::new(&target).is_dir() {
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=0,mode=0555"),
            )?;
        }
    }
    for name in PROC_READ_ONLY {
        let target = format!("{proc_dir}/{name}");
        if Path::new(&target).exists() {
            mount(
                Some(&target),
                &target,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            remount_bind(&target, RO_FLAGS | libc::MS_NOEXEC)?;
        }
    }
    Ok(())
}

fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe `name`.
    let ret = unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) };
    check(ret, "sethostname").map(|_| ())
}

fn bind_ro(src: &str, target: &str) -> io::Result<()> {
    mount(Some(src), target, None, libc::MS_BIND | libc::MS_REC, None)?;
    remount_bind(target, RO_FLAGS)
}

/// Remounts the bind mount at `target` with `add` on top of the flags it has. In a user
/// namespace the flags a bind mount brought from the host (`nosuid`, `noexec`, the atime
/// mode...) are locked: a remount that left one out would be refused.
fn remount_bind(target: &str, add: libc::c_ulong) -> io::Result<()> {
    let path = cstr(target)?;
    // SAFETY: a valid path and a zeroed out-struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, "statvfs")?;
    let has = |flag: libc::c_ulong| st.f_flag & flag != 0;
    let mut kept = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if has(st_flag) {
            kept |= ms_flag;
        }
    }
    mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | kept | add,
        None,
    )
}

fn build_etc(cfg: &InitConfig, root: &str) -> io::Result<()> {
    for (name, content) in &cfg.etc_files {
        fs::write(format!("{root}/etc/{name}"), content)?;
    }
    for host in &cfg.etc_binds {
        let src = Path::new(host);
        // Follow symlinks such as /etc/localtime so the bind has a real source.
        let Ok(resolved) = fs::canonicalize(src) else {
            continue;
        };
        let target = format!("{root}{host}");
        if resolved.is_dir() {
            fs::create_dir_all(&target)?;
        } else {
            if let Some(parent) = Path::new(&target).parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&target, "")?;
        }
        bind_ro(&resolved.to_string_lossy(), &target)?;
    }
    Ok(())
}

fn build_dev(cfg: &InitConfig, root: &str) -> io::Result<()> {
    let dev = format!("{root}/dev");
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = format!("{dev}/{node}");
        fs::write(&target, "")?;
        mount(
            Some(&format!("/dev/{node}")),
            &target,
            None,
            libc::MS_BIND,
            None,
        )?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, format!("{dev}/{link}"))?;
    }
    mount_devpts(&dev)?;
    fs::create_dir_all(format!("{dev}/shm"))?;
    let shm_opts = format!("size={}m,mode=1777", cfg.tmp_size_mb.min(64));
    mount(
        Some("shm"),
        &format!("{dev}/shm"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&shm_opts),
    )?;
    // Sealing /dev read-only keeps the device list fixed.
    mount(
        None,
        &dev,
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("size=64k,mode=0755"),
    )
}

/// Pseudo-terminals the sandbox may hold at once: its terminals (`--max-terminals`, 16 by
/// default) plus what its own programs open (`script`, `tmux`, `expect`), with room to spare.
const MAX_PTYS: u32 = 64;

/// A private devpts instance at `/dev/pts` with `/dev/ptmx` pointing into it: the sandbox sees
/// only its own terminals (never the host's `/dev/pts/N`), and `max=` bounds how many the
/// kernel hands it. `ptmxmode=0666` lets sandboxed programs open PTYs of their own; new
/// slaves are `0620` (the terminal helper hands each to the sandbox uid).
fn mount_devpts(dev: &str) -> io::Result<()> {
    let pts = format!("{dev}/pts");
    fs::create_dir_all(&pts)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&format!(
            "newinstance,ptmxmode=0666,mode=0620,max={MAX_PTYS}"
        )),
    )?;
    symlink("pts/ptmx", format!("{dev}/ptmx"))
}

/// Makes `root` the new `/` and detaches the host's tree.
fn pivot_into(root: &str) -> io::Result<()> {
    let root_c = cstr(root)?;
    let dot = cstr(".")?;
    // SAFETY: valid NUL-terminated paths; pivot_root(".", ".") stacks the old root on top of
    // the new one, and the lazy unmount then drops it.
    unsafe {
        check(libc::chdir(root_c.as_ptr()), "chdir root")?;
        check(
            libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as libc::c_int,
            "pivot_root",
        )?;
        check(
            libc::umount2(dot.as_ptr(), libc::MNT_DETACH),
            "detach old root",
        )?;
        check(libc::chdir(c"/".as_ptr()), "chdir /")?;
    }
    Ok(())
}
