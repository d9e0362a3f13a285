//! Observability: what runs in a sandbox (`GET /processes`), what it uses
//! (`GET /metrics/snapshot`, `GET /metrics`, `GET /metrics/prometheus`), the host it runs on
//! (`GET /system`), and the server-wide Prometheus page (`GET /metrics` on the control plane).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sandlot_protocol::{
    CpuUsage, Gauge, MetricsSnapshot, ProcessCounts, SystemInfo, SystemProcessList, SystemUsage,
};

use super::auth::{AgentSandbox, ApiKey};
use super::error::ApiResult;
use super::AppState;
use crate::node::{ProcessFilter, SandboxUsage};
use crate::time::now_rfc3339;

/// Agent requests per sandbox: totals and per-route counts and durations.
#[derive(Debug, Default)]
pub struct RequestStats {
    by_sandbox: Mutex<HashMap<String, SandboxRequests>>,
}

#[derive(Debug, Default, Clone)]
struct SandboxRequests {
    total: u64,
    errors: u64,
    /// Route → (count, total milliseconds).
    routes: BTreeMap<String, (u64, f64)>,
}

/// Sandboxes whose counters are kept beyond the most that can live before one is dropped.
const STATS_SLACK: usize = 64;

impl RequestStats {
    fn record(&self, sandbox: &str, route: String, failed: bool, ms: f64, max_live: usize) {
        let mut map = self.by_sandbox.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(sandbox) && map.len() >= max_live + STATS_SLACK {
            // Bounded: forget the sandbox with the fewest requests (most likely gone).
            if let Some(victim) = map
                .iter()
                .min_by_key(|(_, s)| s.total)
                .map(|(k, _)| k.clone())
            {
                map.remove(&victim);
            }
        }
        let entry = map.entry(sandbox.to_string()).or_default();
        entry.total += 1;
        entry.errors += u64::from(failed);
        let route = entry.routes.entry(route).or_default();
        route.0 += 1;
        route.1 += ms;
    }

    fn of(&self, sandbox: &str) -> SandboxRequests {
        let map = self.by_sandbox.lock().unwrap_or_else(|p| p.into_inner());
        map.get(sandbox).cloned().unwrap_or_default()
    }

    pub fn forget(&self, sandbox: &str) {
        let mut map = self.by_sandbox.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(sandbox);
    }
}

/// Counts an agent request under its sandbox and route (a `route_layer`, so the route is
/// known).
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| {
        m.as_str()
            .trim_start_matches("/sandboxes/{id}/agent")
            .to_string()
    });
    // A nested router sees its path without the prefix; the original names the sandbox.
    let sandbox = req
        .extensions()
        .get::<OriginalUri>()
        .map(|uri| uri.path())
        .unwrap_or(req.uri().path())
        .strip_prefix("/sandboxes/")
        .and_then(|rest| rest.split('/').next())
        .map(str::to_string);
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    // Only live sandboxes are counted: requests naming made-up ids must not crowd them out.
    let sandbox = sandbox.filter(|id| state.node.sandbox(id).is_ok());
    if let (Some(route), Some(sandbox)) = (route, sandbox) {
        let failed = response.status().is_client_error() || response.status().is_server_error();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let max_live = state.cfg.max_sandboxes;
        state
            .requests
            .record(&sandbox, format!("{method} {route}"), failed, ms, max_live);
    }
    response
}

pub async fn processes(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<SystemProcessList>> {
    let usage = state.node.sandbox_usage(&sandbox.id).await?;
    Ok(Json(SystemProcessList {
        count: usage.processes.len(),
        processes: usage.processes,
    }))
}

pub async fn snapshot(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<MetricsSnapshot>> {
    let usage = state.node.sandbox_usage(&sandbox.id).await?;
    let requests = state.requests.of(&sandbox.id);
    // Only counted: the records without their output (each finished one's stored JSON).
    let count_only = ProcessFilter {
        without_output: true,
        ..Default::default()
    };
    let recorded = state
        .node
        .processes(&sandbox.id, &count_only)
        .map(|p| p.len() as u64)
        .unwrap_or(0);
    let alive = sandbox
        .created_at
        .elapsed()
        .unwrap_or_default()
        .as_secs_f64();
    let cores = state.cfg.sandbox_cpus;
    let cpu_seconds = usage.cpu_seconds.unwrap_or(0.0);
    Ok(Json(MetricsSnapshot {
        uptime_seconds: alive as u64,
        total_requests: requests.total,
        total_errors: requests.errors,
        error_count: requests.errors,
        active_executions: usage.active_executions,
        total_executions: recorded.max(usage.active_executions),
        avg_duration_ms: requests
            .routes
            .iter()
            .map(|(route, (n, ms))| (route.clone(), round1(ms / (*n).max(1) as f64)))
            .collect(),
        requests_total: requests
            .routes
            .into_iter()
            .map(|(r, (n, _))| (r, n))
            .collect(),
        system: SystemUsage {
            cpu: CpuUsage {
                usage_seconds: (cpu_seconds * 100.0).round() / 100.0,
                usage_percent: round1(cpu_seconds / alive.max(0.001) / cores.max(0.01) * 100.0),
                cores,
            },
            memory: gauge(usage.memory_bytes.unwrap_or(0), usage.memory_limit_bytes),
            disk: gauge(usage.disk_bytes.unwrap_or(0), usage.disk_limit_bytes),
        },
        process: ProcessCounts {
            count: usage.processes.len() as u64,
            running: usage
                .processes
                .iter()
                .filter(|p| p.status == "running")
                .count() as u64,
        },
        oom_kills: usage.oom_kills,
        network: usage.network,
        cache: Default::default(),
        timestamp: now_rfc3339(),
    }))
}

pub async fn system(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> Json<SystemInfo> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let host_memory_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Json(SystemInfo {
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        kernel: read("/proc/sys/kernel/osrelease").trim().into(),
        hostname: crate::sandbox::layout::hostname_of(&sandbox.id),
        cpus: state.cfg.sandbox_cpus,
        host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        memory_mb: state.cfg.sandbox_memory_mb.min(host_memory_kb / 1024),
        disk_mb: state.cfg.sandbox_disk_reported_mb(),
        uptime_seconds: sandbox.created_at.elapsed().unwrap_or_default().as_secs(),
    })
}

/// One sandbox in the Prometheus text format.
pub async fn sandbox_prometheus(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Response> {
    let usage = state.node.sandbox_usage(&sandbox.id).await?;
    let mut page = String::new();
    write_families(&mut page, &[(sandbox.id, usage)]);
    Ok(prometheus(page))
}

/// Every sandbox and the server's own numbers, for a Prometheus scraper with the API key.
pub async fn server_prometheus(State(state): State<AppState>, _: ApiKey) -> Response {
    let mut sandboxes = Vec::new();
    for info in state.node.sandboxes() {
        if let Ok(usage) = state.node.sandbox_usage(&info.id).await {
            sandboxes.push((info.id, usage));
        }
    }
    let mut page = String::new();
    let started = state.started.elapsed().as_secs();
    metric(
        &mut page,
        "gauge",
        "sandlot_up_seconds",
        "Seconds since sandlotd started.",
        started,
    );
    metric(
        &mut page,
        "gauge",
        "sandlot_sandboxes",
        "Live sandboxes.",
        sandboxes.len(),
    );
    let max = state.cfg.max_sandboxes;
    metric(
        &mut page,
        "gauge",
        "sandlot_sandboxes_max",
        "Sandboxes this server holds at most.",
        max,
    );
    let ready = state.node.warm_pool_ready();
    let help = "Sandboxes made ahead, ready for a create to take.";
    metric(&mut page, "gauge", "sandlot_warm_pool_ready", help, ready);
    let taken = state.node.warm_pool_taken();
    let help = "Creates that took a sandbox from the warm pool.";
    metric(
        &mut page,
        "counter",
        "sandlot_warm_pool_taken_total",
        help,
        taken,
    );
    write_families(&mut page, &sandboxes);
    let requests = {
        let map = state
            .requests
            .by_sandbox
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.values()
            .fold((0, 0), |(t, e), s| (t + s.total, e + s.errors))
    };
    let (name, help) = (
        "sandlot_agent_requests_total",
        "Agent requests served (live sandboxes).",
    );
    metric(&mut page, "counter", name, help, requests.0);
    let (name, help) = (
        "sandlot_agent_request_errors_total",
        "Agent requests answered 4xx/5xx.",
    );
    metric(&mut page, "counter", name, help, requests.1);
    prometheus(page)
}

/// One unlabelled metric of `kind` (gauge, counter) with its HELP and TYPE lines.
fn metric(page: &mut String, kind: &str, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(page, "# HELP {name} {help}");
    let _ = writeln!(page, "# TYPE {name} {kind}");
    let _ = writeln!(page, "{name} {value}");
}

/// The per-sandbox families, each with its HELP and TYPE once.
fn write_families(page: &mut String, sandboxes: &[(String, SandboxUsage)]) {
    type Value = fn(&SandboxUsage) -> Option<f64>;
    let families: [(&str, &str, &str, Value); 9] = [
        (
            "sandlot_sandbox_cpu_seconds_total",
            "counter",
            "CPU time used by the sandbox.",
            |u| u.cpu_seconds,
        ),
        (
            "sandlot_sandbox_memory_bytes",
            "gauge",
            "Memory the sandbox uses.",
            |u| u.memory_bytes.map(|b| b as f64),
        ),
        (
            "sandlot_sandbox_memory_limit_bytes",
            "gauge",
            "The sandbox's memory limit.",
            |u| Some(u.memory_limit_bytes as f64),
        ),
        (
            "sandlot_sandbox_disk_bytes",
            "gauge",
            "Bytes in the sandbox's workspace.",
            |u| u.disk_bytes.map(|b| b as f64),
        ),
        (
            "sandlot_sandbox_disk_limit_bytes",
            "gauge",
            "The workspace quota (0: none).",
            |u| Some(u.disk_limit_bytes as f64),
        ),
        (
            "sandlot_sandbox_processes",
            "gauge",
            "Operating-system processes in the sandbox.",
            |u| Some(u.processes.len() as f64),
        ),
        (
            "sandlot_sandbox_oom_kills_total",
            "counter",
            "Processes the out-of-memory killer ended.",
            |u| Some(u.oom_kills as f64),
        ),
        (
            "sandlot_sandbox_network_sent_bytes_total",
            "counter",
            "Bytes the sandbox sent over its network interface.",
            |u| Some(u.network.bytes_out as f64),
        ),
        (
            "sandlot_sandbox_network_received_bytes_total",
            "counter",
            "Bytes the sandbox received over its network interface.",
            |u| Some(u.network.bytes_in as f64),
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(page, "# HELP {name} {help}");
        let _ = writeln!(page, "# TYPE {name} {kind}");
        for (id, usage) in sandboxes {
            if let Some(v) = value(usage) {
                let _ = writeln!(page, "{name}{{sandbox=\"{id}\"}} {v}");
            }
        }
    }
}

fn prometheus(page: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
    )
        .into_response()
}

fn gauge(used: u64, limit: u64) -> Gauge {
    let mb = |b: u64| round1(b as f64 / (1024.0 * 1024.0));
    Gauge {
        used_mb: mb(used),
        limit_mb: mb(limit),
        usage_percent: if limit == 0 {
            0.0
        } else {
            round1(used as f64 / limit as f64 * 100.0)
        },
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
