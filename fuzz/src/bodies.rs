//! `fuzz_request_bodies`: every request body of the protocol, read and checked the way the
//! server reads and checks it.

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use sandlot_server::fuzzing as server;
use serde::de::DeserializeOwned;
use serde::Serialize;

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
