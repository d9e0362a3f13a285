//! `Sandbox`: the exported class, its factories and its control-plane methods.
//!
//! A sandbox is reached two ways: the control plane (`/v1/sandboxes/{id}/...`, API key) for
//! lifecycle, and its agent (`public_host`, bearer token) for running code. The agent token
//! is kept here and refreshed through the control plane when it is close to expiry or when
//! the agent answers 401; a sandbox connected with only a token (a browser handed a session
//! by its backend) uses the token as it is.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_net::http::Method;
use sandlot_protocol as wire;
use tsify::Ts;
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use crate::config::{self, ClientConfig};
use crate::errors::{ErrorKind, NotFoundHint, SdkError};
use crate::http::{signal_of, sleep, Auth, Call, EventStream, LocalBoxFuture};
use crate::types::{
    CallOptions, ConnectOptions, CreateOptions, ListOptions, SandboxInfo, SandboxSession,
    TimeoutInfo, TokenInfo,
};

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

pub(crate) struct Inner {
    pub id: String,
    pub control: ClientConfig,
    pub agent_url: String,
    pub token: RefCell<Option<Token>>,
    /// Whether this handle may call the control plane (lifecycle calls, token refresh). False
    /// for a token-only session given no API key or URL, whose default URL may not even be
    /// the right server: its control-plane calls fail fast with an `AuthenticationError`.
    pub has_control: bool,
    /// A token refresh is on its way (see [`Inner::current_token`]).
    pub refreshing: Cell<bool>,
}

/// How often a call waiting for another call's token refresh looks again.
const REFRESH_POLL_MS: u32 = 20;

/// Marks a refresh as in flight for as long as it lives, however the refresh ends.
struct RefreshInFlight<'a>(&'a Cell<bool>);

impl<'a> RefreshInFlight<'a> {
    fn mark(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        Self(flag)
    }
}

impl Drop for RefreshInFlight<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// A running sandbox. Get one with `Sandbox.create`, `Sandbox.connect`; end it with `kill()`
/// (or `await using`).
#[wasm_bindgen]
pub struct Sandbox {
    pub(crate) inner: Rc<Inner>,
}

/// Turns a failed `Ts` conversion of an argument into a `ValidationError`.
pub(crate) fn arg<T: tsify::Tsify + serde::de::DeserializeOwned + Default>(
    value: Option<Ts<T>>,
    name: &str,
) -> Result<T, SdkError> {
    match value {
        None => Ok(T::default()),
        Some(v) if v.js_value().is_null() || v.js_value().is_undefined() => Ok(T::default()),
        Some(v) => T::from_js(v.js_value()).map_err(|e| invalid(name, e)),
    }
}

/// A `ValidationError` for an argument serde-wasm-bindgen could not read.
fn invalid(name: &str, e: serde_wasm_bindgen::Error) -> SdkError {
    let text = e.to_string();
    let text = text.strip_prefix("Error: ").unwrap_or(&text);
    SdkError::invalid_argument(format!("invalid {name}: {text}"))
}

/// Converts a result for JS; a failure here means a value JS cannot represent.
pub(crate) fn out<T: tsify::Tsify + serde::Serialize>(value: &T) -> Result<Ts<T>, SdkError> {
    Ts::from_rust(value).map_err(|e| SdkError::invalid_response(e.to_string()))
}

pub(crate) fn encode(segment: &str) -> String {
    String::from(js_sys::encode_uri_component(segment))
}

/// Options, then the environment, then the local default (see `config`).
fn client_config(
    api_key: Option<String>,
    base_url: Option<String>,
) -> Result<ClientConfig, SdkError> {
    config::resolve(api_key, base_url, config::env_var).map_err(SdkError::invalid_argument)
}

fn control_auth(cfg: &ClientConfig) -> Auth {
    cfg.api_key.clone().map_or(Auth::None, Auth::ApiKey)
}

impl Inner {
    fn sandbox_url(&self, suffix: &str) -> String {
        format!(
            "{}/v1/sandboxes/{}{suffix}",
            self.control.base_url,
            encode(&self.id)
        )
    }

    /// A control-plane call about this sandbox (404 means the sandbox is gone).
    pub fn control_call(&self, method: Method, suffix: &str) -> Result<Call, SdkError> {
        if !self.has_control {
            return Err(SdkError::new(
                ErrorKind::Authentication,
                "this sandbox was connected with a session token only; pass apiKey (and baseURL) \
                 to Sandbox.connect for control-plane calls",
            )
            .with_code("NO_API_KEY"));
        }
        let auth = control_auth(&self.control);
        Ok(Call::new(method, self.sandbox_url(suffix), auth).not_found(NotFoundHint::Sandbox))
    }

    pub async fn refresh_token(&self, signal: Option<&AbortSignal>) -> Result<Token, SdkError> {
        let _in_flight = RefreshInFlight::mark(&self.refreshing);
        let reply: wire::TokenReply = self
            .control_call(Method::POST, "/token/refresh")?
            .fetch(signal)
            .await?;
        let token = Token::new(reply.auth_token, Some(reply.token_expires_at));
        *self.token.borrow_mut() = Some(token.clone());
        Ok(token)
    }

    /// The token to send now, refreshed first when missing or close to expiry.
    async fn current_token(
        &self,
        signal: Option<&AbortSignal>,
    ) -> Result<Option<String>, SdkError> {
        // Calls that find the token stale at the same time share one refresh: the others
        // wait for it and then use its token.
        while self.refreshing.get() {
            sleep(REFRESH_POLL_MS, signal).await?;
        }
        let cached = self.token.borrow().clone();
        match cached {
            Some(t) if !(self.has_control && t.needs_refresh(js_sys::Date::now())) => {
                Ok(Some(t.value))
            }
            None if !self.has_control => Ok(None),
            _ => Ok(Some(self.refresh_token(signal).await?.value)),
        }
    }

    /// An agent call to `path`; [`Inner::send_agent`] adds the token.
    pub fn agent(&self, method: Method, path: &str) -> Call {
        Call::new(method, format!("{}{path}", self.agent_url), Auth::None)
    }

    /// Sends an agent call with the bearer token; on a 401 refreshes the token once and
    /// sends it again. Boxed so that one copy of this state machine serves every method.
    pub fn send_agent<'a>(
        &'a self,
        mut call: Call,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<JsValue, SdkError>> {
        Box::pin(async move {
            let token = self.current_token(signal).await?;
            call.auth = token.map_or(Auth::None, Auth::Bearer);
            match call.send(signal).await {
                Err(e) if e.status == Some(401) && self.has_control => {
                    call.auth = Auth::Bearer(self.refresh_token(signal).await?.value);
                    call.send(signal).await
                }
                other => other,
            }
        })
    }
}

impl Inner {
    /// Opens an agent event stream with the bearer token; like [`Inner::send_agent`], a 401
    /// refreshes the token once and tries again.
    pub fn open_agent_stream<'a>(
        &'a self,
        mut call: Call,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<EventStream, SdkError>> {
        Box::pin(async move {
            let token = self.current_token(signal).await?;
            call.auth = token.map_or(Auth::None, Auth::Bearer);
            match call.open_stream(signal).await {
                Err(e) if e.status == Some(401) && self.has_control => {
                    call.auth = Auth::Bearer(self.refresh_token(signal).await?.value);
                    call.open_stream(signal).await
                }
                other => other,
            }
        })
    }
}

impl Sandbox {
    fn from_wire(reply: wire::Sandbox, control: ClientConfig, has_control: bool) -> Self {
        let agent_url = reply
            .public_host
            .or(reply.direct_url)
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| {
                format!("{}/sandboxes/{}/agent", control.base_url, encode(&reply.id))
            });
        let token = reply
            .auth_token
            .map(|t| Token::new(t, reply.token_expires_at));
        Self {
            inner: Rc::new(Inner {
                id: reply.id,
                control,
                agent_url,
                token: RefCell::new(token),
                has_control,
                refreshing: Cell::new(false),
            }),
        }
    }

    async fn connect_by_id(id: String, opts: ConnectOptions) -> Result<Sandbox, SdkError> {
        let signal = signal_of(&opts.signal)?;
        let control = client_config(opts.api_key, opts.base_url)?;
        let url = format!("{}/v1/sandboxes/{}", control.base_url, encode(&id));
        let info: wire::Sandbox = Call::new(Method::GET, url, control_auth(&control))
            .not_found(NotFoundHint::Sandbox)
            .fetch(signal.as_ref())
            .await?;
        let status = info.status;
        let sandbox = Sandbox::from_wire(info, control, true);
        match status {
            wire::SandboxStatus::Running | wire::SandboxStatus::Creating => {}
            wire::SandboxStatus::Paused => {
                sandbox
                    .inner
                    .control_call(Method::POST, "/resume")?
                    .send(signal.as_ref())
                    .await?;
            }
            other => {
                return Err(SdkError::new(
                    ErrorKind::Sandlot,
                    format!(
                        "sandbox {id} is {} and cannot be connected to",
                        other.as_str()
                    ),
                )
                .with_code("SANDBOX_NOT_RUNNING"))
            }
        }
        sandbox.inner.refresh_token(signal.as_ref()).await?;
        Ok(sandbox)
    }

    fn connect_with_session(
        session: SandboxSession,
        opts: ConnectOptions,
    ) -> Result<Sandbox, SdkError> {
        signal_of(&opts.signal)?;
        if session.sandbox_id.is_empty() || session.token.is_empty() {
            return Err(SdkError::invalid_argument(
                "sandboxId and token must not be empty",
            ));
        }
        let agent_url = config::normalize_base_url(&session.agent_url).map_err(|_| {
            SdkError::invalid_argument("agentUrl must be an absolute http:// or https:// URL")
        })?;
        // The control plane is only used when the caller pointed us at one (options or a key
        // in the environment); a browser handed a session has neither.
        let explicit = opts.api_key.is_some() || opts.base_url.is_some();
        let control = client_config(opts.api_key, opts.base_url)?;
        let has_control = explicit || control.api_key.is_some();
        Ok(Sandbox {
            inner: Rc::new(Inner {
                id: session.sandbox_id,
                control,
                agent_url,
                token: RefCell::new(Some(Token::new(session.token, session.token_expires_at))),
                has_control,
                refreshing: Cell::new(false),
            }),
        })
    }
}

#[wasm_bindgen]
impl Sandbox {
    /// Creates a sandbox and resolves once the server has accepted it.
    #[wasm_bindgen(js_name = create)]
    pub async fn create(options: Option<Ts<CreateOptions>>) -> Result<Sandbox, JsValue> {
        let opts = arg(options, "create options")?;
        let signal = signal_of(&opts.signal)?;
        let control = client_config(opts.api_key.clone(), opts.base_url.clone())?;
        let url = format!("{}/v1/sandboxes", control.base_url);
        let reply: wire::Sandbox = Call::new(Method::POST, url, control_auth(&control))
            .json(&opts.to_wire())?
            .timeout_ms(config::CREATE_HTTP_TIMEOUT_MS)
            .fetch(signal.as_ref())
            .await?;
        Ok(Sandbox::from_wire(reply, control, true))
    }

    /// Attaches to an existing sandbox, either by id (through the control plane, which needs
    /// the API key; a paused sandbox is resumed) or with a `SandboxSession`
    /// `{ sandboxId, token, agentUrl }`, which needs no key and makes no request.
    #[wasm_bindgen(js_name = connect)]
    pub async fn connect(
        #[wasm_bindgen(unchecked_param_type = "string | SandboxSession")] target: JsValue,
        options: Option<Ts<ConnectOptions>>,
    ) -> Result<Sandbox, JsValue> {
        let opts = arg(options, "connect options")?;
        if let Some(id) = target.as_string() {
            if id.is_empty() {
                return Err(SdkError::invalid_argument("sandboxId must not be empty").into());
            }
            return Ok(Sandbox::connect_by_id(id, opts).await?);
        }
        if !target.is_object() {
            return Err(SdkError::invalid_argument(
                "connect takes a sandbox id or { sandboxId, token, agentUrl }",
            )
            .into());
        }
        let session: SandboxSession =
            serde_wasm_bindgen::from_value(target).map_err(|e| invalid("session", e))?;
        Ok(Sandbox::connect_with_session(session, opts)?)
    }

    /// Lists the sandboxes the key can see (all pages unless `limit` is given).
    #[wasm_bindgen(js_name = list)]
    pub async fn list(options: Option<Ts<ListOptions>>) -> Result<Vec<Ts<SandboxInfo>>, JsValue> {
        let opts = arg(options, "list options")?;
        let signal = signal_of(&opts.signal)?;
        let control = client_config(opts.api_key, opts.base_url)?;
        let page_size = opts.limit.unwrap_or(100);
        let mut cursor: Option<String> = None;
        let mut all = Vec::new();
        loop {
            let mut url = format!("{}/v1/sandboxes?limit={page_size}", control.base_url);
            if let Some(status) = opts.status {
                url.push_str("&status=");
                url.push_str(
                    &serde_wasm_bindgen::to_value(&status)?
                        .as_string()
                        .unwrap_or_default(),
                );
            }
            if let Some(c) = &cursor {
                url.push_str("&cursor=");
                url.push_str(&encode(c));
            }
            let page: wire::ListEnvelope<wire::Sandbox> =
                Call::new(Method::GET, url, control_auth(&control))
                    .fetch(signal.as_ref())
                    .await?;
            for s in page.data {
                all.push(out(&SandboxInfo::from(s))?);
            }
            cursor = page.next_cursor.filter(|_| page.has_more);
            if opts.limit.is_some() || cursor.is_none() {
                return Ok(all);
            }
        }
    }

    /// The sandbox id.
    #[wasm_bindgen(getter, js_name = sandboxId)]
    pub fn sandbox_id(&self) -> String {
        self.inner.id.clone()
    }

    /// The agent base URL (`public_host`).
    #[wasm_bindgen(getter, js_name = agentUrl)]
    pub fn agent_url(&self) -> String {
        self.inner.agent_url.clone()
    }

    /// What a client without the API key needs to drive this sandbox:
    /// pass it to `Sandbox.connect(session)`. Contains the agent token.
    #[wasm_bindgen(js_name = getSession)]
    pub fn get_session(&self) -> Result<Ts<SandboxSession>, JsValue> {
        let token = self.inner.token.borrow().clone();
        let token = token.ok_or_else(|| {
            SdkError::new(ErrorKind::Authentication, "this sandbox has no agent token")
                .with_code("NO_TOKEN")
        })?;
        Ok(out(&SandboxSession {
            sandbox_id: self.inner.id.clone(),
            token: token.value,
            agent_url: self.inner.agent_url.clone(),
            token_expires_at: token.expires_at,
        })?)
    }

    /// Current state of the sandbox, from the control plane.
    #[wasm_bindgen(js_name = getInfo)]
    pub async fn get_info(
        &self,
        options: Option<Ts<CallOptions>>,
    ) -> Result<Ts<SandboxInfo>, JsValue> {
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        let reply: wire::Sandbox = self
            .inner
            .control_call(Method::GET, "")?
            .fetch(signal.as_ref())
            .await?;
        Ok(out(&SandboxInfo::from(reply))?)
    }

    /// Kills the sandbox and every process in it.
    #[wasm_bindgen(js_name = kill)]
    pub async fn kill(&self, options: Option<Ts<CallOptions>>) -> Result<(), JsValue> {
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        self.inner
            .control_call(Method::DELETE, "")?
            .send(signal.as_ref())
            .await?;
        Ok(())
    }

    /// Pauses the sandbox (its agent stops answering until `resume()`).
    #[wasm_bindgen(js_name = pause)]
    pub async fn pause(&self, options: Option<Ts<CallOptions>>) -> Result<(), JsValue> {
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        self.inner
            .control_call(Method::POST, "/pause")?
            .send(signal.as_ref())
            .await?;
        Ok(())
    }

    /// Resumes a paused sandbox.
    #[wasm_bindgen(js_name = resume)]
    pub async fn resume(&self, options: Option<Ts<CallOptions>>) -> Result<(), JsValue> {
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        self.inner
            .control_call(Method::POST, "/resume")?
            .send(signal.as_ref())
            .await?;
        Ok(())
    }

    /// Kills the sandbox `seconds` from now (replacing any earlier timeout).
    #[wasm_bindgen(js_name = setTimeout)]
    pub async fn set_timeout(
        &self,
        seconds: f64,
        options: Option<Ts<CallOptions>>,
    ) -> Result<Ts<TimeoutInfo>, JsValue> {
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        if !seconds.is_finite() || seconds.fract() != 0.0 || seconds <= 0.0 {
            return Err(SdkError::invalid_argument("seconds must be a positive integer").into());
        }
        let body = wire::SetTimeoutRequest {
            timeout_seconds: seconds as i64,
        };
        let reply: wire::SetTimeoutReply = self
            .inner
            .control_call(Method::PUT, "/timeout")?
            .json(&body)?
            .fetch(signal.as_ref())
            .await?;
        Ok(out(&TimeoutInfo::from(reply))?)
    }

    /// Gets a new agent token now (the SDK also does this by itself when needed).
    #[wasm_bindgen(js_name = refreshToken)]
    pub async fn refresh_token(
        &self,
        options: Option<Ts<CallOptions>>,
    ) -> Result<Ts<TokenInfo>, JsValue> {
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        let token = self.inner.refresh_token(signal.as_ref()).await?;
        Ok(out(&TokenInfo {
            token: token.value,
            expires_at: token.expires_at.unwrap_or_default(),
        })?)
    }

    /// `await using sandbox = await Sandbox.create()` kills the sandbox at scope end; a
    /// sandbox that is already gone is fine. A token-only session does nothing here: the
    /// backend that created the sandbox owns its lifetime.
    #[wasm_bindgen(js_name = "[Symbol.asyncDispose]")]
    pub async fn async_dispose(&self) -> Result<(), JsValue> {
        if !self.inner.has_control {
            return Ok(());
        }
        match self
            .inner
            .control_call(Method::DELETE, "")?
            .send(None)
            .await
        {
            Err(e) if matches!(e.kind, ErrorKind::SandboxNotFound | ErrorKind::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
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

    #[wasm_bindgen_test]
    fn session_connect_validates_without_any_request() {
        let session = SandboxSession {
            sandbox_id: "sbx_1".into(),
            token: "tok".into(),
            agent_url: "http://127.0.0.1:1/sandboxes/sbx_1/agent/".into(),
            token_expires_at: None,
        };
        let s = Sandbox::connect_with_session(session.clone(), ConnectOptions::default()).unwrap();
        assert_eq!(
            s.inner.agent_url,
            "http://127.0.0.1:1/sandboxes/sbx_1/agent"
        );
        assert!(!s.inner.has_control);
        let bad = SandboxSession {
            agent_url: "sandboxes/x".into(),
            ..session
        };
        let e = Sandbox::connect_with_session(bad, ConnectOptions::default())
            .err()
            .unwrap();
        assert_eq!(e.code, "INVALID_ARGUMENT");
    }

    #[wasm_bindgen_test]
    fn agent_url_falls_back_to_the_sandlot_layout() {
        let reply: wire::Sandbox = serde_wasm_bindgen::from_value(
            js_sys::JSON::parse(r#"{"id":"a b","status":"running"}"#).unwrap(),
        )
        .unwrap();
        let cfg = ClientConfig {
            base_url: "http://h:1".into(),
            api_key: None,
        };
        let s = Sandbox::from_wire(reply, cfg, true);
        assert_eq!(s.inner.agent_url, "http://h:1/sandboxes/a%20b/agent");
        assert!(s.inner.token.borrow().is_none());
    }
}
