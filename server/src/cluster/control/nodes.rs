//! The control plane's node routes: membership (register, heartbeat, with the join token),
//! and the operator's view (the node list, drain, metrics, with the API key).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sandlot_protocol::{
    code, ClusterNodeList, NodeHeartbeat, NodeHeartbeatReply, NodeRegistered, NodeRegistration,
};
use tracing::info;

use super::{path_id, read_json, Shared};
use crate::api::error::{ApiError, ApiResult};
use crate::cluster::catalog::{Heartbeat, Placement};
use crate::cluster::router::{self, Credential};

pub(super) async fn register(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_join_token(req.headers()) {
        return e.into_response();
    }
    let reg: NodeRegistration = match read_json(&c, req).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if !valid_node_name(&reg.name) || !valid_node_addr(&reg.addr) {
        return ApiError::bad_request(
            code::INVALID_REQUEST,
            "a node needs a name of 1-63 letters, digits, '.', '_' or '-', and an absolute http(s) URL",
        )
        .into_response();
    }
    let mut secret = [0u8; 32];
    if getrandom::fill(&mut secret).is_err() {
        return ApiError::internal("no randomness").into_response();
    }
    let session: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    match c.catalog.register(&reg, c.settings.lease, &sha256_hex(&session)).await {
        Ok(Some(epoch)) => {
            info!(node = %reg.name, epoch, addr = %reg.addr, "node registered");
            Json(NodeRegistered {
                node_id: reg.name,
                epoch,
                lease_seconds: c.settings.lease.as_secs(),
                heartbeat_seconds: c.settings.heartbeat.as_secs(),
                public_url: c.settings.public_url.clone(),
                session,
            })
            .into_response()
        }
        Ok(None) => ApiError {
            retry_after: Some(c.settings.lease.as_secs().max(1)),
            ..ApiError::new(
                StatusCode::CONFLICT,
                code::CONFLICT,
                format!(
                    "a node named '{}' is alive (its lease runs); a node of that name may register once it is lost",
                    reg.name
                ),
            )
        }
        .into_response(),
        Err(e) => router::unavailable(&e).into_response(),
    }
}

/// Node names become URL path segments and metric labels: letters, digits, `.`, `_`, `-`.
fn valid_node_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_node_addr(addr: &str) -> bool {
    addr.parse::<axum::http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) async fn heartbeat(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_join_token(req.headers()) {
        return e.into_response();
    }
    let name = path_id(&req, 4);
    let beat: NodeHeartbeat = match read_json(&c, req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match c
        .catalog
        .heartbeat(
            &name,
            beat.epoch,
            &sha256_hex(&beat.session),
            &beat.sandboxes,
            c.settings.lease,
        )
        .await
    {
        Ok(Heartbeat::Renewed { orphans, draining }) => {
            Json(NodeHeartbeatReply { orphans, draining }).into_response()
        }
        Ok(Heartbeat::Fenced) => ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            "this node's epoch is over (its lease expired or it registered again): kill every sandbox and register",
        )
        .into_response(),
        Err(e) => router::unavailable(&e).into_response(),
    }
}

pub(super) async fn nodes(
    State(c): Shared,
    headers: HeaderMap,
) -> ApiResult<Json<ClusterNodeList>> {
    c.require_api_key(&headers)?;
    let nodes = c
        .catalog
        .nodes()
        .await
        .map_err(|e| router::unavailable(&e))?;
    Ok(Json(ClusterNodeList { nodes }))
}

pub(super) async fn drain(State(c): Shared, req: Request) -> ApiResult<Json<ClusterNodeList>> {
    c.require_api_key(req.headers())?;
    let name = path_id(&req, 4);
    if !c
        .catalog
        .drain(&name)
        .await
        .map_err(|e| router::unavailable(&e))?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            code::RESOURCE_NOT_FOUND,
            format!("no live node named '{name}'"),
        ));
    }
    let nodes = c
        .catalog
        .nodes()
        .await
        .map_err(|e| router::unavailable(&e))?;
    Ok(Json(ClusterNodeList { nodes }))
}

/// The cluster in Prometheus text: nodes by state, their capacity and allocation, sandboxes by
/// state. Every replica answers the same (it is all in the catalog).
pub(super) async fn metrics(State(c): Shared, headers: HeaderMap) -> Response {
    use std::fmt::Write;
    if let Err(e) = c.require_api_key(&headers) {
        return e.into_response();
    }
    let (nodes, sandboxes) = match (c.catalog.nodes().await, c.catalog.sandbox_counts().await) {
        (Ok(n), Ok(s)) => (n, s),
        (Err(e), _) | (_, Err(e)) => return router::unavailable(&e).into_response(),
    };
    let mut page = String::new();
    let gauge = |page: &mut String, name: &str, help: &str| {
        let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    gauge(&mut page, "sandlot_cluster_nodes", "Nodes by state.");
    for state in ["joining", "ready", "draining", "lost"] {
        let n = nodes.iter().filter(|x| x.state == state).count();
        let _ = writeln!(page, "sandlot_cluster_nodes{{state=\"{state}\"}} {n}");
    }
    gauge(
        &mut page,
        "sandlot_cluster_node_capacity",
        "Sandboxes a node runs at most.",
    );
    for n in &nodes {
        let _ = writeln!(
            page,
            "sandlot_cluster_node_capacity{{node=\"{}\"}} {}",
            n.name, n.capacity
        );
    }
    gauge(
        &mut page,
        "sandlot_cluster_node_allocated",
        "Sandboxes placed on a node.",
    );
    for n in &nodes {
        let _ = writeln!(
            page,
            "sandlot_cluster_node_allocated{{node=\"{}\"}} {}",
            n.name, n.allocated
        );
    }
    gauge(
        &mut page,
        "sandlot_cluster_sandboxes",
        "Sandboxes in the catalog by state.",
    );
    for (state, n) in sandboxes {
        let _ = writeln!(page, "sandlot_cluster_sandboxes{{state=\"{state}\"}} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page).into_response()
}

/// One node's own `/metrics` (its sandboxes' usage), fetched for the caller: nodes answer
/// the control plane only.
pub(super) async fn node_metrics(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let name = path_id(&req, 4);
    let node = match c.catalog.nodes().await {
        Ok(nodes) => nodes
            .into_iter()
            .find(|n| n.name == name && n.state != "lost"),
        Err(e) => return router::unavailable(&e).into_response(),
    };
    let Some(node) = node else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            code::RESOURCE_NOT_FOUND,
            format!("no live node named '{name}'"),
        )
        .into_response();
    };
    let to = Placement {
        node: node.name,
        addr: node.addr,
        epoch: node.epoch,
        lost: false,
    };
    let mut forwarded = Request::new(axum::body::Body::empty());
    *forwarded.uri_mut() = axum::http::Uri::from_static("/metrics");
    c.router
        .forward(&to, forwarded, Credential::Control)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
