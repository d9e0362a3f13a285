//! The bodies of sandlotd's fuzz targets, shared by the libFuzzer binaries (`fuzz_targets/`,
//! run by `cargo fuzz`) and the fallback property run (`cargo test --release --lib`, used by
//! `scripts/fuzz.sh` when no nightly toolchain is available).
//!
//! Every target must not panic on any input. Its properties are plain `assert!`s, so a broken
//! property is a crash that libFuzzer (or the fallback) reports with the input.
//!
//! Each target reads the server's own code through `sandlot_server::fuzzing`, which runs the
//! same functions a request goes through.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::Unstructured;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sandlot_protocol as wire;
use sandlot_server::fuzzing as server;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// fuzz_request_bodies
// ---------------------------------------------------------------------------------------

/// `--max-timeout-secs`' default.
const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Every request body of the protocol, read from the same bytes the way the server reads it
/// (`JsonBody`, or `serde_json::from_str` for the WebSocket's first frame), then checked the
/// way the server checks it. Properties:
/// - a refused body is a 400 `INVALID_JSON` or `INVALID_REQUEST`, never a panic;
/// - what parses survives a round trip: serialised and read again, it is the same value
///   (the accept-only alias `working_dir` excepted);
/// - a run the checks accept can be launched: time limit within bounds, an absolute working
///   directory, a language the template has, and no string the exec helper could not pass
///   to the kernel (no NUL in the working directory, argv or environment; environment names
///   non-empty and without `=`).
pub fn request_bodies(data: &[u8]) {
    // Control plane.
    if let Some(req) = body::<wire::CreateSandboxRequest>(data) {
        let template = req
            .template_id
            .clone()
            .map(|t| t.into_string())
            .or(req.template_name.clone());
        if let Some(found) = template.as_deref().and_then(server::find_template) {
            assert!(server::templates().contains(&found));
        }
        if let Some(env) = &req.env_vars {
            if server::check_env(env).is_ok() {
                assert_env_ok(env.iter());
            }
        }
    }
    body::<wire::SetTimeoutRequest>(data);
    body::<wire::TokenRefreshRequest>(data);

    // Agent.
    if let Some(spec) = body::<wire::RunSpec>(data) {
        check_run(
            &spec,
            &BTreeMap::new(),
            wire::defaults::EXECUTE_TIMEOUT_SECS,
        );
    }
    if let Some(req) = body::<wire::AsyncExecuteRequest>(data) {
        check_run(
            &req.run,
            &BTreeMap::new(),
            wire::defaults::ASYNC_TIMEOUT_SECS,
        );
    }
    if let Some(update) = body::<wire::EnvUpdate>(data) {
        if let Some(env) = update.env_vars {
            if server::check_env(&env).is_ok() {
                assert_env_ok(env.iter());
                // The sandbox's environment joins every later run's.
                let spec = wire::RunSpec {
                    code: Some("true".into()),
                    language: Some("bash".into()),
                    ..Default::default()
                };
                check_run(&spec, &env, wire::defaults::BACKGROUND_TIMEOUT_SECS);
            }
        }
    }
    body::<wire::KillProcessRequest>(data);

    // The WebSocket's one text frame (`api/stream.rs` reads it with `serde_json::from_str`).
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frame) = serde_json::from_str::<wire::WsExecuteFrame>(text) {
            let json = serde_json::to_string(&frame).expect("frames serialise");
            let again: wire::WsExecuteFrame =
                serde_json::from_str(&json).expect("a frame we write reads back");
            assert_eq!(again.kind, frame.kind);
            assert_eq!(again.run, without_alias(&frame.run));
            if frame.kind.as_deref().is_none_or(|k| k == "execute") {
                check_run(
                    &frame.run,
                    &BTreeMap::new(),
                    wire::defaults::STREAM_TIMEOUT_SECS,
                );
            }
        }
    }
}

/// Reads `data` as the server reads a body of type `T`, and checks the refusal or the round
/// trip.
fn body<T>(data: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned,
{
    match server::parse_json::<T>(data) {
        Err((status, code, message)) => {
            assert_eq!(status, 400);
            assert!(
                code == wire::code::INVALID_JSON || code == wire::code::INVALID_REQUEST,
                "unexpected code {code}"
            );
            assert!(!message.is_empty());
            None
        }
        Ok(value) => {
            let json = serde_json::to_string(&value).expect("request types serialise");
            let again: T = server::parse_json(json.as_bytes())
                .unwrap_or_else(|e| panic!("{json} does not read back: {e:?}"));
            let json2 = serde_json::to_string(&again).expect("request types serialise");
            assert_eq!(json, json2, "a round trip changed the value");
            Some(value)
        }
    }
}

/// `spec` as it reads back after serialisation: `working_dir` is accepted, never written.
fn without_alias(spec: &wire::RunSpec) -> wire::RunSpec {
    wire::RunSpec {
        working_dir: None,
        ..spec.clone()
    }
}

fn check_run(spec: &wire::RunSpec, sandbox_env: &BTreeMap<String, String>, default: u64) {
    // RunSpec has PartialEq: the round trip keeps every field but the alias.
    let json = serde_json::to_string(spec).expect("run specs serialise");
    let again: wire::RunSpec = serde_json::from_str(&json).expect("a spec we write reads back");
    assert_eq!(again, without_alias(spec));

    for template in server::templates() {
        let result = server::prepare_run(
            spec.clone(),
            template,
            sandbox_env.clone(),
            default,
            MAX_TIMEOUT_SECS,
        )
        .expect("a built-in template");
        let run = match result {
            Ok(run) => run,
            Err(why) => {
                assert!(!why.is_empty());
                continue;
            }
        };
        assert_eq!(Some(&run.code), spec.code.as_ref());
        assert!((1..=MAX_TIMEOUT_SECS).contains(&run.timeout_secs));
        assert_eq!(run.timeout_secs, spec.timeout.unwrap_or(default));
        assert!(run.cwd.starts_with('/'));
        assert!(
            !run.cwd.contains('\0'),
            "a NUL in the workdir passed the checks"
        );
        assert_eq!(
            spec.language.as_deref().map(wire::Language::parse),
            spec.language.as_ref().map(|_| Some(run.language))
        );
        if template == "base" {
            assert_eq!(run.language, wire::Language::Bash);
        }
        assert!(run.argv.iter().all(|a| !a.is_empty() && !a.contains('\0')));
        assert_env_ok(run.environment.iter().map(|(k, v)| (k, v)));
        if let Some(name) = &run.name {
            assert!(!name.is_empty());
        }
    }
}

fn assert_env_ok<'a>(env: impl Iterator<Item = (&'a String, &'a String)>) {
    for (name, value) in env {
        assert!(!name.is_empty(), "an empty environment name passed");
        assert!(!name.contains('='), "an environment name with '=' passed");
        assert!(!name.contains('\0'), "a NUL in an environment name passed");
        assert!(
            !value.contains('\0'),
            "a NUL in an environment value passed"
        );
    }
}

// ---------------------------------------------------------------------------------------
// fuzz_token
// ---------------------------------------------------------------------------------------

/// The fuzz targets' fixed signing key (never a server's: those are random, in the data dir).
pub const TOKEN_KEY: &[u8] = b"sandlot-fuzz: a fixed key for the fuzz targets only";

/// The claims of an agent token, as `docs/protocol.md` §2 defines them.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sid: String,
    #[allow(dead_code)]
    iat: i64,
    exp: i64,
    #[serde(default)]
    gen: u32,
}

/// Agent tokens (`token::TokenSigner`). The first byte picks the mode:
/// - `T` + a string: parsed and verified as a token. Nothing panics, and only tokens the key
///   signed verify: re-signing a verified token's payload gives that very token back.
/// - `P` + bytes: those bytes signed as a payload, so the claims parser runs past the
///   signature. The answer matches the documented claims: malformed, expired, or the
///   sandbox and generation inside.
/// - anything else: a token is issued for an arbitrary sandbox id and generation (from the
///   input) and must verify as exactly that; then one byte of it is changed, inserted or
///   removed, and the result must not verify.
pub fn token(data: &[u8]) {
    let signer = server::TokenSigner::from_key(TOKEN_KEY);
    match data.split_first() {
        Some((b'T', rest)) => {
            if let Ok(token) = std::str::from_utf8(rest) {
                raw_token(&signer, token);
            }
        }
        Some((b'P', rest)) => signed_payload(&signer, rest),
        _ => issue_and_tamper(&signer, data),
    }
}

fn raw_token(signer: &server::TokenSigner, token: &str) {
    let verified = signer.sandbox_of(token);
    let _ = signer.verify(token, "1700000000abcdefgh");
    if let Ok(v) = verified {
        let payload = token
            .split('.')
            .nth(1)
            .expect("a verified token has a payload");
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .expect("a verified token's payload decodes");
        assert_eq!(
            signer.sign_payload(&payload).as_deref(),
            Ok(token),
            "a token verified that the key did not sign in this form"
        );
        assert_eq!(signer.verify(token, &v.sandbox), Ok(v.generation));
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn signed_payload(signer: &server::TokenSigner, payload: &[u8]) {
    let token = signer.sign_payload(payload).expect("an HS256 signer signs");
    let got = signer.sandbox_of(&token);
    match serde_json::from_slice::<Claims>(payload) {
        Err(_) => assert_eq!(got, Err(server::TokenError::Malformed)),
        // Too close to the clock to tell which side of it the check fell on.
        Ok(c) if (c.exp - now()).abs() <= 2 => {}
        Ok(c) if c.exp <= now() => assert_eq!(got, Err(server::TokenError::Expired)),
        Ok(c) => {
            assert_eq!(
                got,
                Ok(server::Verified {
                    sandbox: c.sid.clone(),
                    generation: c.gen,
                })
            );
            assert_eq!(signer.verify(&token, &c.sid), Ok(c.gen));
        }
    }
}

fn issue_and_tamper(signer: &server::TokenSigner, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(sid), Ok(generation)) = (u.arbitrary::<String>(), u.arbitrary::<u32>()) else {
        return;
    };
    let (token, exp) = signer.issue(&sid, generation).expect("an HS256 signer signs");
    assert!(exp > SystemTime::now());
    assert_eq!(
        signer.sandbox_of(&token),
        Ok(server::Verified {
            sandbox: sid.clone(),
            generation,
        })
    );
    assert_eq!(signer.verify(&token, &sid), Ok(generation));
    assert_eq!(
        signer.verify(&token, &format!("{sid}x")),
        Err(server::TokenError::WrongSandbox)
    );
    let foreign = server::TokenSigner::from_key(b"another key, another server......");
    assert_eq!(
        foreign.sandbox_of(&token),
        Err(server::TokenError::BadSignature)
    );

    // One change anywhere, and the token no longer opens anything.
    let mut bytes = token.clone().into_bytes();
    let at = u.choose_index(bytes.len() + 1).unwrap_or(0);
    let byte = u.arbitrary::<u8>().unwrap_or(b'A');
    match u.arbitrary::<u8>().unwrap_or(0) % 3 {
        0 if at < bytes.len() => bytes[at] = byte,
        1 if at < bytes.len() => {
            bytes.remove(at);
        }
        _ => bytes.insert(at, byte),
    }
    let tampered = String::from_utf8_lossy(&bytes);
    if tampered != token {
        assert!(
            signer.sandbox_of(&tampered).is_err(),
            "a changed token verified: {tampered}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// fuzz_since
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SinceQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<u64>,
}

/// Where an SSE stream resumes (`?since=` and `Last-Event-ID`, `api/stream.rs`). The input
/// is the query string, then optionally a newline and the header's value. Properties: no
/// panic; a query that does not parse is a 400 `INVALID_REQUEST`; without a query the
/// header decides (a non-number is ignored). Then, from the same bytes, numbers as a client
/// writes them: `?since=` wins over the header, and each is read back exactly.
pub fn since(data: &[u8]) {
    let (query, header) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let query = String::from_utf8_lossy(query);
    match server::resume_after(&query, header) {
        None => {}
        Some(Err((status, code, _))) => {
            assert_eq!(status, 400);
            assert_eq!(code, wire::code::INVALID_REQUEST);
        }
        Some(Ok(after)) => {
            if query.is_empty() {
                let from_header = header
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| h.trim_matches([' ', '\t']).parse::<u64>().ok());
                assert_eq!(after, from_header.unwrap_or(0));
            }
        }
    }

    let mut u = Unstructured::new(data);
    let (Ok(since), Ok(last), Ok(pad)) = (
        u.arbitrary::<Option<u64>>(),
        u.arbitrary::<Option<u64>>(),
        u.arbitrary::<bool>(),
    ) else {
        return;
    };
    let query = serde_urlencoded::to_string(SinceQuery { since }).expect("encodes");
    let header = match last {
        Some(n) if pad => format!(" {n}\t"),
        Some(n) => n.to_string(),
        None => "not-a-number".into(),
    };
    assert_eq!(
        server::resume_after(&query, Some(header.as_bytes())),
        Some(Ok(since.or(last).unwrap_or(0))),
        "query {query:?}, Last-Event-ID {header:?}"
    );
}

// ---------------------------------------------------------------------------------------
// fuzz_query_and_guard
// ---------------------------------------------------------------------------------------

/// `GET /v1/sandboxes`' query as a client writes it.
#[derive(Debug, PartialEq, Serialize, Deserialize, arbitrary::Arbitrary)]
struct ControlListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

/// `GET /execute/processes`' query as a client writes it.
#[derive(Debug, PartialEq, Serialize, Deserialize, arbitrary::Arbitrary)]
struct AgentListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<bool>,
}

/// Query strings and path parameters of the control plane and the agent, and local mode's
/// guard. The first byte picks the mode (`c`, `a`, `r`, `t`, `g`; others by value):
/// - `c` / `a` + a query string: the control plane's / agent's list query, read as the
///   server reads it (`QueryParams`); a refusal is a 400 `INVALID_REQUEST`, then the status
///   filter is parsed as the handlers parse it.
/// - `r` + bytes: both list queries built from the bytes, encoded as a client encodes them:
///   the server accepts them and they read back equal.
/// - `t` + a name: a template path parameter (`/v1/templates/{name}`, create's template).
/// - `g` + a request head (`METHOD PATH`, then `Name: value` lines): local mode's guard. What
///   it lets through has only loopback `Host`s, no foreign `Origin` on the control plane,
///   and a body only with a JSON content type, never one a web page could send without a
///   CORS preflight.
pub fn query_and_guard(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mode = match mode {
        b'c' | b'a' | b'r' | b't' | b'g' => mode,
        other => b"cartg"[other as usize % 5],
    };
    let text = String::from_utf8_lossy(rest);
    match mode {
        b'c' => {
            assert_refusal(server::control_list_query(&text));
            if let Ok(q) = server::parse_query::<ControlListQuery>(&text) {
                if let Some(status) = q.status.as_deref() {
                    if let Some(s) = wire::SandboxStatus::parse(status) {
                        assert_eq!(s.as_str(), status);
                    }
                }
            }
        }
        b'a' => {
            assert_refusal(server::agent_list_query(&text));
            if let Ok(q) = server::parse_query::<AgentListQuery>(&text) {
                for s in q.status.as_deref().unwrap_or_default().split(',') {
                    if let Some(parsed) = wire::ProcessStatus::parse(s.trim()) {
                        assert_eq!(parsed.as_str(), s.trim());
                    }
                }
            }
        }
        b'r' => {
            let mut u = Unstructured::new(rest);
            if let Ok(q) = u.arbitrary::<ControlListQuery>() {
                let encoded = serde_urlencoded::to_string(&q).expect("encodes");
                assert!(
                    server::control_list_query(&encoded).is_ok(),
                    "the server refused a well-formed query: {encoded}"
                );
                assert_eq!(
                    server::parse_query::<ControlListQuery>(&encoded).ok(),
                    Some(q)
                );
            }
            if let Ok(q) = u.arbitrary::<AgentListQuery>() {
                let encoded = serde_urlencoded::to_string(&q).expect("encodes");
                assert!(
                    server::agent_list_query(&encoded).is_ok(),
                    "the server refused a well-formed query: {encoded}"
                );
                assert_eq!(
                    server::parse_query::<AgentListQuery>(&encoded).ok(),
                    Some(q)
                );
            }
        }
        b't' => {
            if let Some(name) = server::find_template(&text) {
                assert!(text == name || text == "1" || text == "2");
            }
        }
        _ => guard(rest),
    }
}

fn assert_refusal(result: Result<String, server::Refusal>) {
    if let Err((status, code, _)) = result {
        assert_eq!(status, 400);
        assert_eq!(code, wire::code::INVALID_REQUEST);
    }
}

fn guard(head: &[u8]) {
    let mut lines = head.split(|&b| b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, path) = match request_line.iter().position(|&b| b == b' ') {
        Some(i) => (&request_line[..i], &request_line[i + 1..]),
        None => (request_line, &b"/"[..]),
    };
    let path = String::from_utf8_lossy(path);
    let headers: Vec<(Vec<u8>, Vec<u8>)> = lines
        .filter_map(|line| {
            let i = line.iter().position(|&b| b == b':')?;
            let value = &line[i + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            Some((line[..i].to_ascii_lowercase(), value.to_vec()))
        })
        .collect();
    let Some(verdict) = server::local_mode_guard(method, &path, &headers) else {
        return;
    };
    if verdict.is_err() {
        return;
    }
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    for host in values("host") {
        assert!(
            names_loopback(host),
            "let through with Host {:?}",
            String::from_utf8_lossy(host)
        );
    }
    let agent = path.starts_with("/sandboxes/") || path.starts_with("/execute");
    if !agent {
        for origin in values("origin") {
            let host = match origin.windows(3).position(|w| w == b"://") {
                Some(i) => &origin[i + 3..],
                None => origin,
            };
            assert!(
                names_loopback(host),
                "control plane let through with Origin {:?}",
                String::from_utf8_lossy(origin)
            );
        }
    }
    let has_body = matches!(method, b"POST" | b"PUT" | b"PATCH" | b"DELETE")
        && (values("transfer-encoding").next().is_some()
            || values("content-length").any(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    != Some(0)
            }));
    if has_body {
        let content_type = values("content-type").next();
        assert!(
            content_type.is_some_and(|ct| !fetch_safelisted_content_type(ct)),
            "a body a web page can send without a preflight was let through: {:?}",
            content_type.map(String::from_utf8_lossy)
        );
    }
}

/// Whether `host_port` is an authority (`host` or `host:digits`, IPv6 in brackets) whose
/// host is loopback: `localhost`, a name under `.localhost`, 127.0.0.0/8 or `::1`. An
/// independent reading of what the guard means, so it is checked against it.
fn names_loopback(host_port: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(host_port) else {
        return false;
    };
    let s = s.trim_matches([' ', '\t']);
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return false;
        };
        match after {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a browser may send this `Content-Type` without a CORS preflight (the Fetch
/// standard's CORS-safelisted request-header, `content-type` case).
fn fetch_safelisted_content_type(value: &[u8]) -> bool {
    if value.len() > 128 {
        return false;
    }
    let unsafe_byte =
        |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f || b"\"():<>?@[\\]{}".contains(&b);
    if value.iter().any(|&b| unsafe_byte(b)) {
        return false;
    }
    let Ok(s) = std::str::from_utf8(value) else {
        return false;
    };
    let s = s.trim_matches([' ', '\t', '\n', '\r']);
    let Some((kind, rest)) = s.split_once('/') else {
        return false;
    };
    let subtype = rest
        .split(';')
        .next()
        .unwrap_or("")
        .trim_end_matches([' ', '\t', '\n', '\r']);
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !token(kind) || !token(subtype) {
        return false;
    }
    let essence = format!("{kind}/{subtype}").to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
    )
}

// ---------------------------------------------------------------------------------------
// The fallback: the same targets as property tests on stable Rust
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod properties;
