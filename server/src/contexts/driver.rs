//! The driver protocol: how the server talks to a context's driver program.
//!
//! Each language has a small driver (the files in `drivers/`, compiled into the binary) that
//! the exec helper starts like any program, as the sandbox's user with its seccomp filter,
//! delivered through a memfd ([`CodeDelivery::Driver`]), never written to the workspace.
//! Commands go to the driver's stdin; replies come back on its fd 4 as JSON lines
//! ([`Reply`]); the code's output is the driver's own stdout and stderr. Python and
//! javascript read a JSON command per run; bash reads a length-prefixed one whose prelude
//! and postlude the server writes as shell text ([`bash_run`]), so the shell needs no JSON
//! parser.

use std::collections::BTreeMap;

use sandlot_protocol::{Language, RichResult};
use serde::Deserialize;

use crate::sandbox::isolation::CodeDelivery;

const PYTHON: &str = include_str!("drivers/python.py");
const ZYGOTE_CONTEXT: &str = include_str!("drivers/zygote_context.py");
const ZYGOTE: &str = include_str!("drivers/zygote.py");
const NODE: &str = include_str!("drivers/node.js");
const BASH: &str = include_str!("drivers/bash.sh");

/// How python drivers (and the fork server) are started.
const PYTHON_ARGV: &[&str] = &["/usr/bin/python3", "-u", "/proc/self/fd/3"];

/// How to start a language's driver: argv, and the program text (fd 3, or in argv for
/// node, which cannot run a script from a memfd path).
pub fn launcher(language: Language) -> (Vec<String>, &'static str, CodeDelivery) {
    let (argv, program): (Vec<&str>, &str) = match language {
        Language::Python => (PYTHON_ARGV.to_vec(), PYTHON),
        Language::Javascript => (vec!["/usr/bin/node", "-e", NODE], ""),
        Language::Bash => (
            vec!["/bin/bash", "--norc", "--noprofile", "/proc/self/fd/3"],
            BASH,
        ),
    };
    (
        argv.into_iter().map(String::from).collect(),
        program,
        CodeDelivery::Driver,
    )
}

/// The python fork server's argv: the python driver's.
pub fn python_argv() -> Vec<String> {
    PYTHON_ARGV.iter().map(|s| s.to_string()).collect()
}

/// The python fork server's program: the python driver, then the fork loop.
pub fn zygote_program() -> String {
    format!("{PYTHON}\n{ZYGOTE_CONTEXT}\n{ZYGOTE}")
}

/// Whether a python context with this environment can be forked from the fork server: the
/// variables an interpreter reads only as it starts (`PYTHON*` but the three a fork applies
/// itself, the locale, `IPYTHONDIR`, a virtualenv) must be what the fork server started
/// with. Otherwise the context starts as a new interpreter through the exec helper.
pub fn forkable_env(env: &[(String, String)]) -> bool {
    env.iter().all(|(k, v)| match k.as_str() {
        "PYTHONPATH" => true,
        "PYTHONUNBUFFERED" | "PYTHONDONTWRITEBYTECODE" => v == "1",
        "LANG" => v == "C.UTF-8",
        "VIRTUAL_ENV" | "IPYTHONDIR" => false,
        k => !k.starts_with("PYTHON") && !k.starts_with("LC_"),
    })
}

/// A line the driver (or, for `spawned`, the exec helper) writes on the reply channel.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Reply {
    /// The driver's host pid (its process group is interrupted).
    Spawned {
        pid: i32,
    },
    Ready {},
    Result {
        id: u64,
        data: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        main: bool,
    },
    Error {
        id: u64,
        name: String,
        #[serde(default)]
        value: String,
        #[serde(default)]
        traceback: String,
    },
    Done {
        id: u64,
        exit_code: i32,
    },
}

/// One run, as the driver of `language` reads it.
pub fn run_command(
    language: Language,
    id: u64,
    code: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&str>,
) -> Vec<u8> {
    match language {
        Language::Bash => bash_run(id, code, env, cwd),
        _ => {
            let mut line = serde_json::to_vec(&serde_json::json!({
                "type": "run", "id": id, "code": code, "env": env, "cwd": cwd,
            }))
            .expect("a run serialises");
            line.push(b'\n');
            line
        }
    }
}

/// The python driver's warm-up command: muted runs whose every trace it then removes (see
/// `_warm_up` in `drivers/python.py`), answered by a `done` with this id.
pub fn warm_up_command(id: u64) -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({ "type": "warm", "id": id }))
        .expect("a command serialises");
    line.push(b'\n');
    line
}

/// The python driver's command that gives a context made ahead its sandbox's environment
/// (`_take_env` in `drivers/zygote_context.py`), answered by a `done` with this id: exit code
/// 0, or 1 from a driver that cannot (an exec'd one).
pub fn env_command(id: u64, env: &[(String, String)]) -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({ "type": "env", "id": id, "env": env }))
        .expect("a command serialises");
    line.push(b'\n');
    line
}

/// A shell word that means exactly `s`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_shell_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The bash driver's command: a header line, then the prelude (the run's variables and
/// directory), the code and the postlude (which undoes the prelude).
fn bash_run(id: u64, code: &str, env: &BTreeMap<String, String>, cwd: Option<&str>) -> Vec<u8> {
    let (mut pre, mut post) = (String::new(), String::new());
    for (i, (k, v)) in env.iter().filter(|(k, _)| is_shell_name(k)).enumerate() {
        pre.push_str(&format!(
            "__sl_s{i}=${{{k}+1}}; __sl_o{i}=${{{k}-}}; export {k}={}\n",
            quote(v)
        ));
        post.push_str(&format!(
            "if [[ -n $__sl_s{i} ]]; then export {k}=\"$__sl_o{i}\"; else unset {k}; fi\n"
        ));
    }
    if let Some(dir) = cwd {
        let dir = quote(dir);
        pre.push_str(&format!("__sl_back=$PWD; cd -- {dir} || __sl_rc=1\n"));
        post.push_str(&format!(
            "[[ $PWD == {dir} ]] && cd -- \"$__sl_back\" 2>/dev/null\n"
        ));
    }
    let mut out = format!("{id} {} {} {}\n", pre.len(), code.len(), post.len()).into_bytes();
    out.extend_from_slice(pre.as_bytes());
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(post.as_bytes());
    out
}

/// A MIME bundle as a result in E2B's shape (unknown types are dropped).
pub fn rich_result(data: serde_json::Map<String, serde_json::Value>, main: bool) -> RichResult {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(lines) => Some(
            lines
                .iter()
                .filter_map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    };
    let mut r = RichResult {
        is_main_result: main,
        ..Default::default()
    };
    for (mime, value) in &data {
        match mime.as_str() {
            "text/plain" => r.text = text(value),
            "image/png" => r.png = text(value).map(|s| s.replace('\n', "")),
            "image/jpeg" => r.jpeg = text(value).map(|s| s.replace('\n', "")),
            "image/svg+xml" => r.svg = text(value),
            "text/html" => r.html = text(value),
            "text/markdown" => r.markdown = text(value),
            "text/latex" => r.latex = text(value),
            "application/json" => r.json = serde_json::from_value(value.clone()).ok(),
            "application/javascript" => r.javascript = text(value),
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bash_run_carries_exact_byte_lengths_and_quoted_values() {
        let env = BTreeMap::from([
            ("A".to_string(), "it's".to_string()),
            ("bad-name".to_string(), "x".to_string()),
        ]);
        let cmd = bash_run(7, "echo ☃", &env, Some("/tmp"));
        let text = String::from_utf8(cmd).unwrap();
        let (header, rest) = text.split_once('\n').unwrap();
        let lens: Vec<usize> = header
            .split(' ')
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(lens.iter().sum::<usize>(), rest.len());
        let code = &rest[lens[0]..lens[0] + lens[1]];
        assert_eq!(code, "echo ☃");
        assert!(rest.contains(r"export A='it'\''s'"), "{rest}");
        assert!(
            !rest.contains("bad-name"),
            "names bash cannot hold are left out"
        );
    }

    #[test]
    fn only_environments_a_fork_can_reproduce_are_forked() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(forkable_env(&env(&[
            ("HOME", "/workspace"),
            ("LANG", "C.UTF-8"),
            ("PYTHONUNBUFFERED", "1"),
            ("PYTHONPATH", "/workspace/lib"),
            ("SECRET", "x"),
        ])));
        for bad in [
            ("PYTHONHASHSEED", "0"),
            ("PYTHONDONTWRITEBYTECODE", ""),
            ("LANG", "de_DE.UTF-8"),
            ("LC_ALL", "C"),
            ("VIRTUAL_ENV", "/venv"),
            ("IPYTHONDIR", "/workspace/.ipython"),
        ] {
            assert!(!forkable_env(&env(&[bad])), "{bad:?}");
        }
    }

    #[test]
    fn mime_bundles_become_results() {
        let data = serde_json::json!({"text/plain": "df", "text/html": "<table/>",
            "application/json": {"a": 1}, "image/png": "iVBO\nRw==", "x/unknown": "?"});
        let r = rich_result(data.as_object().unwrap().clone(), true);
        assert_eq!(r.text.as_deref(), Some("df"));
        assert_eq!(r.html.as_deref(), Some("<table/>"));
        assert_eq!(r.png.as_deref(), Some("iVBORw=="));
        assert_eq!(
            serde_json::to_value(&r.json).unwrap(),
            serde_json::json!({"a": 1.0})
        );
        assert!(r.is_main_result);
    }
}
