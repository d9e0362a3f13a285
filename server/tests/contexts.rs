//! Execution contexts against the real server: state that persists per language, isolation,
//! named contexts, fresh processes, interrupts, crash and out-of-memory restarts, and bounds
//! (rich results, the HopX routes and streams: `contexts_results.rs`; forked contexts:
//! `contexts_zygote.rs`).

mod common;

use std::time::Duration;

use common::{Sandbox, Server};
use reqwest::Method;
use serde_json::{json, Value};

async fn exec(sb: &Sandbox, body: Value) -> Value {
    let (status, out) = sb.call(Method::POST, "/execute", Some(body)).await;
    assert_eq!(status, 200, "{out}");
    out
}

async fn py(sb: &Sandbox, code: &str) -> Value {
    exec(sb, json!({"code": code, "language": "python"})).await
}

#[tokio::test]
async fn python_state_persists_and_the_last_expression_is_the_result() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let first = py(&sb, "import os\nx = 41\nos.chdir('/tmp')\nx + 1").await;
    assert_eq!(first["exit_code"], 0, "{first}");
    assert_eq!(first["result"], "42", "{first}");
    assert_eq!(first["results"][0]["is_main_result"], true, "{first}");
    assert_eq!(first["context_id"], "default-python");
    let second = py(&sb, "print(x, os.getcwd())").await;
    assert_eq!(
        second["stdout"], "41 /tmp\n",
        "variables, imports and cwd persist"
    );
    assert!(
        second.get("result").is_none(),
        "print has no value: {second}"
    );
    // An exception: non-zero exit code, `error` as text (HopX's string), the object in
    // `execution_error`, the traceback on stderr too.
    let err = py(&sb, "undefined_name").await;
    assert_eq!(err["exit_code"], 1);
    assert_eq!(err["success"], false);
    assert_eq!(err["status"], "failed");
    assert_eq!(err["execution_error"]["name"], "NameError", "{err}");
    assert!(
        err["error"].as_str().unwrap().starts_with("NameError: "),
        "{err}"
    );
    assert!(err["execution_error"]["traceback"]
        .as_str()
        .unwrap()
        .contains("undefined_name"));
    assert!(err["stderr"].as_str().unwrap().contains("NameError"));
    // SystemExit reports its code, and the context lives on.
    let exit = py(&sb, "import sys\nsys.exit(7)").await;
    assert_eq!(exit["exit_code"], 7, "{exit}");
    assert_eq!(exit["execution_error"]["name"], "SystemExit");
    assert_eq!(py(&sb, "x").await["result"], "41");
    assert_eq!(py(&sb, "import sys; sys.exit(0)").await["exit_code"], 0);
}

#[tokio::test]
async fn ipython_s_own_syntax_works_in_the_python_context() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    // Each cell: its stdout. Magics and shell escapes, also assigned; the escapes that start
    // a line (`/` calls, `;` and `,` quote); help; a cell magic; `%` only inside a string.
    let cells = [
        ("%cd /tmp\nd = %pwd\nprint(d)", "/tmp\n/tmp\n"),
        ("files = !echo one two\nprint(files)", "['one two']\n"),
        ("/print 7", "7\n"),
        (";print a b", "a b\n"),
        (",print a b", "a b\n"),
        ("%%bash\necho from bash", "from bash\n"),
        ("print('100%')", "100%\n"),
        ("   y = 3\n   print(y)", "3\n"),
    ];
    for (code, stdout) in cells {
        let out = py(&sb, code).await;
        assert_eq!(out["exit_code"], 0, "{code:?}: {out}");
        assert_eq!(out["stdout"], stdout, "{code:?}: {out}");
    }
    let help = py(&sb, "n = 5\nn?").await;
    assert!(
        help["stdout"]
            .as_str()
            .unwrap()
            .contains("int([x]) -> integer"),
        "{help}"
    );
    // Indentation the tokenizer rejects is an error of the cell, and the context goes on.
    let bad = py(&sb, "if 1:\n        a = 1\n    b = 2").await;
    assert_eq!(bad["exit_code"], 1, "{bad}");
    assert_eq!(bad["execution_error"]["name"], "IndentationError", "{bad}");
    assert_eq!(py(&sb, "y + 1").await["result"], "4");
}

#[tokio::test]
async fn javascript_keeps_variables_and_awaits_at_the_top_level() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let js = |code: &str| json!({"code": code, "language": "javascript"});
    let a = exec(&sb, js("const a = 20\nlet b = 1\na + b")).await;
    assert_eq!(a["result"], "21", "{a}");
    let awaited = exec(
        &sb,
        js("const c = await new Promise(r => setTimeout(() => r(a * 2), 10))\nc + b"),
    )
    .await;
    assert_eq!(awaited["result"], "41", "{awaited}");
    let later = exec(&sb, js("console.log(c); c")).await;
    assert_eq!(later["stdout"], "40\n", "{later}");
    let thrown = exec(&sb, js("throw new TypeError('nope')")).await;
    assert_eq!(thrown["exit_code"], 1);
    assert_eq!(thrown["execution_error"]["name"], "TypeError", "{thrown}");
    assert_eq!(thrown["execution_error"]["value"], "nope");
}

#[tokio::test]
async fn bash_keeps_its_directory_and_exports_and_exit_ends_only_the_shell() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let sh = |code: &str| json!({"code": code, "language": "bash"});
    exec(
        &sb,
        sh("mkdir -p /tmp/d && cd /tmp/d\nexport GREETING=hi\nN=3"),
    )
    .await;
    let out = exec(&sb, sh("echo $PWD $GREETING $N")).await;
    assert_eq!(out["stdout"], "/tmp/d hi 3\n", "{out}");
    assert_eq!(
        exec(&sb, sh("false")).await["exit_code"],
        1,
        "the last command's status"
    );
    // `exit` ends the shell with its code; the next run gets a new shell without a word.
    let exited = exec(&sb, sh("echo bye; exit 3")).await;
    assert_eq!(
        (exited["exit_code"].clone(), exited["stdout"].clone()),
        (json!(3), json!("bye\n"))
    );
    let fresh_shell = exec(&sb, sh("echo ${N:-unset}")).await;
    assert_eq!(fresh_shell["stdout"], "unset\n", "{fresh_shell}");
    assert_eq!(fresh_shell["exit_code"], 0);
    assert!(
        fresh_shell.get("error").is_none() && fresh_shell.get("execution_error").is_none(),
        "{fresh_shell}"
    );
}

#[tokio::test]
async fn a_request_env_and_workdir_apply_to_that_run_only() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let out = exec(
        &sb,
        json!({"code": "import os\nprint(os.environ['ONLY'], os.getcwd())", "env": {"ONLY": "here"}, "workdir": "/tmp"}),
    )
    .await;
    assert_eq!(out["stdout"], "here /tmp\n", "{out}");
    let after = py(&sb, "print(os.environ.get('ONLY'), os.getcwd())").await;
    assert_eq!(after["stdout"], "None /workspace\n", "{after}");
    let sh = exec(
        &sb,
        json!({"code": "echo $ONLY $(pwd)", "language": "bash", "env": {"ONLY": "it's"}, "workdir": "/tmp"}),
    )
    .await;
    assert_eq!(sh["stdout"], "it's /tmp\n", "{sh}");
    let sh = exec(
        &sb,
        json!({"code": "echo ${ONLY:-none} $(pwd)", "language": "bash"}),
    )
    .await;
    assert_eq!(sh["stdout"], "none /workspace\n", "{sh}");
}

#[tokio::test]
async fn named_contexts_are_isolated_and_can_be_listed_restarted_and_removed() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let (status, ctx) = sb
        .call(
            Method::POST,
            "/contexts",
            Some(json!({"language": "python", "cwd": "/tmp"})),
        )
        .await;
    assert_eq!(status, 200, "{ctx}");
    let id = ctx["id"].as_str().unwrap().to_string();
    assert_eq!(ctx["state"], "idle");
    assert_eq!(ctx["cwd"], "/tmp");
    let in_ctx = |code: &str| json!({"code": code, "context_id": id});
    exec(&sb, in_ctx("v = 'named'")).await;
    py(&sb, "v = 'default'").await;
    let named = exec(&sb, in_ctx("import os\nv, os.getcwd()")).await;
    assert_eq!(named["result"], "('named', '/tmp')", "{named}");
    assert_eq!(named["context_id"], id.as_str());
    assert_eq!(py(&sb, "v").await["result"], "'default'");

    let (_, list) = sb.call(Method::GET, "/contexts", None).await;
    let ids: Vec<&str> = list["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&"default-python"),
        "{list}"
    );

    // A language that is not the context's is refused; an unknown context is a 404.
    let (status, _) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "1", "context_id": id, "language": "bash"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "1", "context_id": "ctx_nope"})),
        )
        .await;
    assert_eq!(status, 404);

    let (status, restarted) = sb
        .call(Method::POST, &format!("/contexts/{id}/restart"), None)
        .await;
    assert_eq!(status, 200, "{restarted}");
    assert_eq!(restarted["starts"], 2);
    let gone = exec(&sb, in_ctx("v")).await;
    assert_eq!(
        gone["execution_error"]["name"], "NameError",
        "restart clears the state: {gone}"
    );

    let (status, _) = sb
        .call(Method::DELETE, &format!("/contexts/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = sb.call(Method::POST, "/execute", Some(in_ctx("1"))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn fresh_runs_a_new_process_without_the_context_state() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    py(&sb, "secret = 1").await;
    let fresh = exec(&sb, json!({"code": "print(secret)", "fresh": true})).await;
    assert_eq!(fresh["exit_code"], 1, "{fresh}");
    assert!(fresh["stderr"].as_str().unwrap().contains("NameError"));
    assert!(fresh.get("context_id").is_none(), "{fresh}");
    let pid = exec(
        &sb,
        json!({"code": "import os; print(os.getpid())", "fresh": true}),
    )
    .await;
    let pid2 = exec(
        &sb,
        json!({"code": "import os; print(os.getpid())", "fresh": true}),
    )
    .await;
    assert_ne!(pid["stdout"], pid2["stdout"], "a new process each time");
    assert_eq!(
        py(&sb, "secret").await["result"],
        "1",
        "the context is untouched"
    );
}

#[tokio::test]
async fn a_timeout_interrupts_the_run_and_the_context_keeps_its_state() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    for (language, setup, spin, check, expect) in [
        (
            "python",
            "kept = 5",
            "import time\nwhile True: time.sleep(0.05)",
            "print(kept)",
            "5\n",
        ),
        (
            "bash",
            "KEPT=6",
            "while true; do sleep 0.1; done",
            "echo $KEPT",
            "6\n",
        ),
        (
            "javascript",
            "globalThis.kept = 7",
            "while (true) {}",
            "console.log(kept)",
            "7\n",
        ),
    ] {
        exec(&sb, json!({"code": setup, "language": language})).await;
        let started = std::time::Instant::now();
        let out = exec(
            &sb,
            json!({"code": spin, "language": language, "timeout": 1}),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{language}: interrupted promptly"
        );
        assert_eq!(out["status"], "timeout", "{language}: {out}");
        assert_eq!(out["exit_code"], 124, "{language}");
        assert_eq!(
            out["execution_error"]["name"], "TimeoutError",
            "{language}: {out}"
        );
        let after = exec(&sb, json!({"code": check, "language": language})).await;
        assert_eq!(
            after["stdout"], expect,
            "{language}: state survives: {after}"
        );
        assert!(
            after.get("error").is_none() && after.get("execution_error").is_none(),
            "{language}: no restart: {after}"
        );
    }
}

#[tokio::test]
async fn a_crashed_context_is_restarted_by_the_next_run_which_says_so() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    py(&sb, "lost = 1").await;
    let crash = py(
        &sb,
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    )
    .await;
    assert_eq!(crash["success"], false, "{crash}");
    assert_eq!(crash["execution_error"]["name"], "ContextDied", "{crash}");
    let next = py(&sb, "print('ran')").await;
    assert_eq!(
        next["execution_error"]["name"], "ContextRestarted",
        "{next}"
    );
    let why = next["execution_error"]["value"].as_str().unwrap();
    assert!(why.contains("signal 9"), "the reason is named: {why}");
    assert!(
        !next["stdout"].as_str().unwrap().contains("ran"),
        "the code was not run"
    );
    assert_eq!(next["exit_code"], 1);
    let again = py(&sb, "print('ran'); 'lost' in globals()").await;
    assert_eq!(again["stdout"], "ran\n", "{again}");
    assert_eq!(again["result"], "False");
}

#[tokio::test]
async fn an_out_of_memory_kill_is_reported_and_the_next_run_restarts_the_context() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-memory-mb", "96"]).await;
    let sb = s.create("code-interpreter").await;
    let hog = py(&sb, "x = bytearray(512 * 1024 * 1024)").await;
    assert_eq!(hog["oom_killed"], true, "{hog}");
    assert_eq!(hog["execution_error"]["name"], "OutOfMemoryError", "{hog}");
    let next = py(&sb, "1 + 1").await;
    assert_eq!(
        next["execution_error"]["name"], "ContextRestarted",
        "{next}"
    );
    assert!(
        next["execution_error"]["value"]
            .as_str()
            .unwrap()
            .contains("out-of-memory"),
        "{next}"
    );
    assert_eq!(py(&sb, "1 + 1").await["result"], "2");
}

#[tokio::test]
async fn contexts_output_and_results_are_bounded() {
    let s = Server::start_with(
        Some("test-key"),
        &["--max-contexts", "2", "--output-cap-bytes", "4096"],
    )
    .await;
    let sb = s.create("code-interpreter").await;
    let big = py(&sb, "print('x' * 100_000)").await;
    assert_eq!(big["stdout_truncated"], true, "{}", big["stdout_truncated"]);
    assert!(big["stdout"].as_str().unwrap().len() < 8192);
    // Results are bounded per run (4 x the output cap, at least 1 MiB).
    let huge = py(
        &sb,
        "from IPython.display import HTML, display\ndisplay(HTML('y' * 3_000_000))\n1",
    )
    .await;
    assert!(
        huge.get("html").is_none(),
        "the oversized result was dropped"
    );
    assert!(
        huge["stderr"].as_str().unwrap().contains("dropped"),
        "{}",
        huge["stderr"]
    );
    assert_eq!(huge["result"], "1", "the rest still arrives");
    // default-python exists (warm); one more fits, the third is refused.
    let (status, _) = sb
        .call(Method::POST, "/contexts", Some(json!({"language": "bash"})))
        .await;
    assert_eq!(status, 200);
    let (status, body) = sb
        .call(Method::POST, "/contexts", Some(json!({"language": "bash"})))
        .await;
    assert_eq!(status, 429, "{body}");
    let (status, _) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "1", "language": "javascript"})),
        )
        .await;
    assert_eq!(status, 429, "a new default context counts too");
}
