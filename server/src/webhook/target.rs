//! Where a callback may go.
//!
//! Sandboxed code chooses callback URLs and the server makes the request from inside the
//! operator's network, so a callback would be a way to reach internal services (a cloud's
//! metadata endpoint, a database's HTTP port, sandlotd itself) unless the target is checked
//! twice:
//!
//! - when the run is requested, its host (and port) against `--webhook-allow-hosts`, and an
//!   address written in the URL against the address rules below;
//! - when it is delivered, the addresses its name resolves to, once. The connection then goes
//!   to exactly those addresses (the client is pinned to them), so a DNS answer that changes
//!   between the check and the connection cannot redirect it.
//!
//! Loopback, private, link-local (the metadata address 169.254.169.254 among them), CGNAT,
//! unspecified, multicast, broadcast and reserved addresses are refused unless the operator
//! named that host in the allow-list; `*` allows any host at a public address only. Local
//! mode's implicit entries (`localhost`, `127.0.0.1`, `::1`) allow loopback addresses only.
//! sandlotd's own listen address is refused whatever the list says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use url::Host;

use super::address::{special_kind, AddressKind};
use crate::config::Config;

/// The hosts local mode (no API key) allows when `--webhook-allow-hosts` is not given.
const LOCAL_MODE_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// How long resolving a callback's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How far an allow-list entry trusts the host it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Allowance {
    /// `*`: any host, at public addresses only.
    PublicOnly,
    /// Local mode's implicit entries: their loopback addresses too.
    Loopback,
    /// The operator named this host: whatever addresses it has.
    Named,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EntryHost {
    Any,
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone)]
struct Entry {
    host: EntryHost,
    port: Option<u16>,
    allowance: Allowance,
}

impl Entry {
    /// `host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 address, `*` or `*:port`.
    fn parse(raw: &str, implicit: bool) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let bad = || format!("'{raw}' is not a host, host:port or [IPv6]:port");
        let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
            let ip: Ipv6Addr = addr.parse().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (EntryHost::Ip(IpAddr::V6(ip)), port)
        } else if let Ok(ip) = raw.parse::<IpAddr>() {
            (EntryHost::Ip(ip), None)
        } else {
            let (host, port) = match raw.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (raw, None),
            };
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let host = if host == "*" {
                EntryHost::Any
            } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
                EntryHost::Ip(IpAddr::V4(ip))
            } else if !host.is_empty() && !host.contains([':', '/', '@', '[', ']', ' ']) {
                EntryHost::Name(host)
            } else {
                return Err(bad());
            };
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?),
        };
        let allowance = match (&host, implicit) {
            (EntryHost::Any, _) => Allowance::PublicOnly,
            (_, true) => Allowance::Loopback,
            (_, false) => Allowance::Named,
        };
        Ok(Some(Self {
            host,
            port,
            allowance,
        }))
    }

    fn matches(&self, host: &Host<String>, port: u16) -> bool {
        let host_ok = match (&self.host, host) {
            (EntryHost::Any, _) => true,
            (EntryHost::Name(n), Host::Domain(d)) => n == d.trim_end_matches('.'),
            (EntryHost::Ip(ip), Host::Ipv4(v4)) => ip.to_canonical() == IpAddr::V4(*v4),
            (EntryHost::Ip(ip), Host::Ipv6(v6)) => {
                ip.to_canonical() == IpAddr::V6(*v6).to_canonical()
            }
            _ => false,
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// A callback URL that passed the request-time checks.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    host: Host<String>,
    port: u16,
    allowance: Allowance,
}

impl Target {
    /// The host name to pin to the checked addresses (`None` when the URL has an address).
    pub fn domain(&self) -> Option<&str> {
        match &self.host {
            Host::Domain(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a delivery cannot go out now.
#[derive(Debug)]
pub enum Refusal {
    /// The target is not allowed: retrying will not change that.
    Refused(String),
    /// Resolution failed; the next attempt may succeed.
    Unresolved(String),
}

/// The allow-list and the server's own addresses.
#[derive(Debug, Clone)]
pub struct Targets {
    entries: Vec<Entry>,
    /// What the operator configured, for error messages.
    listed: String,
    listen: SocketAddr,
    /// Host and port of `--public-url`, which may reach this server through a proxy.
    public: Option<(String, u16)>,
}

impl Targets {
    pub fn from_config(cfg: &Config) -> Result<Self, String> {
        let (raw, implicit): (Vec<&str>, bool) = match (&cfg.webhook_allow_hosts, &cfg.api_key) {
            (Some(list), _) => (list.iter().map(String::as_str).collect(), false),
            (None, None) => (LOCAL_MODE_HOSTS.to_vec(), true),
            (None, Some(_)) => (Vec::new(), false),
        };
        let mut entries = Vec::new();
        for r in &raw {
            if let Some(e) =
                Entry::parse(r, implicit).map_err(|e| format!("--webhook-allow-hosts: {e}"))?
            {
                entries.push(e);
            }
        }
        let listed = raw
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        let public = cfg
            .public_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .and_then(|u| {
                Some((
                    u.host_str()?.to_ascii_lowercase(),
                    u.port_or_known_default()?,
                ))
            });
        Ok(Self {
            entries,
            listed,
            listen: cfg.listen,
            public,
        })
    }

    /// Checks a callback URL when the run is requested (and again at each delivery, against
    /// the configuration of the day). An address in the URL is checked here too; a name is
    /// resolved and checked at delivery.
    pub fn check_url(&self, raw: &str) -> Result<Target, String> {
        let url = Url::parse(raw).map_err(|e| format!("callback_url is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("callback_url must be http or https".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "callback_url must not carry credentials; sign callbacks with \
                        callback_signature_secret instead"
                    .into(),
            );
        }
        let host = url
            .host()
            .map(|h| h.to_owned())
            .ok_or("callback_url has no host")?;
        let port = url
            .port_or_known_default()
            .ok_or("callback_url has no port")?;
        let allowance = self
            .entries
            .iter()
            .filter(|e| e.matches(&host, port))
            .map(|e| e.allowance)
            .max()
            .ok_or_else(|| {
                let shown = url.host_str().unwrap_or_default();
                if self.listed.is_empty() {
                    format!(
                        "callback host '{shown}' is not allowed: this server allows no callback \
                         hosts (sandlotd --webhook-allow-hosts)"
                    )
                } else {
                    format!(
                        "callback host '{shown}' (port {port}) is not allowed; allowed: {} \
                         (sandlotd --webhook-allow-hosts)",
                        self.listed
                    )
                }
            })?;
        if let Some((public_host, public_port)) = &self.public {
            if url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(public_host))
                && port == *public_port
            {
                return Err("callback_url points at this sandlotd".into());
            }
        }
        let target = Target {
            url,
            host,
            port,
            allowance,
        };
        if let Some(ip) = literal_ip(&target.host) {
            self.check_address(&target, SocketAddr::new(ip, port))?;
        }
        Ok(target)
    }

    /// Resolves the target's host once and checks every address it has; the delivery must
    /// connect to these addresses and no others.
    pub async fn addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, Refusal> {
        let addrs: Vec<SocketAddr> = match (literal_ip(&target.host), target.domain()) {
            (Some(ip), _) => vec![SocketAddr::new(ip, target.port)],
            (None, Some(name)) => {
                let lookup = tokio::net::lookup_host((name, target.port));
                tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
                    .await
                    .map_err(|_| Refusal::Unresolved(format!("resolving '{name}' timed out")))?
                    .map_err(|e| Refusal::Unresolved(format!("cannot resolve '{name}': {e}")))?
                    .collect()
            }
            (None, None) => Vec::new(),
        };
        if addrs.is_empty() {
            return Err(Refusal::Unresolved(
                "the callback host has no address".into(),
            ));
        }
        for addr in &addrs {
            self.check_address(target, *addr)
                .map_err(Refusal::Refused)?;
        }
        Ok(addrs)
    }

    fn check_address(&self, target: &Target, addr: SocketAddr) -> Result<(), String> {
        let shown = target.url.host_str().unwrap_or_default();
        if self.is_own_listener(addr) {
            return Err(format!(
                "callback host '{shown}' at {addr} is this sandlotd's own listen address"
            ));
        }
        if let Some(kind) = special_kind(addr.ip()) {
            let allowed = match target.allowance {
                Allowance::Named => true,
                Allowance::Loopback => kind == AddressKind::Loopback,
                Allowance::PublicOnly => false,
            };
            if !allowed {
                return Err(format!(
                    "callback host '{shown}' is {}, a {kind} address; sandlotd calls such \
                     addresses only for hosts --webhook-allow-hosts names explicitly",
                    addr.ip()
                ));
            }
        }
        Ok(())
    }

    /// Whether a connection to `addr` would reach this server's own listener.
    fn is_own_listener(&self, addr: SocketAddr) -> bool {
        if addr.port() != self.listen.port() {
            return false;
        }
        let (ip, listen) = (addr.ip().to_canonical(), self.listen.ip().to_canonical());
        ip == listen
            || ip.is_loopback()
            || ip.is_unspecified()
            || (listen.is_unspecified() && is_local_address(ip))
    }
}

fn literal_ip(host: &Host<String>) -> Option<IpAddr> {
    match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
        Host::Domain(_) => None,
    }
}

/// Whether `ip` is one of this host's addresses: only those can be bound (nothing is sent).
fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn targets(args: &[&str]) -> Targets {
        let mut argv = vec!["sandlotd", "--listen", "127.0.0.1:7070"];
        argv.extend_from_slice(args);
        Targets::from_config(&crate::config::Cli::parse_from(argv).standalone).unwrap()
    }

    #[test]
    fn addresses_written_in_odd_notations_are_checked_as_the_address_they_are() {
        let t = targets(&["--api-key", "k", "--webhook-allow-hosts", "*"]);
        for url in [
            "http://2130706433/",         // 127.0.0.1 as one number
            "http://0x7f.1/",             // hex and short form
            "http://[::ffff:a9fe:a9fe]/", // mapped 169.254.169.254
            "http://169.254.169.254./",   // trailing dot
            "http://0/",                  // 0.0.0.0
        ] {
            let e = t.check_url(url).unwrap_err();
            assert!(e.contains("address"), "{url}: {e}");
        }
        assert!(t.check_url("http://93.184.216.34/").is_ok());
    }

    #[test]
    fn allow_list_entries_take_a_host_and_an_optional_port() {
        let t = targets(&[
            "--api-key",
            "k",
            "--webhook-allow-hosts",
            "hooks.example.com:8443,10.1.2.3,[fd00::5]:9000,*:443",
        ]);
        assert!(t.check_url("https://hooks.example.com:8443/x").is_ok());
        assert!(t.check_url("https://HOOKS.example.com.:8443/x").is_ok());
        assert!(
            t.check_url("https://hooks.example.com/x").is_ok(),
            "any host on 443"
        );
        assert!(
            t.check_url("http://hooks.example.com/x").is_err(),
            "port 80"
        );
        assert!(
            t.check_url("http://10.1.2.3:1234/").is_ok(),
            "named, so private is fine"
        );
        assert!(t.check_url("http://[fd00::5]:9000/").is_ok());
        assert!(t.check_url("http://[fd00::5]:9001/").is_err());
        assert!(
            t.check_url("https://10.9.9.9/").is_err(),
            "* does not cover private"
        );
        for bad in ["a:b", "[::1", "host:0", "x/y", "[::1]x"] {
            let cfg = crate::config::Cli::parse_from([
                "sandlotd",
                "--api-key",
                "k",
                "--webhook-allow-hosts",
                bad,
            ])
            .standalone;
            assert!(Targets::from_config(&cfg).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_mode_allows_loopback_only_and_never_its_own_port() {
        let t = targets(&[]);
        assert!(t.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(t.check_url("http://[::1]:9000/hook").is_ok());
        assert!(t.check_url("http://localhost:9000/hook").is_ok());
        assert!(t.check_url("http://example.com/hook").is_err());
        let e = t
            .check_url("http://127.0.0.1:7070/v1/sandboxes")
            .unwrap_err();
        assert!(e.contains("own listen address"), "{e}");
        let named = targets(&["--webhook-allow-hosts", "127.0.0.1"]);
        assert!(named.check_url("http://127.0.0.1:7070/").is_err());
    }

    #[test]
    fn with_an_api_key_nothing_is_allowed_until_the_operator_allows_it() {
        let t = targets(&["--api-key", "k"]);
        let e = t.check_url("http://127.0.0.1:9000/").unwrap_err();
        assert!(e.contains("allows no callback hosts"), "{e}");
        assert!(t.check_url("https://example.com/").is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let t = targets(&[]);
        assert!(t.check_url("http://user:pw@127.0.0.1:9000/").is_err());
    }
}
