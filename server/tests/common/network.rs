//! What the network suites share: a server whose sandboxes resolve through the fake
//! internet, sandboxes made with a body of the test's choice, shell scripts run in them.

use std::sync::atomic::{AtomicU8, Ordering};

use serde_json::{json, Value};

use super::{Sandbox, Server};

/// A server whose sandboxes resolve through the fake internet's DNS, with a range of its
/// own (tests run side by side).
pub async fn server(extra: &[&str]) -> Server {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let range = format!("10.{}.0.0/16", 160 + (std::process::id() as u8 % 40) + n);
    let mut args = vec![
        "--network-cidr",
        &range,
        "--network-dns-upstream",
        "203.0.113.10:53",
        "--sandbox-disk-mb",
        "0",
    ];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    Server::start_with(Some("test-key"), &args).await
}

pub async fn create(s: &Server, body: Value) -> (Sandbox, Value) {
    let mut body = body;
    body["template_name"] = json!("code-interpreter");
    s.create_from(body).await
}

/// Runs a shell script in the sandbox; returns its stdout (stderr is in the message).
pub async fn bash(sb: &Sandbox, script: &str) -> String {
    let r = sb.run("bash", script).await;
    format!(
        "{}{}",
        r["stdout"].as_str().unwrap_or(""),
        if r["stderr"].as_str().unwrap_or("").is_empty() {
            String::new()
        } else {
            format!("[stderr] {}", r["stderr"].as_str().unwrap())
        }
    )
}
