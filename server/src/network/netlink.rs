//! The few rtnetlink requests a sandbox's veth pair needs, sent on a socket of our own:
//! create a veth pair with one end in another namespace, add an IPv4 address, add a default
//! route, delete a link. Each request asks for the kernel's acknowledgement and returns its
//! error (`EEXIST`, `ENODEV`, ...) as an `io::Error`.
//!
//! Hand-written rather than a crate: five message shapes, each checked against what
//! iproute2 sends for the same command, are less to audit than a general netlink library.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

// Message types, flags and attributes from linux/rtnetlink.h, if_link.h, if_addr.h and
// veth.h (the libc crate does not carry all of them).
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = 1;

/// How long the kernel may take to acknowledge one request.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A `NETLINK_ROUTE` socket in the network namespace of the thread that opened it.
pub struct Route {
    fd: OwnedFd,
    seq: u32,
}

impl Route {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain syscalls; the descriptor is owned from here on.
        let fd = unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        let timeout = libc::timeval {
            tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: a valid timeval for SO_RCVTIMEO on our socket.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, seq: 0 })
    }

    /// `ip link add <host> up type veth peer name <peer> netns <netns>`: the pair, the host
    /// end up, `peer` created directly inside the namespace `netns` refers to. (The peer
    /// cannot be brought up in the same request: the kernel opens it before the pair is
    /// joined, and refuses with `ENOTCONN`.)
    pub fn add_veth(&mut self, host: &str, peer: &str, netns: &File) -> io::Result<()> {
        let mut m = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, IFF_UP);
        m.attr_str(IFLA_IFNAME, host);
        let info = m.nest(IFLA_LINKINFO);
        m.attr(IFLA_INFO_KIND, b"veth");
        let data = m.nest(IFLA_INFO_DATA);
        let peer_info = m.nest(VETH_INFO_PEER);
        m.ifinfo(0, 0);
        m.attr_str(IFLA_IFNAME, peer);
        m.attr(IFLA_NET_NS_FD, &(netns.as_raw_fd() as u32).to_ne_bytes());
        m.end(peer_info);
        m.end(data);
        m.end(info);
        self.request(m)
    }

    /// `ip link set <ifname> up`.
    pub fn set_up(&mut self, ifname: &str) -> io::Result<()> {
        let index = index_of(ifname)?;
        let mut m = Message::new(RTM_NEWLINK, 0);
        m.ifinfo(index as i32, IFF_UP);
        self.request(m)
    }

    /// `ip addr add <address>/<prefix> dev <ifname>`.
    pub fn add_address(&mut self, ifname: &str, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let index = index_of(ifname)?;
        let mut m = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        // struct ifaddrmsg: family, prefix length, flags, scope, interface index.
        m.bytes(&[libc::AF_INET as u8, prefix, 0, RT_SCOPE_UNIVERSE]);
        m.bytes(&index.to_ne_bytes());
        m.attr(IFA_LOCAL, &address.octets());
        m.attr(IFA_ADDRESS, &address.octets());
        self.request(m)
    }

    /// `ip route add default via <gateway>`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut m = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst/src prefix lengths, tos, table, protocol, scope, type, flags.
        m.bytes(&[
            libc::AF_INET as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ]);
        m.bytes(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gateway.octets());
        self.request(m)
    }

    /// `ip link del <ifname>` (a veth's peer goes with it).
    pub fn delete_link(&mut self, ifname: &str) -> io::Result<()> {
        let mut m = Message::new(RTM_DELLINK, 0);
        m.ifinfo(0, 0);
        m.attr_str(IFLA_IFNAME, ifname);
        self.request(m)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, message: Message) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = message.finish(seq);
        // SAFETY: the kernel's netlink address (all zeros but the family) and our buffer.
        let sent = unsafe {
            let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
            kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
                &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: receiving into a buffer we own.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(result) = acknowledgement(&buf[..n as usize], seq) {
                return result;
            }
        }
    }
}

/// The outcome the kernel reported for request `seq`, if `buf` holds it.
fn acknowledgement(mut buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().ok()?);
        let got = u32::from_ne_bytes(buf[8..12].try_into().ok()?);
        if len < 16 || len > buf.len() {
            return Some(Err(io::Error::other("malformed netlink reply")));
        }
        if kind == NLMSG_ERROR && got == seq && len >= 20 {
            let error = i32::from_ne_bytes(buf[16..20].try_into().ok()?);
            return Some(match error {
                0 => Ok(()),
                e => Err(io::Error::from_raw_os_error(-e)),
            });
        }
        buf = &buf[align(len).min(buf.len())..];
    }
    None
}

/// An interface's index in the calling thread's network namespace.
fn index_of(ifname: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A netlink request being built: header, fixed part, attributes (4-byte aligned).
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16) -> Self {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Self { buf }
    }

    fn bytes(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.buf.resize(align(self.buf.len()), 0);
    }

    /// struct ifinfomsg: family (unspecified), type, index, flags and the flags to change.
    fn ifinfo(&mut self, index: i32, flags: u32) {
        self.bytes(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.bytes(&index.to_ne_bytes());
        self.bytes(&flags.to_ne_bytes());
        self.bytes(&flags.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        self.buf
            .extend_from_slice(&(4 + data.len() as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.bytes(data);
    }

    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data);
    }

    /// Opens a nested attribute; its length is filled in by [`Message::end`].
    fn nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        start
    }

    fn end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// Runs `f` on a short-lived thread of its own inside the network namespace of `pid`
/// (`setns` changes only the calling thread's namespace; sockets made there keep it).
pub fn in_namespace_of<T: Send>(
    pid: i32,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let target = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sandbox-netns".into())
            .spawn_scoped(scope, move || {
                let own = File::open("/proc/thread-self/ns/net")?;
                // SAFETY: setns on descriptors we own, for this thread only.
                if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                let out = f();
                // The thread ends next anyway; going back keeps it harmless until then.
                // SAFETY: as above.
                unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) };
                out
            })?
            .join()
            .map_err(|_| io::Error::other("the namespace thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_veth_request_has_the_layout_iproute2_sends() {
        let mut m = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, IFF_UP);
        m.attr_str(IFLA_IFNAME, "sl1-0001");
        let info = m.nest(IFLA_LINKINFO);
        m.attr(IFLA_INFO_KIND, b"veth");
        m.end(info);
        let b = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), RTM_NEWLINK);
        assert_eq!(
            u16::from_ne_bytes(b[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // ifinfomsg (16 bytes) with IFF_UP in flags and change.
        assert_eq!(&b[24..28], &IFF_UP.to_ne_bytes());
        assert_eq!(&b[28..32], &IFF_UP.to_ne_bytes());
        // IFLA_IFNAME: 4 + 9 bytes ("sl1-0001\0"), padded to 16.
        assert_eq!(u16::from_ne_bytes(b[32..34].try_into().unwrap()), 13);
        assert_eq!(&b[36..45], b"sl1-0001\0");
        // The nest holds only the kind: 4 + (4 + 4).
        assert_eq!(u16::from_ne_bytes(b[48..50].try_into().unwrap()), 12);
        assert_eq!(
            u16::from_ne_bytes(b[50..52].try_into().unwrap()),
            IFLA_LINKINFO
        );
        assert_eq!(&b[56..60], b"veth");
        assert_eq!(b.len(), 60);
    }

    #[test]
    fn an_acknowledgement_is_found_by_sequence_and_carries_the_error() {
        let reply = |seq: u32, error: i32| {
            let mut r = vec![0u8; 36];
            r[0..4].copy_from_slice(&36u32.to_ne_bytes());
            r[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            r[8..12].copy_from_slice(&seq.to_ne_bytes());
            r[16..20].copy_from_slice(&error.to_ne_bytes());
            r
        };
        assert!(acknowledgement(&reply(3, 0), 4).is_none());
        assert!(matches!(acknowledgement(&reply(4, 0), 4), Some(Ok(()))));
        let mut both = reply(3, 0);
        both.extend(reply(4, -libc::EEXIST));
        let err = acknowledgement(&both, 4).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    }
}
