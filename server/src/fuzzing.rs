//! Entry points for the fuzz targets in `fuzz/` (README, "Fuzzing"). Not an API: hidden from
//! the docs and free to change with the targets. Every function runs the server's own code on
//! untrusted input the way a request reaches it, without a running server.

use std::collections::BTreeMap;

use sandlot_protocol::{Language, RunSpec};

pub use crate::api::fuzz::{
    agent_list_query, control_list_query, is_json, is_loopback_host, local_mode_guard, parse_json,
    parse_query, resume_after, Refusal,
};
pub use crate::token::{TokenError, TokenSigner, Verified};

use crate::exec::launch;
use crate::sandbox::template::{self, TEMPLATES};

/// Names of the built-in templates.
pub fn templates() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.name).collect()
}

/// The template a create request's `template_id` / `template_name` names, if any.
pub fn find_template(name_or_id: &str) -> Option<&'static str> {
    template::find(name_or_id).map(|t| t.name)
}

/// The environment check of sandbox creation, `PUT`/`PATCH /env` and run requests.
pub fn check_env(env: &BTreeMap<String, String>) -> Result<(), String> {
    launch::check_env(env).map_err(|e| format!("{e:?}"))
}

/// What a run request became once checked, and what the exec helper would be given.
#[derive(Debug)]
pub struct PreparedRun {
    pub code: String,
    pub language: Language,
    pub timeout_secs: u64,
    pub cwd: String,
    pub name: Option<String>,
    /// The process's whole environment: base, the sandbox's, the request's.
    pub environment: Vec<(String, String)>,
    /// The program's argv (the language's launcher).
    pub argv: Vec<String>,
}

/// Runs a run request through the process manager's checks (`exec/launch.rs`) against the
/// built-in template `template`, and builds the environment and argv, as
/// `ProcessManager::prepare` does. `None` if there is no such template.
pub fn prepare_run(
    spec: RunSpec,
    template: &str,
    sandbox_env: BTreeMap<String, String>,
    default_timeout: u64,
    max_timeout: u64,
) -> Option<Result<PreparedRun, String>> {
    let template = template::find(template)?;
    let run = match launch::check(spec, template, default_timeout, max_timeout) {
        Ok(run) => run,
        Err(e) => return Some(Err(format!("{e:?}"))),
    };
    let environment = launch::environment(sandbox_env, &run.env);
    let (argv, _) = template::launcher(run.language);
    Some(Ok(PreparedRun {
        code: run.code,
        language: run.language,
        timeout_secs: run.timeout_secs,
        cwd: run.cwd,
        name: run.name,
        environment,
        argv,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hooks answer as the routes do (the fuzz targets rely on it).
    #[test]
    fn the_hooks_run_the_server_code() {
        assert_eq!(resume_after("since=5", Some(b"7")), Some(Ok(5)));
        assert_eq!(resume_after("", Some(b" 7 ")), Some(Ok(7)));
        assert_eq!(resume_after("", Some(b"x")), Some(Ok(0)));
        assert_eq!(
            resume_after("since=x", None).map(|r| r.map_err(|e| (e.0, e.1))),
            Some(Err((400, "INVALID_REQUEST")))
        );
        assert!(control_list_query("limit=5&status=running").is_ok());
        assert!(agent_list_query("output=maybe").is_err());
        let spec: RunSpec = parse_json(b" \n").unwrap();
        assert_eq!(spec, RunSpec::default());
        assert_eq!(
            parse_json::<RunSpec>(b"{").map_err(|e| e.1),
            Err("INVALID_JSON")
        );
        assert_eq!(
            parse_json::<RunSpec>(br#"{"timeout":-1}"#).map_err(|e| e.1),
            Err("INVALID_REQUEST")
        );
        let spec = RunSpec {
            code: Some("echo".into()),
            language: Some("sh".into()),
            ..Default::default()
        };
        let run = prepare_run(spec, "base", BTreeMap::new(), 60, 600)
            .unwrap()
            .unwrap();
        assert_eq!((run.language, run.timeout_secs), (Language::Bash, 60));
        assert!(run.environment.iter().any(|(k, _)| k == "PATH"));
        assert!(local_mode_guard(b"GET", "/v1/sandboxes", &[])
            .unwrap()
            .is_ok());
        let signer = TokenSigner::from_key(&[7; 32]);
        let (token, _) = signer.issue("sbx", 2).unwrap();
        assert_eq!(signer.verify(&token, "sbx"), Ok(2));
    }
}
