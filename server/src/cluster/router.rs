//! The control plane's router: a client's request for a sandbox goes, unbuffered, to the
//! node that runs it — HTTP bodies streamed both ways, SSE as it comes, WebSocket upgrades
//! spliced. Where a sandbox lives is cached briefly; an answer that shows the cache stale
//! (the node unreachable, or not knowing the sandbox) drops the entry and reads the catalog
//! again, so a lost sandbox is answered `SANDBOX_LOST` at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sandlot_protocol::code;
use tracing::{debug, warn};

use super::catalog::{Catalog, Placement};
use crate::api::error::{ApiError, SANDBOX_UNKNOWN_HEADER};
use crate::api::HOP_BY_HOP;
use crate::shutdown::Shutdown;
use crate::token::TokenSigner;

/// How long a sandbox's location is trusted without asking the catalog.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// While a node has not answered, how often the catalog is asked whether it was lost (a
/// stopped node accepts connections and never answers).
const LOST_CHECK: Duration = Duration::from_secs(2);
/// Entries kept at most (a bounded cache; it is cleared when full).
const CACHE_MAX: usize = 100_000;

/// How the forwarded request proves itself to the node.
pub enum Credential {
    /// The client's own (a sandbox or preview token): passed through as it is.
    Client,
    /// The client showed the API key: the node gets a control token for itself instead,
    /// so the API key never reaches a node.
    Control,
}

pub struct Router {
    client: Client<HttpConnector, Body>,
    cache: Mutex<HashMap<String, (Placement, Instant)>>,
    catalog: Catalog,
    signer: TokenSigner,
    shutdown: Shutdown,
}

impl Router {
    pub fn new(catalog: Catalog, signer: TokenSigner, shutdown: Shutdown) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
            catalog,
            signer,
            shutdown,
        }
    }

    /// Where sandbox `id` runs: from the cache, else the catalog.
    pub async fn locate(&self, id: &str) -> Result<Placement, ApiError> {
        if let Some((p, at)) = self.cache_lock().get(id) {
            if at.elapsed() < CACHE_TTL {
                return Ok(p.clone());
            }
        }
        self.locate_fresh(id).await
    }

    async fn locate_fresh(&self, id: &str) -> Result<Placement, ApiError> {
        let placement = self
            .catalog
            .locate(id)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(sandbox_not_found)?;
        // Lost is final but rare: never cached, so a delete of it is seen at once.
        if !placement.lost {
            let mut cache = self.cache_lock();
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(id.to_string(), (placement.clone(), Instant::now()));
        }
        Ok(placement)
    }

    pub fn forget(&self, id: &str) {
        self.cache_lock().remove(id);
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Placement, Instant)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forwards `req` to sandbox `id`'s node. `path_and_query` is what the node is asked
    /// for (the client's own path and query unless the route renames it).
    pub async fn to_sandbox(&self, id: &str, req: Request, credential: Credential) -> Response {
        let placement = match self.locate(id).await {
            Ok(p) if p.lost => return lost().into_response(),
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let forward = self.forward(&placement, req, credential);
        tokio::pin!(forward);
        let response = loop {
            tokio::select! {
                r = &mut forward => break r,
                _ = tokio::time::sleep(LOST_CHECK) => {
                    if let Ok(Some(p)) = self.catalog.locate(id).await {
                        if p.lost {
                            self.forget(id);
                            return lost().into_response();
                        }
                    }
                }
            }
        };
        let stale = match &response {
            Err(_) => true,
            // The node does not know it: deleted meanwhile, or the node is a new epoch.
            Ok(r) => {
                r.status() == StatusCode::NOT_FOUND
                    && r.headers().contains_key(SANDBOX_UNKNOWN_HEADER)
            }
        };
        if !stale {
            return response.unwrap_or_else(IntoResponse::into_response);
        }
        self.forget(id);
        match self.locate_fresh(id).await {
            Ok(p) if p.lost => lost().into_response(),
            Err(e) => e.into_response(),
            Ok(_) => response.unwrap_or_else(IntoResponse::into_response),
        }
    }

    /// Forwards `req` to a node as it is (with `credential`); a node that cannot be reached
    /// is an error, whatever the node answers is the response.
    pub async fn forward(
        &self,
        to: &Placement,
        mut req: Request,
        credential: Credential,
    ) -> Result<Response, ApiError> {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri: Uri = format!("{}{}", to.addr.trim_end_matches('/'), path_and_query)
            .parse()
            .map_err(|_| ApiError::bad_request(code::INVALID_REQUEST, "bad request path"))?;
        let upgrade = req.headers().contains_key(header::UPGRADE);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut forwarded = axum::http::Request::builder()
            .method(parts.method.clone())
            .uri(uri);
        let headers = forwarded.headers_mut().expect("a fresh builder");
        copy_headers(&parts.headers, headers, upgrade);
        if let Credential::Control = credential {
            headers.remove("x-api-key");
            let token = self
                .signer
                .issue_control(&to.node)
                .map_err(|_| ApiError::internal("the control plane cannot sign"))?;
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| ApiError::internal(&e.to_string()))?,
            );
        }
        if let Ok(v) = HeaderValue::from_str(&crate::api::context::current().request_id) {
            headers.insert(HeaderName::from_static("x-request-id"), v);
        }
        let forwarded = forwarded
            .body(body)
            .map_err(|e| ApiError::bad_request(code::INVALID_REQUEST, e.to_string()))?;
        let mut response = self.client.request(forwarded).await.map_err(|e| {
            warn!(node = %to.node, "cannot reach the node: {e}");
            ApiError {
                retry_after: Some(2),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::SERVICE_UNAVAILABLE,
                    format!(
                        "the node of this sandbox ({}) does not answer; try again",
                        to.node
                    ),
                )
            }
        })?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                let shutdown = self.shutdown.clone();
                tokio::spawn(async move {
                    let (client, upstream) = match (client_upgrade.await, upstream_upgrade.await) {
                        (Ok(c), Ok(u)) => (c, u),
                        (c, u) => {
                            debug!("upgrade failed: {:?} {:?}", c.err(), u.err());
                            return;
                        }
                    };
                    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = shutdown.requested() => {}
                    }
                });
            }
        }
        let (mut parts, body) = response.into_parts();
        if parts.status != StatusCode::SWITCHING_PROTOCOLS {
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
        }
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, upgrade: bool) {
    for (name, value) in from {
        let n = name.as_str();
        if n == "host" {
            continue;
        }
        if HOP_BY_HOP.contains(&n) && !(upgrade && (n == "connection" || n == "upgrade")) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

pub fn lost() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        code::SANDBOX_LOST,
        "The node running this sandbox stopped answering and the sandbox is lost; create a new one",
    )
}

pub fn sandbox_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        code::SANDBOX_NOT_FOUND,
        "Sandbox not found",
    )
}

pub fn unavailable(detail: &str) -> ApiError {
    warn!("{detail}");
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::SERVICE_UNAVAILABLE,
            "the cluster catalog is unavailable; try again",
        )
    }
}
