//! Authentication: the API key on the control plane, per-sandbox tokens on the agent.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sandlot_protocol::code;
use std::collections::HashMap;

use super::error::ApiError;
use super::AppState;
use crate::node::SandboxInfo;
use crate::token::TokenError;

/// A header's value as text, trimmed.
pub(crate) fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = header_value(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    header_value(&parts.headers, name)
}

fn bearer(parts: &Parts) -> Option<&str> {
    bearer_token(&parts.headers)
}

/// Constant-time string equality, so a key cannot be guessed byte by byte from timings.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a cluster node's request comes from the control plane: a control token for this
/// node, which on a node stands in for the API key (the API key never reaches a node).
pub fn control_call(parts: &Parts, state: &AppState) -> bool {
    control_call_headers(&parts.headers, state)
}

pub fn control_call_headers(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(node) = state.cluster_node.as_deref() else {
        return false;
    };
    bearer_token(headers).is_some_and(|t| state.signer.verify_control(t, node).is_ok())
}

/// Proof that the request carries the API key (or that the server runs in local mode).
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.cluster_node.is_some() {
            return match control_call(parts, state) {
                true => Ok(ApiKey),
                false => Err(ApiError::unauthorized(
                    code::INVALID_TOKEN,
                    "a cluster node's control routes answer the control plane only",
                )),
            };
        }
        let Some(expected) = state.cfg.api_key.as_deref() else {
            return Ok(ApiKey);
        };
        let presented = header(parts, "x-api-key").or_else(|| bearer(parts));
        match presented {
            None => Err(ApiError::unauthorized(
                code::AUTHENTICATION_REQUIRED,
                "Missing API key: send it as X-API-Key or Authorization: Bearer",
            )),
            Some(key) if same(key, expected) => Ok(ApiKey),
            Some(_) => Err(ApiError::unauthorized(
                code::INVALID_TOKEN,
                "Invalid API key",
            )),
        }
    }
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Expired => ApiError::unauthorized(
            code::TOKEN_EXPIRED,
            "Sandbox token expired; refresh it with POST /v1/sandboxes/{id}/token/refresh",
        ),
        TokenError::WrongSandbox => {
            ApiError::unauthorized(code::INVALID_TOKEN, "This token belongs to another sandbox")
        }
        TokenError::Malformed | TokenError::BadSignature | TokenError::CannotSign => {
            ApiError::unauthorized(code::INVALID_TOKEN, "Invalid sandbox token")
        }
    }
}

fn rotated() -> ApiError {
    ApiError::unauthorized(
        code::INVALID_TOKEN,
        "This sandbox token was replaced by a rotation; use the newest one",
    )
}

/// The sandbox named by the request's token alone. HopX's Python SDK opens WebSockets at the
/// host's root (`ws://host/execute/stream`), dropping `public_host`'s path; the token says
/// which sandbox is meant.
pub struct TokenSandbox(pub SandboxInfo);

impl FromRequestParts<AppState> for TokenSandbox {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(
                code::AUTHENTICATION_REQUIRED,
                "Missing sandbox token: send Authorization: Bearer <auth_token>",
            )
        })?;
        let verified = state.signer.sandbox_of(token).map_err(token_error)?;
        let sandbox = state.node.sandbox(&verified.sandbox)?;
        if !sandbox.accepts_token(verified.generation) {
            return Err(rotated());
        }
        Ok(TokenSandbox(sandbox))
    }
}

/// The sandbox an agent request addresses, after its token (or the API key) was checked.
pub struct AgentSandbox {
    pub sandbox: SandboxInfo,
    pub params: HashMap<String, String>,
}

impl FromRequestParts<AppState> for AgentSandbox {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(code::INVALID_REQUEST, e.to_string()))?;
        let id = params.get("id").cloned().unwrap_or_default();

        let mut generation = None;
        let api_key_ok = control_call(parts, state)
            || (state.cluster_node.is_none()
                && matches!(
                    (state.cfg.api_key.as_deref(), header(parts, "x-api-key")),
                    (Some(expected), Some(key)) if same(key, expected)
                ));
        if !api_key_ok {
            let Some(token) = bearer(parts) else {
                return Err(ApiError::unauthorized(
                    code::AUTHENTICATION_REQUIRED,
                    "Missing sandbox token: send Authorization: Bearer <auth_token>",
                ));
            };
            // A valid API key as bearer also opens the agent (the key owns every sandbox).
            let key_as_bearer = state.cluster_node.is_none()
                && state.cfg.api_key.as_deref().is_some_and(|k| same(token, k));
            if !key_as_bearer {
                generation = Some(state.signer.verify(token, &id).map_err(token_error)?);
            }
        }
        let sandbox = state.node.sandbox(&id)?;
        if generation.is_some_and(|g| !sandbox.accepts_token(g)) {
            return Err(rotated());
        }
        Ok(AgentSandbox { sandbox, params })
    }
}
