//! Observability replies of a sandbox's agent (HopX §4.13): what runs in it
//! (`GET /processes`), what it uses (`GET /metrics/snapshot`, `GET /metrics`) and the host it
//! runs on (`GET /system`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One operating-system process in the sandbox (not only those started through the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemProcess {
    /// Its pid inside the sandbox.
    pub pid: i32,
    pub name: String,
    /// `running`, `sleeping`, `disk-sleep`, `stopped`, `zombie` or `idle`.
    pub status: String,
    /// CPU time over its lifetime, in percent of one core.
    pub cpu_percent: f64,
    pub memory_mb: f64,
    /// Its command line.
    pub command: String,
    /// `user` (the sandbox's user) or `root`.
    pub user: String,
    /// The API process it belongs to (`POST /processes/{process_id}/kill` ends it), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    /// The execution context whose interpreter it is (or was started by), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
}

/// Reply of `GET /processes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemProcessList {
    pub processes: Vec<SystemProcess>,
    pub count: usize,
}

/// Reply of `GET /metrics/snapshot`: the union of the fields the HopX sources name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsSnapshot {
    pub uptime_seconds: u64,
    /// Agent requests this sandbox has served (this server's run).
    pub total_requests: u64,
    /// Of those, answered with a 4xx or 5xx.
    pub total_errors: u64,
    /// The same as `total_errors` (the docs' name).
    pub error_count: u64,
    /// Processes running now.
    pub active_executions: u64,
    /// Processes started in the sandbox (running and recorded).
    pub total_executions: u64,
    /// Requests per route (`"POST /execute"`).
    pub requests_total: BTreeMap<String, u64>,
    /// Mean duration per route, in milliseconds.
    pub avg_duration_ms: BTreeMap<String, f64>,
    pub system: SystemUsage,
    pub process: ProcessCounts,
    /// Processes the out-of-memory killer ended in this sandbox.
    pub oom_kills: u64,
    /// Bytes over the sandbox's network interface (Sandlot extension; 0 without internet).
    #[serde(default)]
    pub network: crate::NetworkUsage,
    /// HopX's result cache; sandlotd keeps none, so every count is 0.
    pub cache: CacheStats,
    pub timestamp: String,
}

/// Counts of a result cache (HopX agents have one; sandlotd does not).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheStats {
    pub size: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
}

/// The sandbox's use of its limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemUsage {
    pub cpu: CpuUsage,
    pub memory: Gauge,
    pub disk: Gauge,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CpuUsage {
    /// CPU time used since the sandbox started, in seconds.
    pub usage_seconds: f64,
    /// Mean use since the sandbox started, in percent of its CPU limit.
    pub usage_percent: f64,
    /// Its CPU limit in cores.
    pub cores: f64,
}

/// Used and allowed, in MiB.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Gauge {
    pub used_mb: f64,
    pub limit_mb: f64,
    pub usage_percent: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessCounts {
    /// Operating-system processes in the sandbox.
    pub count: u64,
    /// Of those, running (not sleeping).
    pub running: u64,
}

/// Reply of `GET /system`: the host a sandbox runs on, as the sandbox sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemInfo {
    pub os: String,
    pub arch: String,
    pub kernel: String,
    pub hostname: String,
    /// The sandbox's CPU limit in cores, and the host's cores.
    pub cpus: f64,
    pub host_cpus: u64,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub uptime_seconds: u64,
}
