//! `Sandbox`: the exported class, its factories and its control-plane methods.
//!
//! A sandbox is reached two ways: the control plane (`/v1/sandboxes/{id}/...`, API key) for
//! lifecycle, and its agent (`public_host`, bearer token) for running code (`agent` holds the
//! token and its refresh; `process` and `stream` the agent's methods).

use std::cell::RefCell;
use std::rc::Rc;

use gloo_net::http::Method;
use sandlot_protocol as wire;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::agent::{PendingRefresh, Token};
use crate::args::{arg, out, required};
use crate::config::{self, ClientConfig};
use crate::errors::{ErrorKind, NotFoundHint, SdkError};
use crate::http::{encode, signal_of, to_js, Auth, Call};
use crate::types::{
    CallOptions, ConnectOptions, CreateOptions, ListOptions, SandboxInfo, SandboxSession,
    TimeoutInfo, TokenInfo,
};

pub(crate) struct Inner {
    pub id: String,
    pub control: ClientConfig,
    pub agent_url: String,
    pub token: RefCell<Option<Token>>,
    /// Whether this handle may call the control plane (lifecycle calls, token refresh). False
    /// for a token-only session given no API key or URL, whose default URL may not even be
    /// the right server: its control-plane calls fail fast with an `AuthenticationError`.
    pub has_control: bool,
    /// The token refresh on its way, shared by every call that needs it (see `agent`).
    pub refresh: RefCell<Option<Rc<PendingRefresh>>>,
}

/// A running sandbox. Get one with `Sandbox.create`, `Sandbox.connect`; end it with `kill()`
/// (or `await using`).
#[wasm_bindgen]
pub struct Sandbox {
    pub(crate) inner: Rc<Inner>,
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
    fn new(
        id: String,
        control: ClientConfig,
        agent_url: String,
        token: Option<Token>,
        has_control: bool,
    ) -> Rc<Self> {
        Rc::new(Self {
            id,
            control,
            agent_url,
            token: RefCell::new(token),
            has_control,
            refresh: RefCell::new(None),
        })
    }

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
            inner: Inner::new(reply.id, control, agent_url, token, has_control),
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
        let token = Token::new(session.token, session.token_expires_at);
        Ok(Sandbox {
            inner: Inner::new(
                session.sandbox_id,
                control,
                agent_url,
                Some(token),
                has_control,
            ),
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
        let mut body = to_js(&opts.to_wire())?;
        if !opts.network.is_undefined() {
            let _ = js_sys::Reflect::set(&body, &JsValue::from_str("network"), &opts.network);
        }
        body = js_sys::JSON::stringify(&body)
            .map(Into::into)
            .unwrap_or_default();
        let mut call = Call::new(Method::POST, url, control_auth(&control));
        call.body = body.as_string();
        let reply: wire::Sandbox = call
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
        let session: SandboxSession = required(&target, "session")?;
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

    /// Kills the sandbox `seconds` from now (replacing an earlier timeout).
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
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::SandboxNotFound | ErrorKind::SandboxLost | ErrorKind::NotFound
                ) =>
            {
                Ok(())
            }
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
