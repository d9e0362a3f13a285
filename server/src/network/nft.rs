//! The nftables table of one sandlotd instance (`ip sandlot_<instance>`): NAT out of the
//! sandboxes' range, the always-blocked ranges, one chain of rules per sandbox, and the
//! redirects to sandlotd's resolver and transparent proxy.
//!
//! Every change is one nftables transaction (a script applied whole or not at all, through
//! libnftables or `nft -f -`), so a sandbox's chain is never seen half written. Only
//! interfaces named with this instance's prefix are touched: other tables, other instances
//! and the host's own traffic pass through as before.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::rules::{Cidr, EgressRules};

/// Ranges no sandbox reaches unless the operator allows a CIDR (`--network-allow-cidr`):
/// "this network", RFC 1918, CGNAT, loopback, link-local (cloud metadata at
/// 169.254.169.254), IETF protocol assignments, multicast, reserved and broadcast. The
/// documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are not here.
pub const ALWAYS_BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// What the table is built from.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub table: String,
    /// Interface-name prefix of this instance's host-side veths (`sl1a2b3c-`).
    pub if_prefix: String,
    /// The range sandboxes' addresses come from.
    pub range: Cidr,
    /// Always blocked: [`ALWAYS_BLOCKED`] plus the host's own addresses.
    pub blocked: Vec<Cidr>,
    /// Exempt from `blocked` (never from `range`: sandboxes never reach each other).
    pub operator_allowed: Vec<Cidr>,
    pub dns_port: u16,
    pub proxy_port: u16,
}

impl TableSpec {
    /// The whole table, replacing any earlier one of the same name.
    pub fn script(&self) -> String {
        let t = &self.table;
        let p = &self.if_prefix;
        let set = |cidrs: &[Cidr]| {
            cidrs
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n\
             set blocked {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {} }} }}\n\
             set operator_allowed {{ type ipv4_addr; flags interval; auto-merge; }}\n\
             set proxied {{ type ifname; }}\n\
             map sandboxes {{ type ifname : verdict; }}\n",
            set(&self.blocked)
        );
        if !self.operator_allowed.is_empty() {
            s = s.replace(
                "set operator_allowed { type ipv4_addr; flags interval; auto-merge; }",
                &format!(
                    "set operator_allowed {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {} }} }}",
                    set(&self.operator_allowed)
                ),
            );
        }
        let (dns, proxy, range) = (self.dns_port, self.proxy_port, self.range);
        s.push_str(&format!(
            "chain prerouting {{ type nat hook prerouting priority dstnat;\n\
               iifname \"{p}*\" udp dport 53 redirect to :{dns}\n\
               iifname @proxied tcp dport {{ 80, 443 }} redirect to :{proxy}\n}}\n\
             chain postrouting {{ type nat hook postrouting priority srcnat;\n\
               ip saddr {range} oifname != \"{p}*\" masquerade\n}}\n\
             chain input {{ type filter hook input priority filter;\n\
               iifname \"{p}*\" udp dport {dns} accept\n\
               iifname \"{p}*\" tcp dport {proxy} accept\n\
               iifname \"{p}*\" reject\n\
               udp dport {dns} drop\n\
               tcp dport {proxy} drop\n}}\n\
             chain forward {{ type filter hook forward priority filter;\n\
               iifname \"{p}*\" ct state established,related accept\n\
               iifname \"{p}*\" iifname vmap @sandboxes\n\
               iifname \"{p}*\" reject\n\
               oifname \"{p}*\" ct state established,related accept\n\
               oifname \"{p}*\" drop\n}}\n}}\n"
        ));
        s
    }

    /// Adds (or replaces) a sandbox's chain and hooks it in.
    pub fn attach(&self, ifname: &str, chain: &str, rules: &EgressRules) -> String {
        let t = &self.table;
        let mut s = format!(
            "add chain ip {t} {chain}\nflush chain ip {t} {chain}\n{}",
            self.chain_rules(chain, rules)
        );
        s.push_str(&format!(
            "add element ip {t} sandboxes {{ \"{ifname}\" : jump {chain} }}\n"
        ));
        s.push_str(&self.proxied(ifname, rules.has_domains()));
        s
    }

    /// Replaces a sandbox's rules (one transaction: new connections see old or new, whole).
    pub fn update(&self, ifname: &str, chain: &str, rules: &EgressRules) -> String {
        let t = &self.table;
        format!(
            "flush chain ip {t} {chain}\n{}{}",
            self.chain_rules(chain, rules),
            self.proxied(ifname, rules.has_domains())
        )
    }

    /// Unhooks and deletes a sandbox's chain.
    pub fn detach(&self, ifname: &str, chain: &str) -> String {
        let t = &self.table;
        // `add` before `delete`: deleting an element that is absent fails the transaction
        // (and re-adding one with the value it has is no change).
        format!(
            "add chain ip {t} {chain}\n\
             add element ip {t} sandboxes {{ \"{ifname}\" : jump {chain} }}\n\
             delete element ip {t} sandboxes {{ \"{ifname}\" }}\n\
             add element ip {t} proxied {{ \"{ifname}\" }}\n\
             delete element ip {t} proxied {{ \"{ifname}\" }}\n\
             flush chain ip {t} {chain}\n\
             delete chain ip {t} {chain}\n"
        )
    }

    fn proxied(&self, ifname: &str, on: bool) -> String {
        let t = &self.table;
        let mut s = format!("add element ip {t} proxied {{ \"{ifname}\" }}\n");
        if !on {
            s.push_str(&format!(
                "delete element ip {t} proxied {{ \"{ifname}\" }}\n"
            ));
        }
        s
    }

    /// Other sandboxes first, then the always-blocked ranges, then allow before deny.
    fn chain_rules(&self, chain: &str, rules: &EgressRules) -> String {
        let t = &self.table;
        let list = |cidrs: &[Cidr]| {
            cidrs
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "add rule ip {t} {chain} ip daddr {} reject\n\
             add rule ip {t} {chain} ip daddr @blocked ip daddr != @operator_allowed reject\n",
            self.range
        );
        if !rules.allow.cidrs.is_empty() {
            s.push_str(&format!(
                "add rule ip {t} {chain} ip daddr {{ {} }} accept\n",
                list(&rules.allow.cidrs)
            ));
        }
        if !rules.deny.cidrs.is_empty() {
            s.push_str(&format!(
                "add rule ip {t} {chain} ip daddr {{ {} }} reject\n",
                list(&rules.deny.cidrs)
            ));
        }
        s.push_str(&format!("add rule ip {t} {chain} accept\n"));
        s
    }
}

/// Whether `ip` is one sandboxes never reach (the proxy's copy of the chain's first rules).
pub fn refused_address(spec: &TableSpec, ip: Ipv4Addr) -> bool {
    spec.range.contains(ip)
        || (spec.blocked.iter().any(|c| c.contains(ip))
            && !spec.operator_allowed.iter().any(|c| c.contains(ip)))
}

/// Runs an nftables script as one transaction: through libnftables where it loads
/// ([`super::nftlib`]), else by running `nft -f -`.
pub fn apply(script: &str) -> std::io::Result<()> {
    match super::nftlib::run(script) {
        Some(done) => done,
        None => apply_with_tool(script),
    }
}

fn apply_with_tool(script: &str) -> std::io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("run nft: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Deletes the table if it exists (start-up sweep, shutdown).
pub fn delete_table(table: &str) {
    let _ = apply(&format!("table ip {table}\ndelete table ip {table}\n"));
}
