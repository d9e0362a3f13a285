//! The veth pair that gives a sandbox its network: the host end (`sl<instance>-<slot>`)
//! carries the sandbox's gateway address, the sandbox end is `eth0` inside its network
//! namespace with the sandbox's address and a default route. Made with iproute2 in two
//! `ip -batch` runs (host side, then inside through `nsenter`): measured at about 7 ms p50
//! here, within the create budget, with no netlink code of our own to keep.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

fn run(cmd: &mut Command, input: &str) -> std::io::Result<()> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Creates the pair and configures both ends. `init_pid` is the sandbox's pid 1.
pub fn create(
    ifname: &str,
    init_pid: i32,
    gateway: Ipv4Addr,
    address: Ipv4Addr,
) -> std::io::Result<()> {
    run(
        Command::new("ip").args(["-batch", "-"]),
        &format!(
            "link add {ifname} type veth peer name eth0 netns {init_pid}\n\
             addr add {gateway}/30 dev {ifname}\n\
             link set {ifname} up\n"
        ),
    )
    .map_err(|e| std::io::Error::other(format!("host end of {ifname}: {e}")))?;
    run(
        Command::new("nsenter")
            .arg(format!("--net=/proc/{init_pid}/ns/net"))
            .args(["ip", "-batch", "-"]),
        &format!(
            "addr add {address}/30 dev eth0\n\
             link set eth0 up\n\
             route add default via {gateway}\n"
        ),
    )
    .map_err(|e| std::io::Error::other(format!("sandbox end of {ifname}: {e}")))
}

/// Deletes the pair (its sandbox end goes with it). Absent is fine: the pair also dies with
/// the sandbox's namespace.
pub fn delete(ifname: &str) {
    if std::path::Path::new("/sys/class/net").join(ifname).exists() {
        let _ = Command::new("ip")
            .args(["link", "del", ifname])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Host interfaces whose names start with `prefix` (leftovers of an earlier run).
pub fn with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes the host end received (the sandbox sent) and sent (the sandbox received).
pub fn counters(ifname: &str) -> (u64, u64) {
    let read = |what: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{what}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("rx_bytes"), read("tx_bytes"))
}

/// The host's IPv4 addresses (all interfaces): sandboxes never reach them.
pub fn host_addresses() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs fills a list we walk read-only and free once.
    unsafe {
        let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() && (*addr).sa_family as i32 == libc::AF_INET {
                let sin = &*(addr as *const libc::sockaddr_in);
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}
