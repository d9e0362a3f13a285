//! nftables through libnftables, the library the `nft` tool is a front-end of, with one
//! context kept for the life of the server.
//!
//! Why not `nft -f -` per change: when that process exits it closes its netlink socket, and
//! the kernel then waits for nf_tables' pending destruction work, which sits behind a full
//! RCU grace period (10–20 ms here) whenever anything in any table on the host was deleted
//! within the last grace period (a sandbox's own attach deletes, so every create paid it).
//! A context that stays open never closes its socket: a transaction costs what the
//! kernel's commit costs (0.1–0.5 ms here), and no process is started for it.
//!
//! The library is loaded at run time (`libnftables.so.1`, which the nftables package
//! installs for `nft` itself), so building sandlotd needs no nftables headers. Without it,
//! [`run`] answers `None` and the caller runs `nft`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::sync::{Mutex, OnceLock};

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxConfigure = unsafe extern "C" fn(*mut c_void) -> c_int;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type GetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;

/// One `struct nft_ctx` and the library functions that use it.
struct Context {
    ctx: *mut c_void,
    run: RunCmd,
    output: GetBuffer,
    error: GetBuffer,
}

// SAFETY: the context is only ever used by one thread at a time (it lives in a Mutex), and
// libnftables keeps no per-thread state.
unsafe impl Send for Context {}

static CONTEXT: OnceLock<Option<Mutex<Context>>> = OnceLock::new();

/// Runs an nftables script as one transaction on the shared context; `None` when
/// libnftables cannot be loaded.
pub fn run(script: &str) -> Option<io::Result<()>> {
    let context = CONTEXT.get_or_init(|| load().map(Mutex::new)).as_ref()?;
    let script = match CString::new(script) {
        Ok(s) => s,
        Err(_) => return Some(Err(io::Error::other("nft: a NUL in the script"))),
    };
    let ctx = context.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: `ctx.ctx` is a live context used under the lock; the script is NUL-terminated;
    // the buffers returned stay valid until the next call on the context, and are copied
    // before the lock is released.
    unsafe {
        let rc = (ctx.run)(ctx.ctx, script.as_ptr());
        // Reading a buffer also rewinds it for the next run, so both are read every time.
        let _ = (ctx.output)(ctx.ctx);
        let error = (ctx.error)(ctx.ctx);
        let message = if error.is_null() {
            String::new()
        } else {
            CStr::from_ptr(error).to_string_lossy().trim().to_string()
        };
        Some(if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::other(format!("nft: {message}")))
        })
    }
}

fn load() -> Option<Context> {
    // SAFETY: dlopen/dlsym with NUL-terminated names; each symbol is cast to the signature
    // libnftables.so.1 declares for it (libnftables.h, stable across its 1.x ABI). The
    // library is never unloaded.
    unsafe {
        let lib = libc::dlopen(
            c"libnftables.so.1".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        );
        if lib.is_null() {
            return None;
        }
        let sym = |name: &CStr| {
            let p = libc::dlsym(lib, name.as_ptr());
            (!p.is_null()).then_some(p)
        };
        let new: CtxNew = std::mem::transmute(sym(c"nft_ctx_new")?);
        let buffer_output: CtxConfigure = std::mem::transmute(sym(c"nft_ctx_buffer_output")?);
        let buffer_error: CtxConfigure = std::mem::transmute(sym(c"nft_ctx_buffer_error")?);
        let run: RunCmd = std::mem::transmute(sym(c"nft_run_cmd_from_buffer")?);
        let output: GetBuffer = std::mem::transmute(sym(c"nft_ctx_get_output_buffer")?);
        let error: GetBuffer = std::mem::transmute(sym(c"nft_ctx_get_error_buffer")?);
        // NFT_CTX_DEFAULT. The context opens its netlink socket here.
        let ctx = new(0);
        if ctx.is_null() {
            return None;
        }
        // Its messages go to buffers we read, never to sandlotd's stdout or stderr.
        if buffer_output(ctx) != 0 || buffer_error(ctx) != 0 {
            return None;
        }
        close_netlink_on_exec();
        Some(Context {
            ctx,
            run,
            output,
            error,
        })
    }
}

/// libnftables opens its socket without close-on-exec: mark it, so no helper or sandbox
/// process ever inherits a handle on the host's firewall. (The sandbox helpers also close
/// every descriptor they did not expect, which covers a spawn racing this.)
fn close_netlink_on_exec() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for fd in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<c_int>().ok())
        .filter(|fd| *fd > 2)
    {
        // SAFETY: fcntl and getsockopt on a descriptor number; a closed or non-socket one
        // just fails.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || flags & libc::FD_CLOEXEC != 0 {
                continue;
            }
            let mut domain: c_int = 0;
            let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
            let is_netlink = libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_DOMAIN,
                &mut domain as *mut c_int as *mut c_void,
                &mut len,
            ) == 0
                && domain == libc::AF_NETLINK;
            if is_netlink {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}
