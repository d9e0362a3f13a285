//! Acting as a sandbox's user on one thread.
//!
//! File operations run on a blocking-pool thread that takes the sandbox's identity for the
//! length of one closure: supplementary groups cleared, fsuid/fsgid set to the sandbox's
//! uid/gid, and every effective capability dropped. All three are per-thread in Linux (the
//! raw `setgroups` and `capset` syscalls, unlike glibc's `setgroups`, touch only the calling
//! thread), so the rest of the server keeps running as root. With the capabilities gone
//! the kernel checks permissions exactly as it would for a process of the sandbox: no
//! `CAP_DAC_OVERRIDE`, no `CAP_SYS_PTRACE` to read a sandbox process's `/proc/<pid>/mem`,
//! and what gets created belongs to the sandbox's uid.
//!
//! The guard restores everything when dropped (unwinding included). A thread that cannot
//! be restored would go back to the pool with a sandbox's identity, so that aborts.

use std::io;

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as capget(2) wants for version 3.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

fn capset(data: &[CapData; 2]) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    // SAFETY: as in capget; pid 0 is the calling thread.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setgroups(2) for the calling thread only.
fn thread_setgroups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: pointer and length describe `groups`.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getgroups() -> io::Result<Vec<libc::gid_t>> {
    // SAFETY: a size of 0 only asks for the count; then the buffer holds that many.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut groups = vec![0; n as usize];
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    groups.truncate(n as usize);
    Ok(groups)
}

/// The calling thread as the sandbox's user until dropped.
pub struct AsSandbox {
    groups: Vec<libc::gid_t>,
    caps: [CapData; 2],
    fsuid: u32,
    fsgid: u32,
}

impl AsSandbox {
    pub fn enter(uid: u32, gid: u32) -> io::Result<Self> {
        let caps = capget()?;
        let groups = getgroups()?;
        thread_setgroups(&[])?;
        // SAFETY: setfsgid/setfsuid only change this thread's filesystem ids; they return
        // the previous value.
        let fsgid = unsafe { libc::setfsgid(gid) } as u32;
        let fsuid = unsafe { libc::setfsuid(uid) } as u32;
        let guard = Self {
            groups,
            caps,
            fsuid,
            fsgid,
        };
        // setfsuid reports no error: asking again returns the value in force.
        let (now_uid, now_gid) = unsafe { (libc::setfsuid(uid), libc::setfsgid(gid)) };
        if now_uid as u32 != uid || now_gid as u32 != gid {
            return Err(io::Error::other("could not switch to the sandbox's fsuid"));
        }
        let mut dropped = caps;
        dropped[0].effective = 0;
        dropped[1].effective = 0;
        capset(&dropped)?;
        Ok(guard)
    }
}

impl Drop for AsSandbox {
    fn drop(&mut self) {
        let restored = capset(&self.caps).and_then(|()| {
            // SAFETY: as in enter.
            unsafe {
                libc::setfsuid(self.fsuid);
                libc::setfsgid(self.fsgid);
            }
            thread_setgroups(&self.groups)
        });
        let ids = unsafe { (libc::setfsuid(u32::MAX), libc::setfsgid(u32::MAX)) };
        if restored.is_err() || ids != (self.fsuid as i32, self.fsgid as i32) {
            eprintln!("sandlotd: could not restore a file thread's credentials: {restored:?}");
            std::process::abort();
        }
    }
}
