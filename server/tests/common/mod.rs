//! Test harness: starts the real `sandlotd` binary on a free loopback port with its own data
//! dir, and talks to it over HTTP.
#![allow(dead_code)]

pub mod fake_internet;
pub mod files;
pub mod first_run;
pub mod host_procs;
pub mod network;
pub mod terminal;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Server {
    pub url: String,
    pub data_dir: PathBuf,
    pub api_key: Option<String>,
    args: Vec<String>,
    child: Option<Child>,
    pub http: reqwest::Client,
}

/// A path under the temp dir that no other test uses (not created).
pub fn unique_temp_dir(prefix: &str) -> PathBuf {
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).unwrap();
    std::env::temp_dir().join(format!(
        "{prefix}-{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

impl Server {
    /// A server with an API key (`test-key`) and default limits.
    pub async fn start() -> Self {
        Self::start_with(Some("test-key"), &[]).await
    }

    pub async fn start_with(api_key: Option<&str>, extra: &[&str]) -> Self {
        Self::start_in(unique_temp_dir("sandlot-test"), api_key, extra).await
    }

    /// A server whose data dir is `dir` (created if needed; emptied when the server is
    /// dropped).
    pub async fn start_in(dir: PathBuf, api_key: Option<&str>, extra: &[&str]) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server {
            url: String::new(),
            data_dir: dir,
            api_key: api_key.map(str::to_string),
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            http: reqwest::Client::new(),
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let port = free_port();
        self.url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandlotd"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env_remove("SANDLOT_API_KEY")
            .env(
                "SANDLOT_LOG",
                std::env::var("SANDLOT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(key) = &self.api_key {
            cmd.arg("--api-key").arg(key);
        }
        self.child = Some(cmd.spawn().expect("start sandlotd"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(format!("{}/health", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "sandlotd did not become healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where the server keeps its sandboxes' directories: on the quota volume unless the
    /// quota is off.
    pub fn sandboxes_dir(&self) -> PathBuf {
        let on_volume = self.data_dir.join("volume").join("sandboxes");
        if on_volume.exists() {
            on_volume
        } else {
            self.data_dir.join("sandboxes")
        }
    }

    /// `kill -9` the server, then start it again on the same data dir.
    pub async fn crash_and_restart(&mut self) {
        self.crash();
        self.launch().await;
    }

    /// `kill -9` the server (`crash_and_restart` starts it again).
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `sig` (e.g. `libc::SIGINT`) to the server without waiting for it.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// Waits up to `within` for the server to exit and returns its exit status. `None` means
    /// it was still running: it is then killed with SIGKILL, so the test fails instead of
    /// hanging. Either way the server is gone afterwards (`crash_and_restart` starts it again).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let exited = self
                .child
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("try_wait on sandlotd");
            if let Some(status) = exited {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                let mut c = self.child.take().expect("running");
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn control(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(k) => rb.header("X-API-Key", k),
            None => rb,
        }
    }

    pub async fn cp(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.control(self.http.request(method, format!("{}{path}", self.url)));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        send(rb).await
    }

    pub async fn create(&self, template: &str) -> Sandbox {
        self.create_from(json!({"template_name": template})).await.0
    }

    /// A sandbox made from a whole create body; with the reply.
    pub async fn create_from(&self, body: Value) -> (Sandbox, Value) {
        let (status, body) = self
            .cp(reqwest::Method::POST, "/v1/sandboxes", Some(body))
            .await;
        assert_eq!(status, 201, "create failed: {body}");
        let sandbox = Sandbox {
            id: body["id"].as_str().unwrap().to_string(),
            agent: body["public_host"].as_str().unwrap().to_string(),
            token: body["auth_token"].as_str().unwrap().to_string(),
            http: self.http.clone(),
        };
        (sandbox, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate();
        }
        // A server that was killed leaves its quota volume mounted.
        if let Ok(volume) = std::ffi::CString::new(format!("{}/volume", self.data_dir.display())) {
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(volume.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = rb.send().await.expect("request reaches sandlotd");
    let status = resp.status().as_u16();
    assert!(
        resp.headers().contains_key("x-request-id"),
        "every response carries X-Request-ID"
    );
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A sandbox as a client sees it: its agent URL and token.
#[derive(Clone)]
pub struct Sandbox {
    pub id: String,
    pub agent: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Sandbox {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.agent))
            .header("Authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        send(rb).await
    }

    /// Runs code synchronously and returns the response body (asserting 200).
    pub async fn run(&self, language: &str, code: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/execute",
                Some(json!({"code": code, "language": language})),
            )
            .await;
        assert_eq!(status, 200, "execute failed: {body}");
        body
    }

    /// Runs bash and returns its stdout (asserting exit 0).
    pub async fn sh(&self, script: &str) -> String {
        let r = self.run("bash", script).await;
        assert_eq!(r["exit_code"], 0, "{script} failed: {r}");
        r["stdout"].as_str().unwrap().to_string()
    }

    pub async fn background(&self, body: Value) -> Value {
        let (status, reply) = self
            .call(reqwest::Method::POST, "/execute/background", Some(body))
            .await;
        assert_eq!(status, 200, "background failed: {reply}");
        reply
    }

    pub async fn process(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/execute/processes/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "get process failed: {body}");
        body
    }

    /// Polls until the process reaches a final status (or panics after `secs`).
    pub async fn wait_final(&self, id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.process(id).await;
            if !matches!(p["status"].as_str(), Some("queued") | Some("running")) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "process {id} still {} after {secs} s",
                p["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the process is running and has printed `marker`.
    pub async fn wait_output(&self, id: &str, marker: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.process(id).await;
            if p["stdout"].as_str().unwrap_or("").contains(marker) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "process {id} never printed {marker:?}: {p}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether a host pid is alive (and not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// `name value` lines (a probe's output) as a map.
pub fn key_values(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Host pids of every process whose command line contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// One parsed SSE event (comments are reported as `event == ":"`).
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// Splits an SSE byte stream into events as chunks arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: String,
}

impl SseParser {
    /// The events completed by `chunk` (blocks without an event or comment, such as the
    /// `retry:` line, are skipped).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf
            .push_str(std::str::from_utf8(chunk).expect("SSE is UTF-8"));
        let mut events = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut ev = SseEvent {
                id: None,
                event: "message".into(),
                data: Value::Null,
            };
            let mut any = false;
            for line in block.lines() {
                if let Some(c) = line.strip_prefix(':') {
                    ev.event = ":".into();
                    ev.data = Value::String(c.trim().into());
                    any = true;
                } else if let Some(v) = line.strip_prefix("id: ") {
                    ev.id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    ev.event = v.into();
                    any = true;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    ev.data = serde_json::from_str(v).expect("SSE data is JSON");
                }
            }
            if any {
                events.push(ev);
            }
        }
        events
    }
}

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Sandbox {
    /// Opens the agent's WebSocket `/execute/stream` with the sandbox token.
    pub async fn ws_connect(&self) -> WebSocket {
        self.ws_connect_at("/execute/stream").await
    }

    /// Opens the agent's WebSocket at `path` (and query) with the sandbox token.
    pub async fn ws_connect_at(&self, path: &str) -> WebSocket {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}{path}", self.agent.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket upgrade");
        ws
    }
}

/// The fork server: the server's child that started with `SANDLOT_ZYGOTE=1`.
pub fn zygote_pid(server_pid: u32) -> Option<i32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        (ppid == server_pid
            && String::from_utf8_lossy(&environ).contains("SANDLOT_ZYGOTE=1")
            && pid_alive(pid))
        .then_some(pid)
    })
}
