//! Sandbox networking against the real server and a "fake internet" this test builds
//! (`common/fake_internet.rs`): a network namespace with a host at 203.0.113.10 (TEST-NET-3)
//! serving DNS, HTTP, HTTPS with a self-signed certificate and a tiny package index.
//! Every packet stays on this machine: sandboxes reach only loopback and that namespace.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::fake_internet::{FakeInternet, FAKE_HOST, FAKE_HOST_SIDE};
use common::network::{bash, create, server};
use common::{send, Sandbox};
use reqwest::Method;
use serde_json::json;

/// A Python probe: "open", "refused", "unreachable", "timeout" or "reset" per address.
const PROBE: &str = r#"
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, int(port))); print(target, "open")
    except ConnectionRefusedError: print(target, "refused")
    except OSError as e:
        print(target, "unreachable" if e.errno in (101, 113) else "timeout" if isinstance(e, TimeoutError) else f"error {e}")
"#;

async fn probe(sb: &Sandbox, targets: &[&str]) -> Vec<String> {
    let out = bash(
        sb,
        &format!(
            "cat > /tmp/probe.py <<'PY'\n{PROBE}\nPY\npython3 /tmp/probe.py {}",
            targets.join(" ")
        ),
    )
    .await;
    out.lines()
        .map(|l| l.rsplit_once(' ').map_or(l, |(_, v)| v).to_string())
        .collect()
}

/// `curl` inside the sandbox: the body, or `curl-exit-<code>`.
async fn curl(sb: &Sandbox, args: &str) -> String {
    bash(
        sb,
        &format!("curl -s --max-time 8 {args} || echo curl-exit-$?"),
    )
    .await
    .trim()
    .to_string()
}

#[tokio::test]
async fn with_internet_a_sandbox_reaches_the_fake_host_by_address_and_name_and_pip_installs() {
    let _fake = FakeInternet::get();
    let s = server(&[]).await;
    let (sb, wire) = create(&s, json!({"internet_access": true})).await;
    assert_eq!(wire["internet_access_available"], true, "{wire}");
    assert_eq!(
        curl(&sb, &format!("http://{FAKE_HOST}/hello.txt")).await,
        "hello from the fake internet"
    );
    assert_eq!(
        curl(&sb, "http://fake.test/hello.txt").await,
        "hello from the fake internet"
    );
    assert_eq!(
        curl(&sb, "-k https://fake.test/hello.txt").await,
        "hello from the fake internet"
    );
    let out = bash(
        &sb,
        "python3 -m pip install -q --no-cache-dir --disable-pip-version-check \
         --index-url http://fake.test/simple/ --trusted-host fake.test \
         --target /workspace/lib tinypkg >/dev/null 2>&1; \
         PYTHONPATH=/workspace/lib python3 -c 'import tinypkg; print(tinypkg.VALUE)'",
    )
    .await;
    assert_eq!(out.trim(), "42", "pip install from the fake index: {out}");

    let (status, m) = sb.call(Method::GET, "/metrics/snapshot", None).await;
    assert_eq!(status, 200);
    assert!(
        m["network"]["bytes_in"].as_u64().unwrap() > 1000
            && m["network"]["bytes_out"].as_u64().unwrap() > 100,
        "traffic is counted: {m}"
    );
    let (_, page) = send(
        s.http
            .get(format!("{}/metrics", s.url))
            .header("X-API-Key", "test-key"),
    )
    .await;
    assert!(
        page.as_str().unwrap().contains(&format!(
            "sandlot_sandbox_network_received_bytes_total{{sandbox=\"{}\"}}",
            sb.id
        )),
        "the Prometheus page has the byte counters"
    );
}

#[tokio::test]
async fn host_addresses_metadata_private_ranges_and_other_sandboxes_are_refused() {
    let _fake = FakeInternet::get();
    let s = server(&[]).await;
    // A listener on every host address: the sandbox must not reach any of them.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_port = s.url.rsplit(':').next().unwrap().to_string();
    let (a, _) = create(&s, json!({"internet_access": true})).await;
    let (b, _) = create(&s, json!({"internet_access": true})).await;
    let gateway = bash(&a, "awk '/nameserver/{print $2}' /etc/resolv.conf").await;
    let b_address = {
        let gw: std::net::Ipv4Addr = bash(&b, "awk '/nameserver/{print $2}' /etc/resolv.conf")
            .await
            .trim()
            .parse()
            .unwrap();
        std::net::Ipv4Addr::from(u32::from(gw) + 1)
    };
    b.background(json!({"code": "python3 -m http.server 8080", "language": "bash"}))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let targets = [
        format!("{}:{port}", gateway.trim()),
        format!("{FAKE_HOST_SIDE}:{port}"),
        format!("{}:{server_port}", gateway.trim()),
        "169.254.169.254:80".to_string(),
        "10.0.0.1:80".to_string(),
        "192.168.1.1:80".to_string(),
        format!("{b_address}:8080"),
        format!("{FAKE_HOST}:80"),
    ];
    let targets: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
    let verdicts = probe(&a, &targets).await;
    assert_eq!(
        verdicts,
        ["refused", "refused", "refused", "refused", "refused", "refused", "refused", "open"],
        "probing {targets:?}"
    );
    // The other sandbox's server is up: only the path between sandboxes is closed.
    assert_eq!(probe(&b, &["127.0.0.1:8080"]).await, ["open"]);
    drop(listener);
}

#[tokio::test]
async fn rules_let_an_allowed_cidr_and_name_through_and_refuse_the_rest_and_a_mismatching_sni() {
    let _fake = FakeInternet::get();
    let s = server(&[]).await;
    let (sb, wire) = create(
        &s,
        json!({"internet_access": true,
               "network": {"allow_out": ["fake.test", "198.51.100.0/24"], "deny_out": ["0.0.0.0/0"]}}),
    )
    .await;
    assert_eq!(
        wire["network"]["allow_out"],
        json!(["fake.test", "198.51.100.0/24"])
    );
    // The allowed name works over HTTP and HTTPS.
    assert_eq!(
        curl(&sb, "-k https://fake.test/hello.txt").await,
        "hello from the fake internet"
    );
    assert_eq!(
        curl(&sb, "http://fake.test/hello.txt").await,
        "hello from the fake internet"
    );
    // Another name does not resolve, fast.
    let out = bash(
        &sb,
        "python3 -c \"import socket,time; t=time.time()\ntry: socket.gethostbyname('other.test'); print('resolved')\nexcept OSError: print('refused', time.time()-t < 1)\"",
    )
    .await;
    assert_eq!(out.trim(), "refused True");
    // The same address with a forbidden SNI or Host is refused; so is the bare address.
    let forbidden_sni = curl(
        &sb,
        "-k --resolve other.test:443:203.0.113.10 https://other.test/hello.txt",
    )
    .await;
    assert!(forbidden_sni.starts_with("curl-exit-"), "{forbidden_sni}");
    let forbidden_host = curl(&sb, "-H 'Host: other.test' http://203.0.113.10/hello.txt").await;
    assert!(forbidden_host.starts_with("curl-exit-"), "{forbidden_host}");
    // Other ports are judged by address: the host is outside the allowed CIDR.
    assert_eq!(probe(&sb, &["203.0.113.10:53"]).await, ["refused"]);
    let (status, b) = s
        .cp(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({"template_name": "base", "internet_access": true,
                        "network": {"allow_out": ["not a rule"]}})),
        )
        .await;
    assert_eq!(status, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("not a rule"), "{b}");
}

#[tokio::test]
async fn a_runtime_rule_update_takes_effect_on_new_connections() {
    let _fake = FakeInternet::get();
    let s = server(&[]).await;
    let (sb, _) = create(&s, json!({"internet_access": true})).await;
    assert_eq!(probe(&sb, &["203.0.113.10:80"]).await, ["open"]);
    let (status, b) = s
        .cp(
            Method::PUT,
            &format!("/v1/sandboxes/{}/network", sb.id),
            Some(json!({"deny_out": ["203.0.113.0/24"]})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["network"]["deny_out"], json!(["203.0.113.0/24"]));
    assert_eq!(probe(&sb, &["203.0.113.10:80"]).await, ["refused"]);
    let (status, _) = s
        .cp(
            Method::PUT,
            &format!("/v1/sandboxes/{}/network", sb.id),
            Some(json!({"allow_out": ["*.test"], "deny_out": ["0.0.0.0/0"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        curl(
            &sb,
            "-k --resolve other.test:443:203.0.113.10 https://other.test/hello.txt"
        )
        .await,
        "hello from the fake internet"
    );
    let (status, got) = s
        .cp(
            Method::GET,
            &format!("/v1/sandboxes/{}/network", sb.id),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["network"]["allow_out"], json!(["*.test"]));

    // A sandbox without internet has no rules to change.
    let (plain, _) = create(&s, json!({})).await;
    let (status, b) = s
        .cp(
            Method::PUT,
            &format!("/v1/sandboxes/{}/network", plain.id),
            Some(json!({"allow_out": []})),
        )
        .await;
    assert_eq!(status, 409, "{b}");
}

#[tokio::test]
async fn without_internet_nothing_is_reachable_and_dns_fails_fast() {
    let _fake = FakeInternet::get();
    let s = server(&[]).await;
    let (sb, wire) = create(&s, json!({"template_name": "code-interpreter"})).await;
    assert_eq!(wire["internet_access"], false);
    assert_eq!(wire["internet_access_available"], false);
    assert_eq!(
        probe(&sb, &["203.0.113.10:80", "10.0.0.1:80"]).await,
        ["unreachable", "unreachable"]
    );
    let out = bash(
        &sb,
        "python3 -c \"import socket,time; t=time.time()\ntry: socket.gethostbyname('fake.test'); print('resolved')\nexcept OSError: print('failed', time.time()-t < 1)\"",
    )
    .await;
    assert_eq!(out.trim(), "failed True");
    // The sandbox has no /sys; /proc/net/dev lists its namespace's interfaces.
    let interfaces: Vec<String> = bash(&sb, "tail -n +3 /proc/net/dev | cut -d: -f1")
        .await
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(interfaces, ["lo"], "only lo");
}

/// A WebSocket echo server on port 9000, Python standard library only.
/// The host interface that carries `gateway` (the sandbox's side of the pair is inside).
fn interface_with(gateway: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        (words.get(3)?.split('/').next()? == gateway).then(|| words[1].to_string())
    })
}

#[tokio::test]
async fn a_restart_sweeps_and_rebuilds_the_network_and_nothing_outlives_a_delete_or_shutdown() {
    let _fake = FakeInternet::get();
    let mut s = server(&[]).await;
    let (sb, _) = create(
        &s,
        json!({"internet_access": true, "network": {"deny_out": ["198.51.100.0/24"]}}),
    )
    .await;
    let gateway = bash(&sb, "awk '/nameserver/{print $2}' /etc/resolv.conf").await;
    let ifname = interface_with(gateway.trim()).expect("the host end of the sandbox's veth");
    s.crash_and_restart().await;
    // The sandbox came back with its network and rules.
    let (status, got) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["network"]["deny_out"], json!(["198.51.100.0/24"]));
    // The restarted server listens on another port.
    let sb = Sandbox {
        agent: got["public_host"].as_str().unwrap().into(),
        ..sb
    };
    assert_eq!(
        curl(&sb, "http://fake.test/hello.txt").await,
        "hello from the fake internet"
    );
    assert_eq!(probe(&sb, &["198.51.100.7:80"]).await, ["refused"]);
    let gateway = bash(&sb, "awk '/nameserver/{print $2}' /etc/resolv.conf").await;
    let ifname_now = interface_with(gateway.trim()).expect("rebuilt after the restart");
    let (status, _) = s
        .cp(Method::DELETE, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(status, 200);
    // The pair goes with the sandbox's namespace, which the kernel tears down just after.
    let deadline = Instant::now() + Duration::from_secs(5);
    for name in [&ifname, &ifname_now] {
        while std::path::Path::new("/sys/class/net").join(name).exists() {
            assert!(Instant::now() < deadline, "{name} outlived the delete");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let table = format!("sandlot_{}", &ifname[2..8]);
    s.terminate();
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&out.stdout);
    assert!(
        !tables.contains(&table),
        "the table goes at shutdown: {tables}"
    );
}

#[tokio::test]
async fn a_dead_server_s_table_is_removed_by_the_next_server_to_start() {
    // A server killed for good leaves its nftables table (NAT and filters for its range);
    // the next server to start anywhere sweeps its sandboxes and then the table.
    let _fake = FakeInternet::get();
    let mut dead = server(&[]).await;
    let (sb, _) = create(&dead, json!({"internet_access": true})).await;
    let gateway = bash(&sb, "awk '/nameserver/{print $2}' /etc/resolv.conf").await;
    let ifname = interface_with(gateway.trim()).expect("the sandbox's host-side interface");
    let table = format!("sandlot_{}", &ifname[2..8]);
    let tables = || {
        let out = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    dead.crash();
    assert!(
        tables().contains(&table),
        "a crash leaves the table: {}",
        tables()
    );

    let _next = server(&[]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while tables().contains(&table)
        || std::path::Path::new("/sys/class/net")
            .join(&ifname)
            .exists()
    {
        assert!(
            Instant::now() < deadline,
            "the dead server's table or interface {ifname} is still there: {}",
            tables()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Socket inodes of the host's netfilter netlink sockets (`/proc/net/netlink`, protocol 12).
fn netfilter_sockets() -> Vec<String> {
    std::fs::read_to_string("/proc/net/netlink")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode = f.get(9)?;
            (f.get(1) == Some(&"12")).then(|| format!("socket:[{inode}]"))
        })
        .collect()
}

/// `(fd, link target)` of every descriptor of a process.
fn descriptors(pid: u32) -> Vec<(String, String)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| {
                    let target = std::fs::read_link(e.path()).ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        target.to_string_lossy().into_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_firewall_socket_sandlotd_keeps_open_never_reaches_a_sandbox() {
    let _fake = FakeInternet::get();
    let s = server(&[]).await;
    let (sb, _) = create(&s, json!({"internet_access": true})).await;
    assert_eq!(bash(&sb, "echo up").await.trim(), "up");
    let netfilter = netfilter_sockets();
    let held: Vec<(String, String)> = descriptors(s.pid())
        .into_iter()
        .filter(|(_, target)| netfilter.contains(target))
        .collect();
    assert!(
        !held.is_empty(),
        "sandlotd keeps its nftables socket open between changes"
    );
    for (fd, target) in &held {
        let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", s.pid())).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_ne!(
            flags & libc::O_CLOEXEC as u32,
            0,
            "{target} (fd {fd}) is close-on-exec"
        );
    }
    // Nothing the server started (helpers, sandbox inits, the sandbox's processes) holds it.
    for pid in common::pids_with_cmdline("__sandbox") {
        for (_, target) in descriptors(pid as u32) {
            assert!(
                !held.iter().any(|(_, t)| *t == target),
                "{target} leaked into pid {pid}"
            );
        }
    }
}
