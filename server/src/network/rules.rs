//! Egress rules: what a sandbox's `allow_out` / `deny_out` say, checked once at the API and
//! then matched by the nftables chain (addresses), the resolver and the transparent proxy
//! (names).
//!
//! Verdicts follow E2B's semantics: allow wins over deny. A connection is judged by its
//! name first when it has one (a DNS question, a TLS SNI, an HTTP Host) and a name rule
//! matches it; otherwise by its address. Anything no rule matches is allowed, so rules only
//! narrow what `internet_access` opened.

use std::net::Ipv4Addr;

use sandlot_protocol::NetworkRules;

/// Most entries one list may hold (each becomes an nftables element or a name to match).
pub const MAX_RULES: usize = 256;

/// An IPv4 network, `addr/prefix`, with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().ok().filter(|p| *p <= 32)?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().ok()?;
        Some(Cidr::new(addr, prefix))
    }

    pub fn new(addr: Ipv4Addr, prefix: u8) -> Cidr {
        let mask = Self::mask(prefix);
        Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        }
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }

    /// How many addresses it spans (2^32 for /0).
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A domain rule: an exact name, or `*.suffix` for every name below `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRule {
    Exact(String),
    Below(String),
}

impl DomainRule {
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        match self {
            DomainRule::Exact(d) => name.eq_ignore_ascii_case(d),
            DomainRule::Below(suffix) => {
                name.len() > suffix.len() + 1
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
                    && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// One list, split by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleList {
    pub cidrs: Vec<Cidr>,
    pub domains: Vec<DomainRule>,
}

/// A sandbox's rules, checked and compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressRules {
    pub allow: RuleList,
    pub deny: RuleList,
    /// The rules as the client sent them (normalised), for the wire.
    pub wire: NetworkRules,
}

/// What a rule set says about one connection or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

impl EgressRules {
    /// Checks every entry; the error names the first bad one.
    pub fn parse(rules: &NetworkRules) -> Result<EgressRules, String> {
        let list = |entries: &[String], what: &str| -> Result<(RuleList, Vec<String>), String> {
            if entries.len() > MAX_RULES {
                return Err(format!("{what} holds at most {MAX_RULES} entries"));
            }
            let mut out = RuleList::default();
            let mut wire = Vec::new();
            for raw in entries {
                let entry = raw.trim().to_ascii_lowercase();
                if let Some(cidr) = Cidr::parse(&entry) {
                    out.cidrs.push(cidr);
                    wire.push(entry);
                } else if let Some(domain) = parse_domain(&entry) {
                    out.domains.push(domain);
                    wire.push(entry);
                } else if entry.contains(':') {
                    return Err(format!(
                        "{what}: '{raw}' is an IPv6 entry; sandboxes get IPv4 egress only"
                    ));
                } else {
                    return Err(format!(
                        "{what}: '{raw}' is neither an IPv4 CIDR nor a domain name \
                         (example.org, *.example.org)"
                    ));
                }
            }
            Ok((out, wire))
        };
        let (allow, allow_wire) = list(&rules.allow_out, "allow_out")?;
        let (deny, deny_wire) = list(&rules.deny_out, "deny_out")?;
        Ok(EgressRules {
            allow,
            deny,
            wire: NetworkRules {
                allow_out: allow_wire,
                deny_out: deny_wire,
            },
        })
    }

    /// Whether any rule names a domain: then the transparent proxy judges ports 80 and 443.
    pub fn has_domains(&self) -> bool {
        !self.allow.domains.is_empty() || !self.deny.domains.is_empty()
    }

    /// Whether the deny list covers every address (the locked-down pattern): then only
    /// allowed names resolve.
    fn denies_everything(&self) -> bool {
        self.deny.cidrs.iter().any(|c| c.prefix == 0)
    }

    /// The verdict on a name alone (a DNS question), or `None` when no name rule matches.
    pub fn name_rule(&self, name: &str) -> Option<Verdict> {
        if self.allow.domains.iter().any(|d| d.matches(name)) {
            Some(Verdict::Allow)
        } else if self.deny.domains.iter().any(|d| d.matches(name)) {
            Some(Verdict::Deny)
        } else {
            None
        }
    }

    /// Whether the resolver answers `name`: a matching name rule decides; otherwise the name
    /// resolves unless the rules deny every address.
    pub fn resolves(&self, name: &str) -> bool {
        match self.name_rule(name) {
            Some(v) => v == Verdict::Allow,
            None => !self.denies_everything(),
        }
    }

    /// The verdict on an address alone (what the nftables chain enforces).
    pub fn address(&self, ip: Ipv4Addr) -> Verdict {
        if self.allow.cidrs.iter().any(|c| c.contains(ip)) {
            Verdict::Allow
        } else if self.deny.cidrs.iter().any(|c| c.contains(ip)) {
            Verdict::Deny
        } else {
            Verdict::Allow
        }
    }

    /// The verdict on a connection to `ip` that named `name` (SNI or Host).
    pub fn connection(&self, name: Option<&str>, ip: Ipv4Addr) -> Verdict {
        name.and_then(|n| self.name_rule(n))
            .unwrap_or_else(|| self.address(ip))
    }
}

/// `example.org`, `*.example.org` or `*.test`: labels of letters, digits and `-` (and `_`, which
/// real service names use), at most 253 characters, at least one dot.
fn parse_domain(entry: &str) -> Option<DomainRule> {
    let (below, name) = match entry.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let name = name.trim_end_matches('.');
    let ok = !name.is_empty()
        && name.len() <= 253
        // A bare name needs a dot; a wildcard may cover a whole top-level domain (`*.test`).
        && (below || name.contains('.'))
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // A dotted quad that failed to parse as an address is not a name either.
        && !name.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| {
        if below {
            DomainRule::Below(name.to_string())
        } else {
            DomainRule::Exact(name.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> EgressRules {
        EgressRules::parse(&NetworkRules {
            allow_out: allow.iter().map(|s| s.to_string()).collect(),
            deny_out: deny.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn cidrs_and_wildcard_domains_parse_and_bad_entries_are_named() {
        let r = rules(
            &["203.0.113.0/24", "1.2.3.4", "*.Example.org", "pypi.org"],
            &[],
        );
        assert_eq!(r.allow.cidrs.len(), 2);
        assert_eq!(r.allow.cidrs[0].to_string(), "203.0.113.0/24");
        assert_eq!(r.allow.domains.len(), 2);
        for bad in [
            "300.1.1.1/8",
            "10.0.0.0/33",
            "localhost",
            "a..b",
            "::1/128",
            "-x.org",
        ] {
            let e = EgressRules::parse(&NetworkRules {
                allow_out: vec![bad.into()],
                deny_out: vec![],
            })
            .unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_wildcard_matches_subdomains_only() {
        let d = parse_domain("*.example.org").unwrap();
        assert!(d.matches("a.example.org"));
        assert!(d.matches("a.b.EXAMPLE.org."));
        assert!(!d.matches("example.org"));
        assert!(!d.matches("badexample.org"));
    }

    #[test]
    fn allow_wins_over_deny_and_names_are_judged_before_addresses() {
        let r = rules(&["203.0.113.10", "good.test"], &["0.0.0.0/0", "bad.test"]);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(r.address(ip("203.0.113.10")), Verdict::Allow);
        assert_eq!(r.address(ip("198.51.100.1")), Verdict::Deny);
        assert!(r.resolves("good.test"));
        assert!(
            !r.resolves("other.test"),
            "locked down: unknown names do not resolve"
        );
        assert_eq!(
            r.connection(Some("good.test"), ip("198.51.100.1")),
            Verdict::Allow
        );
        assert_eq!(
            r.connection(Some("bad.test"), ip("203.0.113.10")),
            Verdict::Deny
        );
        assert_eq!(r.connection(None, ip("203.0.113.10")), Verdict::Allow);
        let open = rules(&[], &["bad.test"]);
        assert!(open.resolves("other.test"));
        assert!(!open.resolves("bad.test"));
    }
}
