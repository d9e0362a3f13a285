//! What the first run in a python context sees of the shell's past: nothing.

use reqwest::Method;
use serde_json::{json, Value};

use super::Sandbox;

/// What a shell shows of its past in its first stored run.
const SHELL_STATE: &str = r#"
import json
ip = get_ipython()
hm = ip.history_manager
print(json.dumps({
    "count": ip.execution_count,
    "in": list(hm.input_hist_raw),
    "out": {str(k): repr(v) for k, v in hm.output_hist.items()},
    "ns": sorted(ip.user_ns),
    "last": repr(ip.last_execution_result),
    "caches": [repr(getattr(ip.displayhook, n)) for n in ("_", "__", "___")],
    "names": sorted(getattr(ip.compile, "_filename_map", {}).values()),
}))
"#;

/// Runs the first cell of `sb`'s default python context and checks that it sees what a new
/// IPython shell shows (made in a fresh process of the same sandbox): the driver's warm-up
/// runs, in the fork server and in a context made ahead, leave no trace.
pub async fn assert_no_past(sb: &Sandbox) {
    let ours = sb.run("python", SHELL_STATE).await;
    let reference = format!(
        "from IPython.core.interactiveshell import InteractiveShell\n\
         from traitlets.config import Config\n\
         c = Config()\n\
         c.HistoryManager.enabled = False\n\
         InteractiveShell.instance(config=c).run_cell({:?}, store_history=True)\n",
        SHELL_STATE
    );
    let (_, fresh) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": reference, "language": "python", "fresh": true})),
        )
        .await;
    let parse = |out: &Value| -> Value {
        serde_json::from_str(out["stdout"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    assert_eq!(parse(&ours), parse(&fresh), "{ours}\n{fresh}");
    assert_eq!(parse(&ours)["count"], 1);
}
