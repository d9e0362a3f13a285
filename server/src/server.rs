//! Start-up and shutdown of the server.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::unix::fs::PermissionsExt;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::api::{self, AppState};
use crate::cluster::NodeRole;
use crate::config::{Cli, Config, Mode};
use crate::network::rules::Cidr;
use crate::network::{Network, NetworkConfig};
use crate::node::Node;
use crate::sandbox::cgroup::Cgroups;
use crate::sandbox::LocalNode;
use crate::shutdown::Shutdown;
use crate::store::{OutputCaps, SqliteStore};
use crate::token::TokenSigner;
use crate::webhook::Webhooks;

/// After SIGTERM: how long open connections get to finish once their streams have ended,
/// and how long each process gets to die before its cgroup is swept. Together they keep
/// shutdown within 3 s.
const DRAIN: Duration = Duration::from_millis(1000);
const PROCESS_STOP_WAIT: Duration = Duration::from_millis(1500);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SANDLOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.mode {
            None => run(cli.standalone, None).await,
            Some(Mode::Node(args)) => crate::cluster::run_node(*args).await,
            Some(Mode::Control(args)) => crate::cluster::run_control(*args).await,
            Some(Mode::Keygen { out }) => crate::cluster::keygen(&out),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the server: standalone, or as a cluster node with `role`.
pub(crate) async fn run(mut cfg: Config, role: Option<NodeRole>) -> Result<(), String> {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "sandlotd must run as root: it creates namespaces and cgroups for sandboxes".into(),
        );
    }
    if let Some(path) = cfg.api_key_file.take() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
        let key = text.lines().next().unwrap_or("").trim().to_string();
        if key.is_empty() {
            return Err(format!("the API key file {} is empty", path.display()));
        }
        cfg.api_key = Some(key);
    }
    if cfg.api_key.is_none() {
        if !cfg.listen.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {} without an API key: set SANDLOT_API_KEY or --api-key-file",
                cfg.listen
            ));
        }
        warn!(
            "no API key configured: local mode, any key (or none) is accepted on {}",
            cfg.listen
        );
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", cfg.data_dir.display()))?;
    // The store, the signing key and the workspaces are root's alone.
    std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict data dir {}: {e}", cfg.data_dir.display()))?;
    let cfg = Arc::new(Config {
        data_dir: std::fs::canonicalize(&cfg.data_dir).map_err(|e| e.to_string())?,
        ..cfg
    });
    // Before anything reads or sweeps what the data dir holds; held until `run` returns.
    let _data_dir_lock = crate::data_dir_lock::DataDirLock::acquire(&cfg.data_dir)?;
    let caps = OutputCaps {
        per_sandbox: cfg.max_stored_output_mb_per_sandbox * 1024 * 1024,
        total: cfg.max_stored_output_mb * 1024 * 1024,
    };
    let store = Arc::new(
        SqliteStore::open(&cfg.data_dir.join("sandlot.db"), caps)
            .map_err(|e| format!("cannot open the store: {e}"))?,
    );
    // Before anything starts: a bad --webhook-allow-hosts entry stops the server here.
    let webhooks = Arc::new(Webhooks::new(cfg.clone(), store.clone())?);
    let signer = match &role {
        Some(role) => role.signer.clone(),
        None => {
            TokenSigner::load_or_create(&cfg.data_dir).map_err(|e| format!("signing key: {e}"))?
        }
    };
    let cgroups = Arc::new(Cgroups::detect(&instance_name(&cfg.data_dir)));
    info!("isolation: namespaces + seccomp; {}", cgroups.describe());

    let shutdown = Shutdown::new();
    let network = Arc::new(Network::new(
        network_config(&cfg, &instance_name(&cfg.data_dir))?,
        shutdown.clone(),
    ));
    let node = Arc::new(
        LocalNode::new(
            cfg.clone(),
            cgroups,
            store.clone(),
            network,
            shutdown.clone(),
        )
        .map_err(|e| e.to_string())?,
    );
    {
        // The sandbox spawner and the python fork server start beside recovery, so that the
        // first create and the first python context (often a new sandbox's) find them ready.
        let node = node.clone();
        tokio::spawn(async move { node.prepare_helpers().await });
    }
    node.recover()
        .await
        .map_err(|e| format!("recovery failed: {e}"))?;
    info!(sandboxes = node.count(), "state recovered");
    if role.is_some() {
        // A node that starts is a new epoch: what it ran before is lost for the control
        // plane, so it is killed before the node serves again.
        let killed = crate::cluster::membership::kill_all(node.as_ref()).await;
        if killed > 0 {
            info!(
                sandboxes = killed,
                "killed the sandboxes of an earlier epoch"
            );
        }
    }
    webhooks.recover();
    let deliveries = tokio::spawn(webhooks.clone().run(shutdown.clone()));

    let pool_filler = {
        let (node, shutdown) = (node.clone(), shutdown.clone());
        tokio::spawn(async move { node.keep_pool_filled(shutdown).await })
    };
    let reaper = {
        let (node, shutdown) = (node.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        node.reap_expired().await;
                        node.stop_idle_contexts().await;
                    }
                    _ = shutdown.requested() => return,
                }
            }
        })
    };

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    info!(
        "sandlotd {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        cfg.listen
    );
    let app = api::router(AppState {
        cfg: cfg.clone(),
        node: node.clone() as Arc<dyn Node>,
        signer,
        webhooks,
        started: Instant::now(),
        shutdown: shutdown.clone(),
        requests: Default::default(),
        cluster_node: role.as_ref().map(|r| Arc::from(r.membership.name())),
    });
    let membership = role.map(|role| {
        tokio::spawn(
            role.membership
                .run(node.clone() as Arc<dyn Node>, shutdown.clone()),
        )
    });
    // The signal triggers the one shutdown: streams, runners, the reaper and deliveries all
    // hear it; axum stops accepting and waits for open responses, which the streams end.
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match shutdown_signal().await {
                Ok(()) => info!("shutting down"),
                Err(e) => error!("cannot listen for signals: {e}"),
            }
            shutdown.trigger();
        });
    }
    // `into_make_service`: a connection gets a clone of the router's handle. Served as a
    // bare `Router`, axum rebuilds every route for each connection (~0.3 ms of CPU).
    let serve = axum::serve(listener, app.into_make_service()).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move { shutdown.requested().await }
    });
    let serve = tokio::spawn(async move { serve.await });
    shutdown.requested().await;
    // Stop the sandboxes while connections drain: runs end, streams see their exits. A
    // pooled sandbox being made is finished first, then drained with the pool.
    let _ = pool_filler.await;
    node.shutdown(PROCESS_STOP_WAIT).await;
    match tokio::time::timeout(DRAIN, serve).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!("server error while draining: {e}"),
        Ok(Err(e)) => warn!("server task: {e}"),
        Err(_) => warn!("connections still open after the drain; closing them"),
    }
    let _ = tokio::join!(reaper, deliveries);
    if let Some(membership) = membership {
        let _ = membership.await;
    }
    info!("bye");
    Ok(())
}

pub(crate) async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// The network flags, checked: a bad range or CIDR stops the server here.
fn network_config(cfg: &Config, instance: &str) -> Result<NetworkConfig, String> {
    let range = Cidr::parse(&cfg.network_cidr)
        .filter(|c| c.prefix <= 30)
        .ok_or_else(|| {
            format!(
                "--network-cidr {}: not an IPv4 range of at least 4 addresses",
                cfg.network_cidr
            )
        })?;
    let operator_allowed = cfg
        .network_allow_cidr
        .iter()
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            Cidr::parse(c.trim())
                .ok_or_else(|| format!("--network-allow-cidr {c}: not an IPv4 CIDR"))
        })
        .collect::<Result<_, _>>()?;
    Ok(NetworkConfig {
        instance: instance.to_string(),
        range,
        operator_allowed,
        dns_upstream: cfg
            .network_dns_upstream
            .unwrap_or_else(crate::network::host_resolver),
        listen: cfg.listen,
    })
}

/// A short stable name for this data dir (FNV-1a of its path), used for the cgroup sub-tree.
fn instance_name(data_dir: &std::path::Path) -> String {
    let hash = data_dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    format!("{:08x}", hash as u32)
}
