//! Calls to a sandbox's agent: the bearer token, its refresh, and the one path every agent
//! call takes.
//!
//! The token is refreshed through the control plane when less than an hour is left, or once
//! when the agent answers 401. Calls that need a new token while a refresh is on its way
//! share that refresh: it runs on its own (bounded by its HTTP budget, not by any caller's
//! signal), and each caller waits for it, or stops waiting when its own signal fires, without
//! cancelling it for the others. A sandbox connected with only a token (no control plane)
//! uses the token as it is.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_net::http::Method;
use sandlot_protocol as wire;
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use crate::config;
use crate::errors::SdkError;
use crate::http::{
    event_stream, not_aborted, until, AbortGuard, Auth, Call, EventStream, LocalBoxFuture,
};
use crate::sandbox::Inner;

/// The agent token and when it stops working.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires_at: Option<String>,
    /// `expires_at` in ms since the epoch, when it parsed.
    pub expires_at_ms: Option<f64>,
}

impl Token {
    pub fn new(value: String, expires_at: Option<String>) -> Self {
        let expires_at_ms = expires_at
            .as_deref()
            .map(js_sys::Date::parse)
            .filter(|ms| !ms.is_nan());
        Self {
            value,
            expires_at,
            expires_at_ms,
        }
    }

    /// HopX policy: refresh when less than an hour is left.
    pub fn needs_refresh(&self, now_ms: f64) -> bool {
        self.expires_at_ms
            .is_some_and(|at| at - now_ms < config::TOKEN_REFRESH_MARGIN_MS)
    }
}

/// The token refresh on its way: `done` settles once `result` is in.
pub(crate) struct PendingRefresh {
    done: js_sys::Promise,
    result: Rc<RefCell<Option<Result<Token, SdkError>>>>,
}

/// How an agent call goes out: a request, or opening an event stream.
type Send<T> =
    for<'c> fn(&'c Call, Option<&'c AbortSignal>) -> LocalBoxFuture<'c, Result<T, SdkError>>;

impl Inner {
    /// A new agent token: the refresh on its way if there is one, else a new one.
    pub async fn refresh_token(
        self: &Rc<Self>,
        signal: Option<&AbortSignal>,
    ) -> Result<Token, SdkError> {
        let pending = self.refresh.borrow().clone();
        let pending = match pending {
            Some(pending) => pending,
            None => {
                not_aborted(signal)?;
                self.start_refresh()
            }
        };
        until(&pending.done, signal).await?;
        let result = pending.result.borrow().clone();
        result.expect("a refresh's result is in before it is done")
    }

    /// Starts a refresh that every caller can wait for. It is polled from the next
    /// microtask, so it is registered here before it can finish (and unregister itself).
    fn start_refresh(self: &Rc<Self>) -> Rc<PendingRefresh> {
        let result = Rc::new(RefCell::new(None));
        let (inner, slot) = (self.clone(), result.clone());
        let done = wasm_bindgen_futures::future_to_promise(async move {
            let outcome = inner.request_token().await;
            if let Ok(token) = &outcome {
                *inner.token.borrow_mut() = Some(token.clone());
            }
            *slot.borrow_mut() = Some(outcome);
            inner.refresh.borrow_mut().take();
            Ok(JsValue::UNDEFINED)
        });
        let pending = Rc::new(PendingRefresh { done, result });
        *self.refresh.borrow_mut() = Some(pending.clone());
        pending
    }

    async fn request_token(&self) -> Result<Token, SdkError> {
        let reply: wire::TokenReply = self
            .control_call(Method::POST, "/token/refresh")?
            .fetch(None)
            .await?;
        Ok(Token::new(reply.auth_token, Some(reply.token_expires_at)))
    }

    /// The token to send now, refreshed first when missing or close to expiry.
    async fn current_token(
        self: &Rc<Self>,
        signal: Option<&AbortSignal>,
    ) -> Result<Option<String>, SdkError> {
        let cached = self.token.borrow().clone();
        match cached {
            Some(t) if !(self.has_control && t.needs_refresh(js_sys::Date::now())) => {
                Ok(Some(t.value))
            }
            None if !self.has_control => Ok(None),
            _ => Ok(Some(self.refresh_token(signal).await?.value)),
        }
    }

    /// An agent call to `path`; the token is added when it is sent.
    pub fn agent(&self, method: Method, path: &str) -> Call {
        Call::new(method, format!("{}{path}", self.agent_url), Auth::None)
    }

    /// Sends an agent call; resolves with the parsed JSON reply (`decode` reads it).
    pub fn send_agent<'a>(
        self: &'a Rc<Self>,
        call: Call,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<JsValue, SdkError>> {
        self.authorized(call, signal, Call::send)
    }

    /// Opens an agent event stream (never retried: the stream layer resumes by event id).
    pub fn open_agent_stream<'a>(
        self: &'a Rc<Self>,
        call: Call,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<EventStream, SdkError>> {
        Box::pin(async move {
            let url = call.url.clone();
            let (response, guard) = self.open_agent(call, signal, "text/event-stream").await?;
            event_stream(response, guard, &url)
        })
    }

    /// Sends an agent call and resolves, once it has answered 2xx, with the response (body
    /// unread) and the guard that keeps the caller's signal wired to the body.
    pub async fn open_agent(
        self: &Rc<Self>,
        call: Call,
        signal: Option<&AbortSignal>,
        accept: &'static str,
    ) -> Result<(web_sys::Response, AbortGuard), SdkError> {
        let mut call = call;
        call.accept = accept;
        self.authorized(call, signal, Call::open).await
    }

    /// Sends `call` with the bearer token. A 401 gets one more try with a newer token: the
    /// one a refresh brought meanwhile, else a fresh one. Boxed, so that one copy of this
    /// state machine serves every method.
    fn authorized<'a, T: 'a>(
        self: &'a Rc<Self>,
        mut call: Call,
        signal: Option<&'a AbortSignal>,
        send: Send<T>,
    ) -> LocalBoxFuture<'a, Result<T, SdkError>> {
        Box::pin(async move {
            let sent = self.current_token(signal).await?;
            call.auth = sent.clone().map_or(Auth::None, Auth::Bearer);
            match send(&call, signal).await {
                Err(e) if e.status == Some(401) && self.has_control => {
                    let now = self.token.borrow().as_ref().map(|t| t.value.clone());
                    let newer = match now {
                        Some(now) if Some(&now) != sent.as_ref() => now,
                        _ => self.refresh_token(signal).await?.value,
                    };
                    call.auth = Auth::Bearer(newer);
                    send(&call, signal).await
                }
                other => other,
            }
        })
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn token_needs_refresh_only_within_the_last_hour() {
        let t = Token::new("t".into(), Some("2026-01-01T12:00:00Z".into()));
        let at = t.expires_at_ms.unwrap();
        assert!(!t.needs_refresh(at - 2.0 * 3_600_000.0));
        assert!(t.needs_refresh(at - 30.0 * 60_000.0));
        assert!(t.needs_refresh(at + 1.0));
        let unknown = Token::new("t".into(), Some("not a date".into()));
        assert!(
            !unknown.needs_refresh(0.0),
            "an unparsable expiry is not refreshed ahead"
        );
    }
}
