//! Cluster mode (`docs/cluster.md`): `sandlotd node` runs a host's sandboxes for a control
//! plane; `sandlotd control` is that control plane (the `/v1` API, placement over a
//! Postgres catalog, node leases, and the router to the nodes). A standalone `sandlotd`
//! uses none of this.

pub mod catalog;
pub mod control;
pub mod membership;
pub mod node_api;
pub mod router;

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::config::{read_secret, Config, ControlArgs, NodeArgs};
use crate::shutdown::Shutdown;
use crate::token::{TokenSigner, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE};

/// What a node adds to the standalone server: its verify-only signer and its membership.
pub struct NodeRole {
    pub signer: TokenSigner,
    pub membership: Arc<membership::Membership>,
}

fn read_key(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `sandlotd keygen --out DIR`.
pub fn keygen(out: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let (private, public) = TokenSigner::generate_ed25519().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, text, mode) in [
        (PRIVATE_KEY_FILE, private, 0o600),
        (PUBLIC_KEY_FILE, public, 0o644),
    ] {
        let path = out.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| format!("{}: {e} (keygen never overwrites a key)", path.display()))?;
        std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// `sandlotd node`: registers first (the control plane says which URL clients use), then
/// runs the standalone server with the node's signer, internal API and heartbeats.
pub async fn run_node(args: NodeArgs) -> Result<(), String> {
    let join_token = read_secret(
        args.join_token,
        args.join_token_file.as_deref(),
        "join token",
    )?
    .ok_or("a node needs the cluster's join token (--join-token-file or SANDLOT_JOIN_TOKEN)")?;
    let signer = TokenSigner::ed25519_public(&read_key(&args.token_public_key_file)?)?;
    let name = match args.node_name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .map_err(|e| format!("no --node-name and no host name: {e}"))?,
    };
    let registration = sandlot_protocol::NodeRegistration {
        name: name.clone(),
        addr: args.advertise.trim_end_matches('/').to_string(),
        capacity: args.base.max_sandboxes.min(u32::MAX as usize) as u32,
        templates: crate::sandbox::template::TEMPLATES
            .iter()
            .map(|t| t.name.to_string())
            .collect(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let membership = Arc::new(membership::Membership::new(
        args.control_plane,
        join_token,
        registration,
    ));
    let shutdown = Shutdown::new();
    let registered = {
        let trigger = shutdown.clone();
        let signal = tokio::spawn(async move {
            let _ = crate::server::shutdown_signal().await;
            trigger.trigger();
        });
        let r = membership.register(&shutdown).await;
        signal.abort();
        r?
    };
    // The API key path is closed on a node: control tokens stand in for it. A random key
    // nobody holds keeps the standalone checks (no local mode on a public address) intact.
    let mut sealed = [0u8; 32];
    getrandom::fill(&mut sealed).map_err(|e| e.to_string())?;
    let cfg = Config {
        public_url: Some(registered.public_url),
        node_name: Some(name),
        api_key: Some(sealed.iter().map(|b| format!("{b:02x}")).collect()),
        api_key_file: None,
        ..args.base
    };
    crate::server::run(cfg, Some(NodeRole { signer, membership })).await
}

/// A listener with SO_REUSEPORT: replicas of the stateless control plane on one host may
/// share a port, and the kernel spreads connections over them (as a Service would).
fn shared_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// `sandlotd control`.
pub async fn run_control(args: ControlArgs) -> Result<(), String> {
    let api_key = read_secret(args.api_key, args.api_key_file.as_deref(), "API key")?;
    if let Some(open) = args.listen.iter().find(|a| !a.ip().is_loopback()) {
        if api_key.is_none() {
            return Err(format!(
                "refusing to listen on {open} without an API key: set SANDLOT_API_KEY or --api-key-file"
            ));
        }
    }
    let join_token = read_secret(
        args.join_token,
        args.join_token_file.as_deref(),
        "join token",
    )?
    .ok_or(
        "the control plane needs a join token for nodes (--join-token-file or SANDLOT_JOIN_TOKEN)",
    )?;
    let signer = TokenSigner::ed25519_private(&read_key(&args.token_private_key_file)?)?;
    if args.heartbeat_secs * 2 > args.lease_secs {
        warn!("--heartbeat-secs should be at most half of --lease-secs, or live nodes lose leases");
    }
    let catalog = catalog::Catalog::connect(
        &args.database_url,
        args.database_pool,
        args.database_ca_file.as_deref(),
    )
    .await?;
    let public_url = args
        .public_url
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{}", args.listen[0]));
    let shutdown = Shutdown::new();
    let control = control::Control::new(
        catalog,
        signer,
        control::Settings {
            api_key,
            join_token,
            public_url,
            lease: Duration::from_secs(args.lease_secs),
            heartbeat: Duration::from_secs(args.heartbeat_secs),
            max_body_bytes: args.max_body_bytes,
        },
        shutdown.clone(),
    )?;
    let reaper = {
        let (control, shutdown) = (control.clone(), shutdown.clone());
        let period = Duration::from_secs(args.heartbeat_secs).min(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => control.reap().await,
                    _ = shutdown.requested() => return,
                }
            }
        })
    };
    let mut listeners = Vec::new();
    for addr in &args.listen {
        let listener =
            shared_listener(*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        info!(
            "sandlotd control {} listening on http://{addr}",
            env!("CARGO_PKG_VERSION")
        );
        listeners.push(listener);
    }
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match crate::server::shutdown_signal().await {
                Ok(()) => info!("shutting down"),
                Err(e) => error!("cannot listen for signals: {e}"),
            }
            shutdown.trigger();
        });
    }
    let app = control::routes(control);
    let serving: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            // A handle per connection, not a rebuilt router (see `server::run`).
            let serve = axum::serve(listener, app.clone().into_make_service())
                .with_graceful_shutdown({
                    let shutdown = shutdown.clone();
                    async move { shutdown.requested().await }
                });
            tokio::spawn(async move { serve.await })
        })
        .collect();
    shutdown.requested().await;
    // Open streams are the nodes' and do not end by themselves: a short drain, then close.
    let drained = futures_util::future::join_all(serving);
    if tokio::time::timeout(Duration::from_secs(2), drained)
        .await
        .is_err()
    {
        warn!("connections still open after the drain; closing them");
    }
    let _ = reaper.await;
    info!("bye");
    Ok(())
}
