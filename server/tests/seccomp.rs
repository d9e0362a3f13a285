//! The seccomp allow-list of real sandboxes: refused syscalls answer EPERM (or ENOSYS for
//! the newer ones and `clone3`), 32-bit calls kill, namespace flags and socket families are
//! checked, and what python, node and bash need keeps working.

mod common;

use common::Server;

/// Python run in a sandbox that calls syscalls through libc and prints `<name> <errno name>`
/// (or `OK`) for each. Arguments are chosen so that, were the call allowed, the kernel would
/// answer something other than EPERM for an unprivileged process on this host.
const SYSCALL_PROBE: &str = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return errno.errorcode.get(ctypes.get_errno(), 'OK') if r < 0 else 'OK'
CHECKS = {%CHECKS%}
for name, (nr, *args) in CHECKS.items():
    print(name, call(nr, *args))
"#;

async fn probe(sb: &common::Sandbox, checks: &str) -> std::collections::BTreeMap<String, String> {
    let code = SYSCALL_PROBE.replace("%CHECKS%", checks);
    let r = sb.run("python", &code).await;
    assert_eq!(r["exit_code"], 0, "{r}");
    common::key_values(r["stdout"].as_str().unwrap())
}

#[tokio::test]
async fn kernel_attack_surface_syscalls_are_refused_with_eperm() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    // x86-64 numbers; each of these succeeds or fails otherwise than EPERM for an
    // unprivileged process on this host when no filter is installed.
    let got = probe(
        &sb,
        "'io_uring_setup': (425, 1, 0), 'io_uring_enter': (426, -1, 0, 0, 0, 0, 0), \
         'io_uring_register': (427, -1, 0, 0, 0), 'userfaultfd': (323, 1), \
         'kcmp': (312, os.getpid(), os.getpid(), 0, 0, 0), 'pidfd_getfd': (438, -1, 0, 0), \
         'fanotify_init': (300, 0x200, 0), 'open_tree': (428, -100, b'/', 0), \
         'move_mount': (429, -1, b'', -1, b'', 0), 'fsopen': (430, b'tmpfs', 0), \
         'fsconfig': (431, -1, 0, 0, 0, 0), 'fsmount': (432, -1, 0, 0), \
         'fspick': (433, -100, b'/', 0), 'mount_setattr': (442, -1, b'', 0, 0, 0), \
         'quotactl_fd': (443, -1, 0, 0, 0), 'process_madvise': (440, -1, 0, 0, 0, 0), \
         'add_key': (248, b'user', b'k', b'v', 1, -3), 'request_key': (249, b'user', b'k', 0, 0), \
         'keyctl': (250, 0, -3, 0), 'perf_event_open': (298, 0, 0, -1, -1, 0), \
         'bpf': (321, 0, 0, 0), 'ptrace': (101, 0, 0, 0, 0), \
         'process_vm_readv': (310, os.getpid(), 0, 0, 0, 0, 0), \
         'process_vm_writev': (311, os.getpid(), 0, 0, 0, 0, 0), \
         'mount': (165, b'none', b'/tmp', b'tmpfs', 0, 0), 'umount2': (166, b'/tmp', 0), \
         'unshare': (272, 0x10000000), 'setns': (308, -1, 0), \
         'memfd_secret': (447, 0), 'open_by_handle_at': (304, -1, 0, 0)",
    )
    .await;
    assert_eq!(got.len(), 30, "{got:?}");
    for (name, errno) in &got {
        assert_eq!(errno, "EPERM", "{name} must be refused with EPERM: {got:?}");
    }
}

#[tokio::test]
async fn clone3_and_syscalls_newer_than_the_list_answer_enosys_so_libc_falls_back() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    // Without the filter: clone3(NULL, 0) is EINVAL, 470 does not exist (ENOSYS either way,
    // but the allow-list alone would say EPERM), x32 is ENOSYS on this kernel.
    let got = probe(
        &sb,
        "'clone3': (435, 0, 0), 'newer_than_known': (470,), 'far_beyond': (1000,), \
         'x32_getpid': (0x40000000 | 39,), 'kexec_load': (246, 0, 0, 0, 0)",
    )
    .await;
    assert_eq!(got["clone3"], "ENOSYS", "{got:?}");
    assert_eq!(got["newer_than_known"], "ENOSYS", "{got:?}");
    assert_eq!(got["far_beyond"], "ENOSYS", "{got:?}");
    assert_eq!(got["x32_getpid"], "EPERM", "x32 ABI rejected: {got:?}");
    assert_eq!(
        got["kexec_load"], "EPERM",
        "a known, unlisted syscall: {got:?}"
    );
}

#[tokio::test]
async fn a_32_bit_syscall_kills_the_process() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    // i386 getpid through `int 0x80`, which works on this host outside a sandbox.
    let r = sb
        .run(
            "python",
            "import ctypes, mmap\n\
             buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n\
             buf.write(b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3')\n\
             f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))\n\
             print('calling', flush=True)\nprint('survived', f())",
        )
        .await;
    assert_eq!(r["stdout"], "calling\n", "{r}");
    assert_eq!(
        r["exit_code"],
        128 + libc::SIGSYS,
        "killed by seccomp (SIGSYS): {r}"
    );
}

#[tokio::test]
async fn clone_with_namespace_flags_is_refused_but_threads_and_forks_work() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import ctypes, os, threading\nlibc = ctypes.CDLL(None, use_errno=True)\n\
             for name, flag in [('newuser', 0x10000000), ('newns', 0x20000), ('newpid', 0x20000000), ('newnet', 0x40000000)]:\n\
             \x20   r = libc.syscall(56, flag | 17, 0, 0, 0, 0)\n\
             \x20   if r == 0: os._exit(0)\n\
             \x20   print(name, r, os.strerror(ctypes.get_errno()))\n\
             t = threading.Thread(target=lambda: print('thread ran')); t.start(); t.join()\n\
             pid = os.fork()\nif pid == 0: os._exit(7)\nprint('fork exit', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))",
        )
        .await;
    let out = r["stdout"].as_str().unwrap();
    for ns in ["newuser", "newns", "newpid", "newnet"] {
        assert!(
            out.contains(&format!("{ns} -1 Operation not permitted")),
            "{r}"
        );
    }
    assert!(
        out.contains("thread ran") && out.contains("fork exit 7"),
        "{r}"
    );
}

#[tokio::test]
async fn only_unix_inet_and_netlink_sockets_can_be_created() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import socket\n\
             for name, fam, typ in [('unix', socket.AF_UNIX, socket.SOCK_STREAM), ('inet', socket.AF_INET, socket.SOCK_STREAM), \
             ('inet6', socket.AF_INET6, socket.SOCK_DGRAM), ('netlink', socket.AF_NETLINK, socket.SOCK_RAW), \
             ('vsock', socket.AF_VSOCK, socket.SOCK_STREAM), ('alg', socket.AF_ALG, socket.SOCK_SEQPACKET), \
             ('packet', socket.AF_PACKET, socket.SOCK_RAW)]:\n\
             \x20   try:\n        socket.socket(fam, typ).close(); print(name, 'ok')\n\
             \x20   except OSError as e: print(name, e.errno)\n\
             a, b = socket.socketpair(); a.send(b'x'); print('socketpair', b.recv(1))",
        )
        .await;
    let got = common::key_values(r["stdout"].as_str().unwrap());
    for family in ["unix", "inet", "inet6", "netlink"] {
        assert_eq!(got[family], "ok", "{family} sockets work: {r}");
    }
    // AF_VSOCK would reach the hypervisor on this host (virtio-vsock) without the filter.
    for family in ["vsock", "alg", "packet"] {
        assert_eq!(
            got[family],
            libc::EPERM.to_string(),
            "{family} refused: {r}"
        );
    }
    assert_eq!(got["socketpair"], "b'x'", "{r}");
}

#[tokio::test]
async fn personality_accepts_only_dockers_values() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let got = probe(
        &sb,
        "'query': (135, 0xffffffff), 'linux': (135, 0), \
         'read_implies_exec': (135, 0x0400000), 'addr_no_randomize': (135, 0x0040000)",
    )
    .await;
    assert_eq!(got["query"], "OK", "{got:?}");
    assert_eq!(got["linux"], "OK", "{got:?}");
    assert_eq!(got["read_implies_exec"], "EPERM", "{got:?}");
    assert_eq!(got["addr_no_randomize"], "EPERM", "{got:?}");
}

#[tokio::test]
async fn python_node_and_bash_run_normally_under_the_allow_list() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import asyncio, multiprocessing, os, socket, sqlite3, subprocess, tempfile, threading\n\
             t = threading.Thread(target=lambda: None); t.start(); t.join(); print('thread')\n\
             print(subprocess.run(['echo', 'subprocess'], capture_output=True, text=True).stdout.strip())\n\
             with multiprocessing.Pool(2) as p: print('pool', p.map(abs, [-1, -2]))\n\
             asyncio.run(asyncio.sleep(0.01)); print('asyncio')\n\
             db = sqlite3.connect(':memory:'); print('sqlite', db.execute('select 1+1').fetchone()[0])\n\
             with tempfile.NamedTemporaryFile() as f: f.write(b'x'); f.flush(); print('tempfile', os.path.getsize(f.name))\n\
             srv = socket.socket(socket.AF_UNIX); srv.bind('/tmp/s'); srv.listen()\n\
             c = socket.socket(socket.AF_UNIX); c.connect('/tmp/s'); conn, _ = srv.accept(); c.send(b'u'); print('unix', conn.recv(1))",
        )
        .await;
    assert_eq!(
        r["stdout"], "thread\nsubprocess\npool [1, 2]\nasyncio\nsqlite 2\ntempfile 1\nunix b'u'\n",
        "{r}"
    );
    let r = sb
        .run(
            "javascript",
            "const { Worker } = require('worker_threads');\n\
             const cp = require('child_process'), fs = require('fs'), zlib = require('zlib'), crypto = require('crypto');\n\
             (async () => {\n\
             console.log(cp.execSync('echo child').toString().trim());\n\
             await fs.promises.writeFile('/tmp/n.txt', 'data'); console.log(await fs.promises.readFile('/tmp/n.txt', 'utf8'));\n\
             console.log('gzip', zlib.gunzipSync(zlib.gzipSync('z')).toString(), crypto.randomBytes(4).length);\n\
             await new Promise(ok => new Worker('require(\"worker_threads\").parentPort.postMessage(1)', { eval: true }).on('message', ok));\n\
             console.log('worker');\n\
             })();",
        )
        .await;
    assert_eq!(r["stdout"], "child\ndata\ngzip z 4\nworker\n", "{r}");
    let r = sb
        .run(
            "bash",
            "echo b | tr b B; (echo sub); cat <(echo procsub); sleep 0.1 & wait; echo $(( $(seq 1 10 | paste -sd+) )); \
             ls / | grep -c workspace; printf 'x\\ny\\n' | sort -r | head -1",
        )
        .await;
    assert_eq!(r["stdout"], "B\nsub\nprocsub\n55\n1\ny\n", "{r}");
}
