//! The agent calls the JS façade builds `sandbox.files`, `sandbox.terminal`, `getMetrics` and
//! `listSystemProcesses` on.
//!
//! Those APIs are mostly plumbing: a route, a query, a body. Giving each its own exported
//! method, options struct and result struct would cost a few KB of wasm apiece (serde code
//! per type), so the façade shapes the arguments and names the results, and the wasm keeps
//! what must be right once for every call: the token and its refresh, time budgets, the
//! caller's signal, retries of idempotent calls, typed errors, and event streams. The wire
//! shapes stay those of `sandlot_protocol` (`files`, `terminal`, `observe`); the façade's
//! declarations (`surface.d.ts`) name their camelCase forms.

use gloo_net::http::Method;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::errors::SdkError;
use crate::http::signal_of;
use crate::sandbox::Sandbox;
use crate::stream::EventFeed;

/// Default budget of a transfer (upload or download) until the server has answered.
const TRANSFER_TIMEOUT_MS: u32 = 600_000;

/// How `agentFetch` hands the reply back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The parsed JSON body.
    Json,
    /// The body's bytes (`Uint8Array`).
    Bytes,
    /// The body itself (a web `ReadableStream` of `Uint8Array`).
    Stream,
    /// An event stream, as an `EventFeed`: a terminal's output (`resumable`: numbered
    /// events, resumed after a drop from `since`, ending with `exit`) or a file watch.
    Feed,
}

fn get(options: &JsValue, key: &str) -> JsValue {
    if options.is_object() {
        js_sys::Reflect::get(options, &JsValue::from_str(key)).unwrap_or_default()
    } else {
        JsValue::UNDEFINED
    }
}

fn method_of(name: &str) -> Result<Method, SdkError> {
    Ok(match name {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        _ => return Err(SdkError::invalid_argument(format!("unknown method {name}"))),
    })
}

#[wasm_bindgen]
impl Sandbox {
    /// One agent call, for the façade (not public API). `options`: `control` (a control-plane
    /// call about this sandbox instead, JSON only), `json` (a body sent as
    /// JSON), `body` (one sent as it is: `FormData`, `Blob`, bytes, a `ReadableStream`) with
    /// `contentType`, `read` (`json`, `bytes`, `stream`, or `feed` with `resumable` and
    /// `since`), `timeout` (ms), `idempotent`, `signal`.
    #[wasm_bindgen(js_name = agentFetch, skip_typescript)]
    pub async fn agent_fetch(
        &self,
        method: String,
        path: String,
        options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let signal = signal_of(&get(&options, "signal"))?;
        let read = match get(&options, "read").as_string().as_deref() {
            None | Some("json") => Read::Json,
            Some("bytes") => Read::Bytes,
            Some("stream") => Read::Stream,
            Some("feed") => Read::Feed,
            Some(other) => {
                return Err(SdkError::invalid_argument(format!("unknown read mode {other}")).into())
            }
        };
        if read == Read::Feed {
            // One exported entry point for all of these: each costs its own future glue.
            let resumable = get(&options, "resumable").is_truthy();
            let since = get(&options, "since").as_f64().map(|n| n as u64);
            let feed = EventFeed::open(self.inner.clone(), path, resumable, since, signal).await?;
            return Ok(feed.into());
        }
        // `control`: a control-plane call about this sandbox (`/v1/sandboxes/{id}{path}`, with
        // the API key) instead of an agent call (with the sandbox token).
        let control = get(&options, "control").is_truthy();
        let mut call = if control {
            self.inner.control_call(method_of(&method)?, &path)?
        } else {
            self.inner.agent(method_of(&method)?, &path)
        };
        let json = get(&options, "json");
        if !json.is_undefined() {
            call.body = js_sys::JSON::stringify(&json).ok().map(String::from);
        }
        let body = get(&options, "body");
        if !body.is_undefined() {
            call.raw_body = Some((body, get(&options, "contentType").as_string()));
        }
        let transfer = read != Read::Json || call.raw_body.is_some();
        let timeout = get(&options, "timeout").as_f64().filter(|ms| *ms > 0.0);
        if let Some(ms) = timeout {
            call.timeout_ms = ms.min(f64::from(u32::MAX)) as u32;
        } else if transfer {
            call.timeout_ms = TRANSFER_TIMEOUT_MS;
        }
        let idempotent = get(&options, "idempotent");
        if let Some(yes) = idempotent.as_bool() {
            call.idempotent = yes;
        }
        if read == Read::Json {
            if control {
                return Ok(call.send(signal.as_ref()).await?);
            }
            return Ok(self.inner.send_agent(call, signal.as_ref()).await?);
        }
        let url = call.url.clone();
        let (response, guard) = self.inner.open_agent(call, signal.as_ref(), "*/*").await?;
        if read == Read::Bytes {
            let bytes = response
                .array_buffer()
                .map_err(|e| guard.js_error(&e, &url))?;
            let bytes = JsFuture::from(bytes)
                .await
                .map_err(|e| guard.js_error(&e, &url))?;
            return Ok(js_sys::Uint8Array::new(&bytes).into());
        }
        let body: JsValue = response.body().map(Into::into).unwrap_or(JsValue::NULL);
        if body.is_object() {
            // The guard (the caller's signal wired to the body, and the request Node needs
            // kept alive for that) lives as long as the stream does.
            let keep = Closure::once_into_js(move || drop(guard));
            let _ = js_sys::Reflect::set(&body, &JsValue::from_str("__sandlotGuard"), &keep);
        }
        Ok(body)
    }
}
