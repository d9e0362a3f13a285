//! `POST /commands/run` and `POST /commands/background`: a command becomes a bash run of
//! one shell line, so it is started, limited, recorded, listed and killed exactly like code.

use axum::extract::State;
use axum::Json;
use sandlot_protocol::{BackgroundExecuteResponse, CommandRequest, CommandResponse, RunSpec};

use super::auth::AgentSandbox;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::time::now_rfc3339;

/// `/commands/run` when the request gives no timeout (HopX docs and JS SDK: 30 s).
const RUN_TIMEOUT_SECS: u64 = 30;
/// `/commands/background` when the request gives no timeout (HopX docs: 300 s).
const BACKGROUND_TIMEOUT_SECS: u64 = 300;
/// Longest default name of a background command (its command line, cut).
const NAME_CHARS: usize = 80;

pub async fn run(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<CommandRequest>,
) -> ApiResult<Json<CommandResponse>> {
    let (line, mut spec) = run_spec(req)?;
    spec.timeout = Some(spec.timeout.unwrap_or(RUN_TIMEOUT_SECS));
    let (info, _) = state.node.run(&sandbox.id, spec).await?;
    Ok(Json(CommandResponse {
        success: info.exit_code == Some(0),
        stdout: info.stdout,
        stderr: info.stderr,
        exit_code: info.exit_code.unwrap_or(-1),
        execution_time: info.execution_time.unwrap_or(0.0),
        command: line,
        timestamp: Some(now_rfc3339()),
        status: Some(info.status),
        stdout_truncated: info.stdout_truncated,
        stderr_truncated: info.stderr_truncated,
        error: info.error,
        oom_killed: info.oom_killed,
    }))
}

pub async fn background(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<CommandRequest>,
) -> ApiResult<Json<BackgroundExecuteResponse>> {
    let (line, mut spec) = run_spec(req)?;
    if spec.name.as_deref().is_none_or(str::is_empty) {
        spec.name = Some(line.chars().take(NAME_CHARS).collect());
    }
    let info = state
        .node
        .start_process(&sandbox.id, spec, BACKGROUND_TIMEOUT_SECS)?;
    Ok(Json(BackgroundExecuteResponse {
        process_id: info.process_id,
        execution_id: info.execution_id,
        status: info.status,
        name: info.name,
        timeout: info.timeout,
        start_time: info.started_at,
        message: Some("Command started in the background".into()),
    }))
}

/// The shell line a command runs as, and the run that runs it.
fn run_spec(req: CommandRequest) -> ApiResult<(String, RunSpec)> {
    let command = req
        .command
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::missing("command"))?;
    let line = match &req.args {
        // `exec` so the program itself is the process (its exit code, its signals).
        Some(args) => std::iter::once(&command)
            .chain(args)
            .map(|word| quote(word))
            .fold(String::from("exec"), |line, word| line + " " + &word),
        None => command,
    };
    let spec = RunSpec {
        code: Some(line.clone()),
        language: Some("bash".into()),
        timeout: req.timeout,
        workdir: req.workdir,
        working_dir: req.working_dir,
        env: req.env,
        name: req.name,
    };
    Ok((line, spec))
}

/// One shell word that bash reads back as exactly `word`.
fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(command: &str, args: Option<&[&str]>) -> String {
        let req = CommandRequest {
            command: Some(command.into()),
            args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        run_spec(req).unwrap().0
    }

    #[test]
    fn a_shell_line_runs_as_it_is_and_arguments_are_quoted() {
        assert_eq!(line("ls -la | wc -l", None), "ls -la | wc -l");
        assert_eq!(
            line("bash", Some(&["-c", "node -v"])),
            "exec bash -c 'node -v'"
        );
        assert_eq!(
            line("echo", Some(&["it's", "", "$HOME", "a\nb"])),
            "exec echo 'it'\\''s' '' '$HOME' 'a\nb'"
        );
    }

    #[test]
    fn a_missing_or_blank_command_is_refused() {
        for command in [None, Some(""), Some("  ")] {
            let req = CommandRequest {
                command: command.map(Into::into),
                ..Default::default()
            };
            assert!(run_spec(req).is_err());
        }
    }
}
