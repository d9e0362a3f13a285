//! Per-request context: the request id and which plane the request is on, set by middleware
//! so error bodies anywhere can carry them.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Control,
    Agent,
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub plane: Plane,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The current request's context (a fresh one outside a request).
pub fn current() -> RequestContext {
    CONTEXT
        .try_with(|c| c.clone())
        .unwrap_or_else(|_| RequestContext {
            request_id: crate::ids::request_id(),
            plane: Plane::Control,
        })
}

/// Runs `fut` (a task spawned for a request) inside the request's context.
pub async fn scope<F: std::future::Future>(ctx: RequestContext, fut: F) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}

/// Gives every request an id (the client's `X-Request-ID` if it sent one) and echoes it.
pub async fn middleware(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(crate::ids::request_id);
    let path = req.uri().path();
    let plane = if path.starts_with("/sandboxes/") || path.starts_with("/execute") {
        Plane::Agent
    } else {
        Plane::Control
    };
    let ctx = RequestContext {
        request_id: request_id.clone(),
        plane,
    };
    let mut resp = CONTEXT.scope(ctx, next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
