//! What kind of address a callback may not reach: loopback, private, link-local, CGNAT,
//! unspecified, multicast, broadcast and reserved, in every notation (IPv4-mapped, NAT64,
//! 6to4 carry an IPv4 address the check reads through).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Loopback,
    Private,
    LinkLocal,
    SharedCgnat,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedCgnat => "shared (CGNAT)",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
        })
    }
}

/// The kind of a non-public address; `None` for a public one. IPv6 forms that carry an IPv4
/// address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn special_kind(ip: IpAddr) -> Option<AddressKind> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, ..] = ip.octets();
    Some(if a == 0 {
        AddressKind::Unspecified // 0.0.0.0/8, "this network"
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if ip.is_private() {
        AddressKind::Private
    } else if ip.is_link_local() {
        AddressKind::LinkLocal
    } else if a == 100 && (b & 0xc0) == 64 {
        AddressKind::SharedCgnat // 100.64.0.0/10
    } else if ip.is_broadcast() {
        AddressKind::Broadcast
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if a >= 240 {
        AddressKind::Reserved
    } else {
        return None;
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<AddressKind> {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        Some(AddressKind::Unspecified)
    } else if ip.is_loopback() {
        Some(AddressKind::Loopback)
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some(AddressKind::Private) // fc00::/7, unique local
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        Some(AddressKind::LinkLocal) // fe80::/10 (and the old site-local fec0::/10)
    } else if ip.is_multicast() {
        Some(AddressKind::Multicast)
    } else if s[..6] == [0; 6] {
        // ::a.b.c.d, the deprecated IPv4-compatible form: never a legitimate target
        Some(v4_kind(embedded_v4(s[6], s[7])).unwrap_or(AddressKind::Reserved))
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        v4_kind(embedded_v4(s[6], s[7])) // NAT64
    } else if s[0] == 0x2002 {
        v4_kind(embedded_v4(s[1], s[2])) // 6to4
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_recognised_in_every_notation() {
        for (ip, kind) in [
            ("127.0.0.1", AddressKind::Loopback),
            ("10.0.0.1", AddressKind::Private),
            ("172.16.5.4", AddressKind::Private),
            ("192.168.1.1", AddressKind::Private),
            ("169.254.169.254", AddressKind::LinkLocal),
            ("100.64.0.1", AddressKind::SharedCgnat),
            ("100.127.255.254", AddressKind::SharedCgnat),
            ("0.0.0.0", AddressKind::Unspecified),
            ("224.0.0.1", AddressKind::Multicast),
            ("255.255.255.255", AddressKind::Broadcast),
            ("::1", AddressKind::Loopback),
            ("::", AddressKind::Unspecified),
            ("fd00::1", AddressKind::Private),
            ("fe80::1", AddressKind::LinkLocal),
            ("ff02::1", AddressKind::Multicast),
            ("::ffff:169.254.169.254", AddressKind::LinkLocal),
            ("::ffff:127.0.0.1", AddressKind::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressKind::LinkLocal),
            ("2002:0a00:0001::", AddressKind::Private),
        ] {
            assert_eq!(special_kind(ip.parse().unwrap()), Some(kind), "{ip}");
        }
        for ip in ["93.184.216.34", "100.128.0.1", "2606:4700::1111", "8.8.8.8"] {
            assert_eq!(special_kind(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
