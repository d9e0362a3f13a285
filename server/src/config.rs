//! Command line and environment configuration of sandlotd.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// sandlotd: a self-hosted sandbox server that speaks the HopX sandbox API. Without a
/// subcommand it is one host with everything in it; `node` and `control` are the two halves
/// of a cluster (`docs/cluster.md`).
#[derive(Debug, Parser)]
#[command(name = "sandlotd", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub standalone: Config,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Runs this host's sandboxes for a cluster's control plane.
    Node(Box<NodeArgs>),
    /// Runs a cluster's control plane: the `/v1` API, placement, and the router to nodes.
    Control(Box<ControlArgs>),
    /// Writes a new Ed25519 key pair for a cluster's tokens (token-private.key for the
    /// control plane, token-public.key for the nodes).
    Keygen {
        /// Directory the two key files are written to.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `sandlotd node`: every standalone flag (limits, data dir, listen address), plus how to
/// reach and join the control plane.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub base: Config,

    /// The control plane's URL (a Service in front of its replicas).
    #[arg(long, env = "SANDLOT_CONTROL_PLANE")]
    pub control_plane: String,

    /// The URL the control plane reaches this node at (e.g. http://<host ip>:7071).
    #[arg(long, env = "SANDLOT_ADVERTISE_URL")]
    pub advertise: String,

    /// This node's name in the cluster; default: the host name.
    #[arg(long, env = "SANDLOT_NODE_NAME")]
    pub node_name: Option<String>,

    /// The secret nodes present to register and heartbeat.
    #[arg(long, env = "SANDLOT_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,

    /// Reads the join token from this file (its first line).
    #[arg(long, env = "SANDLOT_JOIN_TOKEN_FILE", conflicts_with = "join_token")]
    pub join_token_file: Option<PathBuf>,

    /// The control plane's Ed25519 public key (base64, as `sandlotd keygen` writes it):
    /// the node verifies tokens with it and can mint none.
    #[arg(long, env = "SANDLOT_TOKEN_PUBLIC_KEY_FILE")]
    pub token_public_key_file: PathBuf,
}

/// `sandlotd control`.
#[derive(Debug, Clone, Args)]
pub struct ControlArgs {
    /// Addresses to listen on (comma-separated or repeated): e.g. one for clients, one on
    /// the nodes' network.
    #[arg(
        long,
        env = "SANDLOT_LISTEN",
        default_value = "127.0.0.1:7070",
        value_delimiter = ',',
        required = true
    )]
    pub listen: Vec<SocketAddr>,

    /// The Postgres catalog (postgres://user:password@host/db or key=value form).
    #[arg(long, env = "SANDLOT_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Base URL clients reach the cluster at (`public_host` of every sandbox); default:
    /// from --listen.
    #[arg(long, env = "SANDLOT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// API key clients must present. Without one, a loopback control plane runs in local
    /// mode (any key accepted); a non-loopback one refuses to start.
    #[arg(long, env = "SANDLOT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Reads the API key from this file (its first line).
    #[arg(long, env = "SANDLOT_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,

    /// The secret nodes present to register and heartbeat.
    #[arg(long, env = "SANDLOT_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,

    /// Reads the join token from this file (its first line).
    #[arg(long, env = "SANDLOT_JOIN_TOKEN_FILE", conflicts_with = "join_token")]
    pub join_token_file: Option<PathBuf>,

    /// The Ed25519 private key (base64, as `sandlotd keygen` writes it) that signs sandbox
    /// tokens and the control plane's calls to nodes.
    #[arg(long, env = "SANDLOT_TOKEN_PRIVATE_KEY_FILE")]
    pub token_private_key_file: PathBuf,

    /// Seconds a node's lease lasts without a heartbeat; then its sandboxes are lost.
    #[arg(long, env = "SANDLOT_LEASE_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_secs: u64,

    /// Seconds between a node's heartbeats.
    #[arg(long, env = "SANDLOT_HEARTBEAT_SECS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub heartbeat_secs: u64,

    /// Largest request body accepted, in bytes (uploads stream through unbounded here; the
    /// node applies its own limits).
    #[arg(long, env = "SANDLOT_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// CA certificates (PEM) the catalog's server certificate must chain to; default: the
    /// public web roots. TLS follows the URL's `sslmode` (`require`: TLS or nothing, the
    /// certificate and host name verified; `prefer`, the default: TLS when offered).
    #[arg(long, env = "SANDLOT_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,

    /// Postgres connections per control plane replica.
    #[arg(long, env = "SANDLOT_DATABASE_POOL", default_value_t = 16)]
    pub database_pool: usize,
}

/// A secret given inline or as a file's first line.
pub fn read_secret(
    inline: Option<String>,
    file: Option<&std::path::Path>,
    what: &str,
) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))?;
        let value = text.lines().next().unwrap_or("").trim().to_string();
        if value.is_empty() {
            return Err(format!("the {what} file {} is empty", path.display()));
        }
        return Ok(Some(value));
    }
    Ok(inline.filter(|v| !v.is_empty()))
}

/// sandlotd's configuration (standalone, and the node half of a cluster).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SANDLOT_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,

    /// Directory for the SQLite store, the signing key and sandbox workspaces.
    #[arg(long, env = "SANDLOT_DATA_DIR", default_value = "./.sandlot")]
    pub data_dir: PathBuf,

    /// API key required on the control plane. Without one, a loopback server runs in local
    /// mode (any key accepted); a non-loopback server refuses to start.
    /// (A flag's value is visible to every local user in /proc/<pid>/cmdline: prefer the
    /// environment variable or --api-key-file.)
    #[arg(long, env = "SANDLOT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Reads the API key from this file (its first line), instead of --api-key.
    #[arg(long, env = "SANDLOT_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,

    /// Base URL clients use to reach this server (for `public_host`); default: from --listen.
    #[arg(long, env = "SANDLOT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SANDLOT_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Sandboxes this server runs at once.
    #[arg(long, env = "SANDLOT_MAX_SANDBOXES", default_value_t = 1000)]
    pub max_sandboxes: usize,

    /// Processes running at once in one sandbox.
    #[arg(
        long = "max-processes",
        env = "SANDLOT_MAX_PROCESSES",
        default_value_t = 64
    )]
    pub max_processes_per_sandbox: usize,

    /// Terminals (interactive shells on a PTY) running at once in one sandbox.
    #[arg(
        long = "max-terminals",
        env = "SANDLOT_MAX_TERMINALS",
        default_value_t = 16
    )]
    pub max_terminals_per_sandbox: usize,

    /// Seconds a terminal may go without any attached client (WebSocket or SSE stream)
    /// before it is killed; re-attaching within it keeps the shell.
    #[arg(long, env = "SANDLOT_TERMINAL_DETACH_SECS", default_value_t = 300)]
    pub terminal_detach_secs: u64,

    /// Bytes of a terminal's recent output kept for replay (re-attach, slow readers).
    #[arg(long, env = "SANDLOT_TERMINAL_REPLAY_BYTES", default_value_t = 256 * 1024)]
    pub terminal_replay_bytes: usize,

    /// Process records kept per sandbox; the oldest finished ones are dropped beyond it.
    #[arg(long, env = "SANDLOT_MAX_PROCESS_RECORDS", default_value_t = 20_000)]
    pub max_process_records: usize,

    /// Output (stdout + stderr) of finished processes kept per sandbox, in MiB; beyond it the
    /// oldest finished records' output is dropped and those records say `output_evicted`.
    #[arg(
        long,
        env = "SANDLOT_MAX_STORED_OUTPUT_MB_PER_SANDBOX",
        default_value_t = 256
    )]
    pub max_stored_output_mb_per_sandbox: u64,

    /// Output of finished processes kept in all, in MiB (the same eviction across sandboxes).
    #[arg(long, env = "SANDLOT_MAX_STORED_OUTPUT_MB", default_value_t = 4096)]
    pub max_stored_output_mb: u64,

    /// Seconds a finished process's live output stays in RAM for streams that reconnect;
    /// after that its record (output included) is read from the store.
    #[arg(long, env = "SANDLOT_FINISHED_LINGER_SECS", default_value_t = 30)]
    pub finished_linger_secs: u64,

    /// Bytes of stdout (and of stderr) kept per process: head and tail, middle dropped.
    #[arg(long, env = "SANDLOT_OUTPUT_CAP_BYTES", default_value_t = 1024 * 1024)]
    pub output_cap_bytes: usize,

    /// Memory limit of one sandbox, in MiB.
    #[arg(long, env = "SANDLOT_SANDBOX_MEMORY_MB", default_value_t = 512)]
    pub sandbox_memory_mb: u64,

    /// Process (and thread) limit of one sandbox.
    #[arg(long, env = "SANDLOT_SANDBOX_PIDS", default_value_t = 256)]
    pub sandbox_pids: u64,

    /// CPU quota of one sandbox, in cores.
    #[arg(long, env = "SANDLOT_SANDBOX_CPUS", default_value_t = 1.0)]
    pub sandbox_cpus: f64,

    /// Size of a sandbox's /tmp, in MiB.
    #[arg(long, env = "SANDLOT_SANDBOX_TMP_MB", default_value_t = 256)]
    pub sandbox_tmp_mb: u64,

    /// Disk quota of each sandbox's /workspace, in MiB (0 turns the quota off). Needs btrfs:
    /// the data dir on btrfs, or mkfs.btrfs and loop devices for a volume image.
    #[arg(long, env = "SANDLOT_SANDBOX_DISK_MB", default_value_t = 1024)]
    pub sandbox_disk_mb: u64,

    /// Size of the sparse btrfs image that holds every workspace when the data dir is not on
    /// btrfs, in GiB (it takes host space only as sandboxes write).
    #[arg(long, env = "SANDLOT_VOLUME_SIZE_GB", default_value_t = 64)]
    pub volume_size_gb: u64,

    /// Longest silence on an output stream before a keepalive is sent, in seconds.
    #[arg(long, env = "SANDLOT_STREAM_KEEPALIVE_SECS", default_value_t = 15)]
    pub stream_keepalive_secs: u64,

    /// Browser origins allowed to call sandbox agents (CORS; comma-separated, `*` for any).
    /// The control plane never answers cross-origin requests: a page never holds the API key.
    #[arg(long, env = "SANDLOT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Hosts webhook callbacks may go to: `host` or `host:port`, comma-separated; `*` allows
    /// any host at a public address. Default: none with an API key; in local mode,
    /// `localhost,127.0.0.1,::1` (loopback only). Private, loopback and link-local addresses
    /// are called only for hosts named here (`webhook/target.rs`).
    #[arg(long, env = "SANDLOT_WEBHOOK_ALLOW_HOSTS", value_delimiter = ',')]
    pub webhook_allow_hosts: Option<Vec<String>>,

    /// Webhook deliveries in flight at once for one sandbox; the rest of its queue waits, so
    /// a slow receiver delays only its own sandbox's callbacks.
    #[arg(
        long,
        env = "SANDLOT_WEBHOOK_CONCURRENCY_PER_SANDBOX",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub webhook_concurrency_per_sandbox: u32,

    /// Webhook deliveries in flight at once in all.
    #[arg(
        long,
        env = "SANDLOT_WEBHOOK_CONCURRENCY",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub webhook_concurrency: u32,

    /// Delivery attempts per webhook before it is given up.
    #[arg(long, env = "SANDLOT_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhook_max_attempts: u32,

    /// First retry delay of a failing webhook, in ms; it doubles per attempt (at most 60 s).
    #[arg(long, env = "SANDLOT_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    pub webhook_retry_base_ms: u64,

    /// Longest lifetime (`timeout_seconds`) a sandbox may be given, in seconds.
    #[arg(long, env = "SANDLOT_MAX_SANDBOX_TIMEOUT_SECS", default_value_t = 30 * 24 * 3600)]
    pub max_sandbox_timeout_secs: u64,

    /// Whether sandboxes created without `internet_access` get outbound network anyway.
    #[arg(long, env = "SANDLOT_INTERNET_ACCESS_DEFAULT", default_value_t = false)]
    pub internet_access_default: bool,

    /// The private IPv4 range sandlotd takes sandbox addresses from (a /30 each: gateway and
    /// sandbox). Two sandlotd instances on one host need ranges that do not overlap.
    #[arg(long, env = "SANDLOT_NETWORK_CIDR", default_value = "10.200.0.0/16")]
    pub network_cidr: String,

    /// CIDRs sandboxes may reach although sandlotd always blocks them otherwise (private
    /// ranges, link-local, the host): e.g. a private package registry. Comma-separated.
    #[arg(long, env = "SANDLOT_NETWORK_ALLOW_CIDR", value_delimiter = ',')]
    pub network_allow_cidr: Vec<String>,

    /// Where the sandboxes' resolver forwards questions (`ip:port`); default: the first
    /// nameserver of the host's /etc/resolv.conf.
    #[arg(long, env = "SANDLOT_NETWORK_DNS_UPSTREAM")]
    pub network_dns_upstream: Option<std::net::SocketAddr>,

    /// Domain for preview URLs by host name: `http://<port>-<sandbox id>.<domain>` reaches
    /// that port of that sandbox (needs a wildcard DNS record to this server). Without it,
    /// ports are reached at `<server>/sandboxes/<id>/ports/<port>/`.
    #[arg(long, env = "SANDLOT_PREVIEW_DOMAIN")]
    pub preview_domain: Option<String>,

    /// Longest lifetime of a signed preview URL, in seconds.
    #[arg(long, env = "SANDLOT_PREVIEW_MAX_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub preview_max_ttl_secs: u64,

    /// Longest run-time limit a process may ask for, in seconds.
    #[arg(long, env = "SANDLOT_MAX_TIMEOUT_SECS", default_value_t = 24 * 3600)]
    pub max_timeout_secs: u64,

    /// Execution contexts (interpreters that keep state) one sandbox may have, default
    /// contexts included.
    #[arg(
        long = "max-contexts",
        env = "SANDLOT_MAX_CONTEXTS",
        default_value_t = 8
    )]
    pub max_contexts_per_sandbox: usize,

    /// A context's interpreter stops after this many seconds without a run (the next run
    /// starts it again, with fresh state); 0 keeps it.
    #[arg(long, env = "SANDLOT_CONTEXT_IDLE_SECS", default_value_t = 900)]
    pub context_idle_secs: u64,

    /// Fork python contexts from a pre-initialised interpreter (a fork server started with
    /// sandlotd) instead of starting IPython for each: ready in milliseconds, not ~250 ms.
    #[arg(long, env = "SANDLOT_CONTEXT_ZYGOTE", default_value_t = true, action = clap::ArgAction::Set)]
    pub context_zygote: bool,

    /// Start the default python context of a `code-interpreter` sandbox at create (in the
    /// background: the create reply does not wait for it), so the first run finds it warm.
    #[arg(long, env = "SANDLOT_WARM_PYTHON_CONTEXT", default_value_t = true, action = clap::ArgAction::Set)]
    pub warm_python_context: bool,

    /// Keep this many `code-interpreter` sandboxes made ahead, each with its default python
    /// context ready; a create that asks for nothing they lack (no env, no internet, no id
    /// of its own) takes one: ready in about a millisecond. Made only while no create is in
    /// flight, never in the last free slot of `--max-sandboxes`; 0: none. Standalone only.
    #[arg(long, env = "SANDLOT_WARM_POOL", default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub warm_pool: u16,
    /// Give each sandbox a user namespace: its pid 1 and the helpers, root inside, are an
    /// unprivileged host id of that sandbox's own outside (a second range of host ids,
    /// 160000-219999, beside the sandboxes' users at 100000-159999).
    #[arg(long, env = "SANDLOT_USER_NAMESPACE", default_value_t = true, action = clap::ArgAction::Set)]
    pub user_namespace: bool,

    /// Largest file `POST /files/upload` accepts, in MiB (streamed to disk, never held in
    /// memory; the JSON body limit does not apply to it).
    #[arg(long, env = "SANDLOT_MAX_UPLOAD_MB", default_value_t = 1024)]
    pub max_upload_mb: u64,

    /// Largest file `GET /files/read` returns, in MiB (larger ones: `/files/download`).
    #[arg(long, env = "SANDLOT_MAX_READ_MB", default_value_t = 16)]
    pub max_read_mb: u64,

    /// The node's name in a cluster (`node_id` of its sandboxes); standalone: none.
    #[arg(skip)]
    pub node_name: Option<String>,
}

impl Config {
    /// A sandbox's bounded storage as reported (`resources.disk_mb`, `/system`): the
    /// workspace quota, or without one `/tmp`, the only bounded storage then.
    pub fn sandbox_disk_reported_mb(&self) -> u64 {
        match self.sandbox_disk_mb {
            0 => self.sandbox_tmp_mb,
            quota => quota,
        }
    }

    /// The base URL clients reach this server at.
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let addr = if self.listen.ip().is_unspecified() {
                    SocketAddr::new([127, 0, 0, 1].into(), self.listen.port())
                } else {
                    self.listen
                };
                format!("http://{addr}")
            }
        }
    }
}
