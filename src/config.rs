//! Where the SDK finds its server and key, and the time budgets of its HTTP calls.
//!
//! Precedence is options, then the environment (when the runtime has one: Node, Deno, Bun
//! expose `process.env`; browsers do not), then the local `sandlotd` default. The lookup is a
//! plain function of an env reader so it can be tested without touching a real environment.

use sandlot_protocol::defaults;
use wasm_bindgen::{JsCast, JsValue};

/// Environment variable holding the API key (checked first).
pub const ENV_API_KEY: &str = "SANDLOT_API_KEY";
/// The HopX variable, honoured so HopX setups work unchanged.
pub const ENV_HOPX_API_KEY: &str = "HOPX_API_KEY";
/// Environment variable holding the control-plane base URL.
pub const ENV_URL: &str = "SANDLOT_URL";

/// HTTP budget of ordinary control-plane and agent calls (the HopX SDKs use 60 s).
pub const DEFAULT_HTTP_TIMEOUT_MS: u32 = 60_000;
/// Creating a sandbox may wait for a node to boot one (HopX JS allows 300 s).
pub const CREATE_HTTP_TIMEOUT_MS: u32 = 300_000;
/// Starting a background run returns before the code runs, so it needs little time.
pub const BACKGROUND_HTTP_TIMEOUT_MS: u32 = 30_000;
/// Refresh the agent token ahead of time when less than this is left (HopX policy).
pub const TOKEN_REFRESH_MARGIN_MS: f64 = 3_600_000.0;

/// Attempts of an idempotent call, the first included.
pub const MAX_ATTEMPTS: u32 = 3;
/// First backoff step; doubled per retry.
pub const BACKOFF_BASE_MS: u32 = 500;
/// Upper bound of a computed backoff step.
pub const BACKOFF_MAX_MS: u32 = 8_000;
/// A `Retry-After` longer than this is not waited out: the caller gets the `RateLimitError`.
pub const RETRY_AFTER_MAX_MS: u32 = 60_000;

/// What a client talks to: the control plane's base URL and its key (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub base_url: String,
    pub api_key: Option<String>,
}

/// Resolves the configuration from explicit options and an environment reader.
pub fn resolve(
    api_key: Option<String>,
    base_url: Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ClientConfig, String> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let api_key = non_empty(api_key)
        .or_else(|| non_empty(env(ENV_API_KEY)))
        .or_else(|| non_empty(env(ENV_HOPX_API_KEY)));
    let base_url = non_empty(base_url)
        .or_else(|| non_empty(env(ENV_URL)))
        .unwrap_or_else(|| defaults::LOCAL_URL.to_string());
    Ok(ClientConfig {
        base_url: normalize_base_url(&base_url)?,
        api_key,
    })
}

/// Trims whitespace and trailing slashes and insists on an absolute http(s) URL, because
/// `fetch` in Node rejects relative URLs with an unhelpful `TypeError`.
pub fn normalize_base_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(url.to_string()),
        _ => Err(format!(
            "baseURL must be an absolute http:// or https:// URL, got \"{url}\""
        )),
    }
}

/// Reads `globalThis.process.env[name]` when the runtime has it; `None` in browsers.
pub fn env_var(name: &str) -> Option<String> {
    let global = js_sys::global();
    let process = js_sys::Reflect::get(&global, &JsValue::from_str("process")).ok()?;
    if !process.is_object() {
        return None;
    }
    let env = js_sys::Reflect::get(&process, &JsValue::from_str("env")).ok()?;
    if !env.is_object() {
        return None;
    }
    js_sys::Reflect::get(&env, &JsValue::from_str(name))
        .ok()?
        .dyn_into::<js_sys::JsString>()
        .ok()
        .map(String::from)
}

/// HTTP budget of a synchronous run: its execution timeout plus the documented grace.
pub fn sync_exec_http_timeout_ms(exec_timeout_secs: u64) -> u32 {
    let secs = exec_timeout_secs.saturating_add(defaults::HTTP_GRACE_SECS);
    u32::try_from(secs.saturating_mul(1000)).unwrap_or(u32::MAX)
}

/// Backoff before retry number `retry` (1-based): the server's `Retry-After` when it gave one,
/// else exponential from [`BACKOFF_BASE_MS`]. `None` means "do not wait that long; give up".
pub fn backoff_ms(retry: u32, retry_after_secs: Option<f64>) -> Option<u32> {
    match retry_after_secs {
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            let ms = secs * 1000.0;
            (ms <= f64::from(RETRY_AFTER_MAX_MS)).then_some(ms as u32)
        }
        _ => {
            let shift = retry.saturating_sub(1).min(16);
            Some(
                BACKOFF_BASE_MS
                    .saturating_mul(1 << shift)
                    .min(BACKOFF_MAX_MS),
            )
        }
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[wasm_bindgen_test]
    fn options_win_over_environment() {
        let cfg = resolve(
            Some("opt-key".into()),
            Some("http://opt:1/".into()),
            env_of(&[(ENV_API_KEY, "env-key"), (ENV_URL, "http://env:2")]),
        )
        .unwrap();
        assert_eq!(cfg.api_key.as_deref(), Some("opt-key"));
        assert_eq!(cfg.base_url, "http://opt:1");
    }

    #[wasm_bindgen_test]
    fn sandlot_key_wins_over_hopx_key_and_hopx_is_a_fallback() {
        let both = resolve(
            None,
            None,
            env_of(&[(ENV_API_KEY, "s"), (ENV_HOPX_API_KEY, "h")]),
        )
        .unwrap();
        assert_eq!(both.api_key.as_deref(), Some("s"));
        let hopx = resolve(None, None, env_of(&[(ENV_HOPX_API_KEY, "h")])).unwrap();
        assert_eq!(hopx.api_key.as_deref(), Some("h"));
    }

    #[wasm_bindgen_test]
    fn nothing_configured_means_local_server_without_key() {
        let cfg = resolve(None, Some("  ".into()), env_of(&[])).unwrap();
        assert_eq!(cfg.base_url, defaults::LOCAL_URL);
        assert_eq!(cfg.api_key, None);
    }

    #[wasm_bindgen_test]
    fn relative_or_schemeless_base_url_is_refused() {
        assert!(normalize_base_url("localhost:7070").is_err());
        assert!(normalize_base_url("/v1").is_err());
        assert!(normalize_base_url("http://").is_err());
        assert_eq!(
            normalize_base_url("https://api.example.com//").unwrap(),
            "https://api.example.com"
        );
    }

    #[wasm_bindgen_test]
    fn sync_exec_budget_is_timeout_plus_grace() {
        assert_eq!(sync_exec_http_timeout_ms(120), 150_000);
        assert_eq!(sync_exec_http_timeout_ms(u64::MAX), u32::MAX);
    }

    #[wasm_bindgen_test]
    fn backoff_doubles_and_honours_retry_after() {
        assert_eq!(backoff_ms(1, None), Some(500));
        assert_eq!(backoff_ms(2, None), Some(1000));
        assert_eq!(backoff_ms(10, None), Some(BACKOFF_MAX_MS));
        assert_eq!(backoff_ms(1, Some(2.0)), Some(2000));
        assert_eq!(backoff_ms(1, Some(3600.0)), None);
    }
}
