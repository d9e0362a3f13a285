//! Sandbox networking: outbound internet on request, egress rules, and the way into a
//! sandbox's ports.
//!
//! A sandbox without `internet_access` keeps the empty network namespace `__sandbox-init`
//! made (only `lo`): nothing is reachable and name resolution fails at once. With it, the
//! sandbox gets a veth pair ([`link`]) with a /30 from the range sandlotd owns
//! (`--network-cidr`), NAT out through the host, and a chain of its own in this instance's
//! nftables table ([`nft`]) that refuses the always-blocked ranges and applies its rules
//! ([`rules`]). Its resolver is sandlotd's ([`dns`]), and when its rules name domains its
//! connections to ports 80 and 443 pass a transparent proxy that reads the TLS SNI or HTTP
//! Host ([`egress`]). Ports are reached from outside only through sandlotd, by a socket
//! opened inside the sandbox's namespace ([`ports`]).
//!
//! Nothing touches the host's network until the first sandbox with internet access: then
//! the table is made, the resolver and proxy start, and IPv4 forwarding is turned on.
//! Leftovers of an earlier run (table, host-side veths) are swept at start.

pub mod dns;
pub mod egress;
pub mod link;
mod netlink;
pub mod nft;
mod nftlib;
pub mod ports;
pub mod rules;
mod sni;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use tracing::{info, warn};

use crate::shutdown::Shutdown;
use nft::TableSpec;
use rules::{Cidr, EgressRules};

/// What the operator configured (`--network-*` flags).
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Short stable name of this instance (table and interface names).
    pub instance: String,
    pub range: Cidr,
    pub operator_allowed: Vec<Cidr>,
    /// Where the resolver forwards allowed questions.
    pub dns_upstream: SocketAddr,
    /// sandlotd's own listen address (always blocked).
    pub listen: SocketAddr,
}

impl NetworkConfig {
    fn table(&self) -> String {
        table_of(&self.instance)
    }

    fn if_prefix(&self) -> String {
        format!("sl{}-", &self.instance[..6.min(self.instance.len())])
    }

    fn slots(&self) -> u32 {
        (self.range.size() / 4).min(0xffff) as u32
    }
}

/// The nftables table of the instance `instance`.
fn table_of(instance: &str) -> String {
    format!("sandlot_{instance}")
}

/// A sandbox's place in the range, reserved before its namespace exists (its resolver
/// address goes into its `/etc/resolv.conf`).
#[derive(Debug, Clone)]
pub struct Lease {
    pub slot: u32,
    pub ifname: String,
    pub gateway: Ipv4Addr,
    pub address: Ipv4Addr,
}

/// A sandbox's live network.
#[derive(Debug)]
pub struct Attachment {
    pub lease: Lease,
    chain: String,
    rules: RwLock<EgressRules>,
}

impl Attachment {
    pub fn rules(&self) -> EgressRules {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The running part: the table, the resolver and proxy sockets, and who is who by address.
struct Active {
    spec: TableSpec,
    by_address: RwLock<HashMap<Ipv4Addr, Arc<Attachment>>>,
}

impl Active {
    fn lookup(&self, ip: Ipv4Addr) -> Option<Arc<Attachment>> {
        self.by_address
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .cloned()
    }
}

pub struct Network {
    cfg: NetworkConfig,
    shutdown: Shutdown,
    active: tokio::sync::OnceCell<Arc<Active>>,
    slots: Mutex<HashSet<u32>>,
}

impl Network {
    pub fn new(cfg: NetworkConfig, shutdown: Shutdown) -> Self {
        Self {
            cfg,
            shutdown,
            active: tokio::sync::OnceCell::new(),
            slots: Mutex::new(HashSet::new()),
        }
    }

    /// Start-up sweep: the table and host-side veths an earlier run left (a crash leaves
    /// both; the veths also die with their namespaces, but not before the sandboxes'
    /// processes are all gone).
    pub fn sweep(&self) {
        let leftovers = link::with_prefix(&self.cfg.if_prefix());
        for ifname in &leftovers {
            link::delete(ifname);
        }
        nft::delete_table(&self.cfg.table());
        if !leftovers.is_empty() {
            info!(
                count = leftovers.len(),
                "removed network interfaces left by an earlier run"
            );
        }
    }

    /// The table of a server that died and was not started again (`instance`, whose
    /// sandboxes the cgroup sweep has just killed): its NAT and filter rules would stay on
    /// the host for good. Its interfaces went with the sandboxes' namespaces.
    pub fn sweep_dead_server(&self, instance: &str) {
        // A name this server's own kind makes (8 hex digits), never anything else.
        if instance.len() == 8 && instance.bytes().all(|b| b.is_ascii_hexdigit()) {
            nft::delete_table(&table_of(instance));
        }
    }

    /// Reserves an address pair for a sandbox about to start.
    pub fn reserve(&self) -> Result<Lease, String> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // A slot whose interface still exists is skipped: a deleted sandbox's pair goes
        // with its namespace, which the kernel tears down in the background.
        let prefix = self.cfg.if_prefix();
        let slot = (0..self.cfg.slots())
            .find(|s| {
                !slots.contains(s)
                    && !std::path::Path::new("/sys/class/net")
                        .join(format!("{prefix}{s:04x}"))
                        .exists()
            })
            .ok_or_else(|| format!("the network range {} is full", self.cfg.range))?;
        slots.insert(slot);
        let base = u32::from(self.cfg.range.addr) + slot * 4;
        Ok(Lease {
            slot,
            ifname: format!("{}{slot:04x}", self.cfg.if_prefix()),
            gateway: Ipv4Addr::from(base + 1),
            address: Ipv4Addr::from(base + 2),
        })
    }

    pub fn release(&self, lease: &Lease) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&lease.slot);
    }

    /// Gives the sandbox whose pid 1 is `init_pid` its network and rules.
    pub async fn attach(
        &self,
        lease: Lease,
        init_pid: i32,
        rules: EgressRules,
    ) -> Result<Arc<Attachment>, String> {
        let active = self.activate().await?;
        let attachment = Arc::new(Attachment {
            chain: format!("sbx_{:04x}", lease.slot),
            lease,
            rules: RwLock::new(rules),
        });
        let script = active.spec.attach(
            &attachment.lease.ifname,
            &attachment.chain,
            &attachment.rules(),
        );
        let l = attachment.lease.clone();
        // The chain and the pair do not depend on each other: make them side by side.
        let (chain, pair) = tokio::join!(
            tokio::task::spawn_blocking(move || nft::apply(&script)),
            tokio::task::spawn_blocking(move || link::create(
                &l.ifname, init_pid, l.gateway, l.address
            )),
        );
        let failed = [
            chain
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            pair.map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
        ]
        .into_iter()
        .find_map(Result::err);
        if let Some(e) = failed {
            link::delete(&attachment.lease.ifname);
            self.detach_parts(&active, &attachment).await;
            return Err(format!("sandbox network: {e}"));
        }
        active
            .by_address
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(attachment.lease.address, attachment.clone());
        Ok(attachment)
    }

    /// Replaces a sandbox's rules; connections opened from now on are judged by them.
    pub async fn update(&self, attachment: &Attachment, rules: EgressRules) -> Result<(), String> {
        let active = self.activate().await?;
        let script = active
            .spec
            .update(&attachment.lease.ifname, &attachment.chain, &rules);
        tokio::task::spawn_blocking(move || nft::apply(&script))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        *attachment.rules.write().unwrap_or_else(|p| p.into_inner()) = rules;
        Ok(())
    }

    /// Takes a sandbox's network down and frees its addresses.
    pub async fn detach(&self, attachment: &Attachment) {
        if let Some(active) = self.active.get() {
            active
                .by_address
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&attachment.lease.address);
            self.detach_parts(active, attachment).await;
        }
        self.release(&attachment.lease);
    }

    async fn detach_parts(&self, active: &Active, attachment: &Attachment) {
        let script = active
            .spec
            .detach(&attachment.lease.ifname, &attachment.chain);
        // The pair itself is not deleted here: it goes with the sandbox's namespace, and
        // deleting a veth waits for the kernel's network grace periods (tens of ms).
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = nft::apply(&script) {
                warn!("remove a sandbox's network rules: {e}");
            }
        })
        .await;
    }

    /// Bytes out and in over a sandbox's interface.
    pub fn usage(&self, attachment: &Attachment) -> (u64, u64) {
        link::counters(&attachment.lease.ifname)
    }

    /// Server shutdown, after every sandbox was destroyed: the table goes.
    pub async fn shutdown(&self) {
        if self.active.get().is_some() {
            let table = self.cfg.table();
            let _ = tokio::task::spawn_blocking(move || nft::delete_table(&table)).await;
        }
    }

    async fn activate(&self) -> Result<Arc<Active>, String> {
        self.active.get_or_try_init(|| self.start()).await.cloned()
    }

    /// First use: the resolver and proxy sockets, the table, forwarding.
    async fn start(&self) -> Result<Arc<Active>, String> {
        let dns_socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
            .await
            .map_err(|e| format!("resolver socket: {e}"))?;
        let proxy = tokio::net::TcpListener::bind("0.0.0.0:0")
            .await
            .map_err(|e| format!("proxy socket: {e}"))?;
        let port = |a: std::io::Result<SocketAddr>| a.map(|a| a.port()).unwrap_or(0);
        let mut blocked: Vec<Cidr> = nft::ALWAYS_BLOCKED
            .iter()
            .filter_map(|c| Cidr::parse(c))
            .collect();
        blocked.extend(link::host_addresses().into_iter().map(|a| Cidr::new(a, 32)));
        if let SocketAddr::V4(listen) = self.cfg.listen {
            if !listen.ip().is_unspecified() {
                blocked.push(Cidr::new(*listen.ip(), 32));
            }
        }
        let spec = TableSpec {
            table: self.cfg.table(),
            if_prefix: self.cfg.if_prefix(),
            range: self.cfg.range,
            blocked,
            operator_allowed: self.cfg.operator_allowed.clone(),
            dns_port: port(dns_socket.local_addr()),
            proxy_port: port(proxy.local_addr()),
        };
        let script = spec.script();
        tokio::task::spawn_blocking(move || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .map_err(|e| format!("turn on IPv4 forwarding: {e}"))?;
            nft::apply(&script).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let active = Arc::new(Active {
            spec,
            by_address: RwLock::new(HashMap::new()),
        });
        tokio::spawn(dns::serve(
            dns_socket,
            active.clone(),
            self.cfg.dns_upstream,
            self.shutdown.clone(),
        ));
        tokio::spawn(egress::serve(proxy, active.clone(), self.shutdown.clone()));
        info!(
            range = %self.cfg.range,
            upstream = %self.cfg.dns_upstream,
            "sandbox networking started"
        );
        Ok(active)
    }
}

/// The first `nameserver` of the host's resolv.conf, port 53 (127.0.0.53 and other loopback
/// resolvers work: sandlotd forwards from the host).
pub fn host_resolver() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("nameserver"))
                    .then(|| words.next()?.parse::<std::net::IpAddr>().ok())
                    .flatten()
            })
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
}

/// The sandbox's `/etc/resolv.conf`: sandlotd's resolver at its gateway, or none.
pub fn resolv_conf(lease: Option<&Lease>) -> String {
    match lease {
        Some(l) => format!("nameserver {}\noptions timeout:2 attempts:2\n", l.gateway),
        None => String::new(),
    }
}
