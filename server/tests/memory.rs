//! Bounded memory for finished processes: once a process has ended (and a short linger for
//! reconnecting streams is over) its output lives in the store, not in RAM; reads still find
//! it there, and the store's caps drop the oldest finished output first, saying so.

mod common;

use std::time::{Duration, Instant};

use common::{Sandbox, Server, SseEvent, SseParser};
use reqwest::Method;
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;

/// Python that really writes 4 MiB to stdout: 64 writes of 64 lines of 1 KiB.
const FOUR_MIB: &str = "import sys\nchunk = ('x' * 1023 + '\\n') * 64\nfor _ in range(64):\n    sys.stdout.write(chunk)\nsys.stdout.flush()";

/// VmRSS of a process, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// `GET /execute/processes`; without output when `with_output` is false (cheap polling).
async fn list(sb: &Sandbox, with_output: bool) -> Vec<Value> {
    let path = if with_output {
        "/execute/processes"
    } else {
        "/execute/processes?output=false"
    };
    let (status, body) = sb.call(Method::GET, path, None).await;
    assert_eq!(status, 200, "list failed: {body}");
    body["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("a processes array: {body}"))
        .clone()
}

fn record<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|p| p["process_id"] == id)
        .unwrap_or_else(|| panic!("process {id} is listed"))
}

fn is_final(p: &Value) -> bool {
    !matches!(p["status"].as_str(), Some("queued") | Some("running"))
}

/// Polls the output-less list until every one of `ids` is final (without pulling megabytes
/// of output through the server while it is being measured).
async fn wait_all_final(sb: &Sandbox, ids: &[String], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let all = list(sb, false).await;
        let pending: Vec<&String> = ids
            .iter()
            .filter(|id| {
                !all.iter()
                    .any(|p| p["process_id"] == id.as_str() && is_final(p))
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} processes not final after {secs} s: {pending:?}",
            pending.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(sb: &Sandbox, code: &str) -> String {
    let p = sb
        .background(json!({"code": code, "language": "python"}))
        .await;
    p["process_id"].as_str().unwrap().to_string()
}

/// Concatenated `data` of the stdout and stderr events of a stream from the start, and its
/// last event (name, data).
async fn stream_from_start(sb: &Sandbox, id: &str) -> (String, String, (String, Value)) {
    let mut resp = sb
        .http
        .get(format!("{}/execute/processes/{id}/stream", sb.agent))
        .header("Authorization", format!("Bearer {}", sb.token))
        .send()
        .await
        .expect("stream request reaches sandlotd");
    assert_eq!(resp.status(), 200, "streaming {id}");
    let (mut out, mut err, mut last) = (String::new(), String::new(), None);
    let mut parser = SseParser::default();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("a finished process's stream ends")
        .expect("stream reads")
    {
        for SseEvent { event, data, .. } in parser.push(&chunk) {
            match event.as_str() {
                "stdout" => out.push_str(data["data"].as_str().unwrap()),
                "stderr" => err.push_str(data["data"].as_str().unwrap()),
                _ => {}
            }
            last = Some((event, data));
        }
    }
    (out, err, last.expect("the stream has events"))
}

#[tokio::test]
async fn rss_grows_less_than_64_mib_after_40_runs_printing_4_mib_each_and_every_record_stays_listed(
) {
    let s = Server::start_with(Some("test-key"), &["--finished-linger-secs", "0"]).await;
    let sb = s.create("code-interpreter").await;
    // One run first, so what every run needs once (buffers, the store's cache, allocator
    // arenas) is in the baseline.
    let warm_up = start(&sb, FOUR_MIB).await;
    wait_all_final(&sb, std::slice::from_ref(&warm_up), 60).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = vm_rss_kib(s.pid());

    let mut ids = Vec::new();
    for _ in 0..10 {
        // Four at a time: the runs themselves never hold much output in flight at once.
        let batch = [
            start(&sb, FOUR_MIB).await,
            start(&sb, FOUR_MIB).await,
            start(&sb, FOUR_MIB).await,
            start(&sb, FOUR_MIB).await,
        ];
        wait_all_final(&sb, &batch, 120).await;
        ids.extend(batch);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = vm_rss_kib(s.pid());
    let growth = after.saturating_sub(before);
    assert!(
        growth < 64 * 1024,
        "sandlotd's RSS grew by {:.1} MiB over 40 finished runs of 4 MiB of output each \
         ({before} KiB before, {after} KiB after): finished output must leave RAM",
        growth as f64 / 1024.0
    );

    let all = list(&sb, false).await;
    assert_eq!(
        all.len(),
        41,
        "the warm-up and all 40 runs stay listed: {} records",
        all.len()
    );
    for id in std::iter::once(&warm_up).chain(&ids) {
        let p = record(&all, id);
        assert_eq!(
            (p["status"].as_str(), p["exit_code"].as_i64()),
            (Some("completed"), Some(0)),
            "{p}"
        );
        assert!(
            p["stdout_bytes"].as_u64().unwrap_or(0) >= 4 * MIB,
            "every byte written is counted: {p}"
        );
        assert_eq!(p["stdout_truncated"], true, "{p}");
        assert!(p.get("output_evicted").is_none(), "nothing evicted: {p}");
    }
    // The output itself comes back from the store: head and tail within the 1 MiB cap.
    let first = sb.process(&ids[0]).await;
    let out = first["stdout"].as_str().unwrap();
    assert!(
        out.starts_with(&format!("{}\n", "x".repeat(1023)))
            && out.ends_with(&format!("{}\n", "x".repeat(1023))),
        "head and tail are kept"
    );
    let kept = out.len() as u64;
    assert!(
        (MIB..MIB + 4096).contains(&kept),
        "about the 1 MiB cap is kept (plus the gap marker), got {kept} bytes"
    );
}

#[tokio::test]
async fn stored_output_over_the_per_sandbox_cap_evicts_the_oldest_first_and_says_so() {
    let s = Server::start_with(
        Some("test-key"),
        &[
            "--max-stored-output-mb-per-sandbox",
            "1",
            "--output-cap-bytes",
            "262144",
            "--finished-linger-secs",
            "0",
        ],
    )
    .await;
    let sb = s.create("code-interpreter").await;
    // Eight runs, one after the other, each printing 300 lines of 1,000 bytes (300,000 bytes,
    // so ~256 KiB is kept) and exiting with its own number. Four of them already exceed 1 MiB.
    let mut ids = Vec::new();
    for i in 0..8 {
        let code = format!(
            "import sys\nsys.stdout.write(''.join(f'{i}:{{n:05d}}:' + 'y' * 991 + '\\n' for n in range(300)))\nsys.stdout.flush()\nsys.exit({i})"
        );
        let id = start(&sb, &code).await;
        let done = sb.wait_final(&id, 30).await;
        assert_eq!(done["exit_code"], i, "{done}");
        ids.push(id);
    }

    // Eviction happens as records are stored; give the last one a moment to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let all = list(&sb, true).await;
        if record(&all, &ids[0])["output_evicted"] == true || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mut evicted = Vec::new();
    let mut kept_bytes = 0;
    for (i, id) in ids.iter().enumerate() {
        let p = record(&all, id);
        let expected_status = if i == 0 { "completed" } else { "failed" };
        assert_eq!(
            (p["status"].as_str(), p["exit_code"].as_u64()),
            (Some(expected_status), Some(i as u64)),
            "run {i} keeps its status and exit code: {p}"
        );
        assert_eq!(
            p["stdout_bytes"], 300_000,
            "run {i} keeps its byte count: {p}"
        );
        let out = p["stdout"].as_str().unwrap();
        if p.get("output_evicted").is_some() {
            assert_eq!(
                p["output_evicted"], true,
                "run {i}: output_evicted is true when present"
            );
            assert_eq!(
                (out, p["stderr"].as_str()),
                ("", Some("")),
                "run {i}: evicted output is gone"
            );
            evicted.push(i);
        } else {
            let line = |n: u32| format!("{i}:{n:05}:{}\n", "y".repeat(991));
            assert!(
                out.starts_with(&line(0)) && out.ends_with(&line(299)),
                "run {i}: kept output has its head and tail ({} bytes)",
                out.len()
            );
            assert_eq!(
                p["stdout_truncated"], true,
                "run {i}: {}",
                p["stdout_bytes"]
            );
            kept_bytes += out.len();
        }
    }
    let kept: Vec<usize> = (0..8).filter(|i| !evicted.contains(i)).collect();
    assert!(
        evicted.iter().all(|e| kept.iter().all(|k| e < k)),
        "the oldest are evicted first: evicted {evicted:?}, kept {kept:?}"
    );
    assert!(
        evicted.len() >= 4,
        "~256 KiB each: at most four fit under 1 MiB, evicted {evicted:?}"
    );
    assert!(
        kept.len() >= 2,
        "the newest output stays (~256 KiB each under a 1 MiB cap), kept {kept:?}"
    );
    assert!(
        kept_bytes <= (MIB + 4096) as usize,
        "what stays fits the 1 MiB cap: {kept_bytes} bytes kept"
    );

    // A single read says the same, and a stream from the start has no output, just the end.
    let oldest = sb.process(&ids[0]).await;
    assert_eq!(oldest["output_evicted"], true, "{oldest}");
    assert_eq!(oldest["stdout"], "", "{oldest}");
    let (out, err, (last, data)) = stream_from_start(&sb, &ids[0]).await;
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("", ""),
        "no output is replayed for an evicted record"
    );
    assert_eq!(last, "exit", "the stream still ends with the exit: {data}");
    assert_eq!(data["exit_code"], 0, "{data}");
}

#[tokio::test]
async fn a_finished_process_is_read_back_from_the_store_with_its_output() {
    let s = Server::start_with(Some("test-key"), &["--finished-linger-secs", "0"]).await;
    let sb = s.create("code-interpreter").await;
    let id = start(
        &sb,
        "import sys\nprint('hello from the store')\nprint('and its stderr', file=sys.stderr)\nsys.exit(3)",
    )
    .await;
    sb.wait_final(&id, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let p = sb.process(&id).await;
    assert_eq!(
        (
            p["status"].as_str(),
            p["exit_code"].as_i64(),
            p["stdout"].as_str(),
            p["stderr"].as_str(),
        ),
        (
            Some("failed"),
            Some(3),
            Some("hello from the store\n"),
            Some("and its stderr\n")
        ),
        "{p}"
    );
    assert_eq!(
        (p["stdout_bytes"].as_u64(), p["stderr_bytes"].as_u64()),
        (Some(21), Some(15))
    );
    assert!(p.get("output_evicted").is_none(), "{p}");
    assert!(p["completed_at"].is_string(), "{p}");

    let (out, err, (last, data)) = stream_from_start(&sb, &id).await;
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("hello from the store\n", "and its stderr\n"),
        "the stream from the start replays the stored output"
    );
    assert_eq!(last, "exit", "the stream ends with the exit: {data}");
    assert_eq!(
        (data["status"].as_str(), data["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{data}"
    );

    let all = list(&sb, true).await;
    assert_eq!(all.len(), 1);
    assert_eq!(record(&all, &id)["stdout"], "hello from the store\n");
}

#[tokio::test]
async fn a_process_reads_the_same_before_and_after_its_linger_ends() {
    let s = Server::start_with(Some("test-key"), &["--finished-linger-secs", "1"]).await;
    let sb = s.create("code-interpreter").await;
    let id = start(
        &sb,
        "import sys\nfor i in range(2000):\n    print(f'line {i}')\n    if i % 500 == 0: print(f'err {i}', file=sys.stderr)\nsys.exit(1)",
    )
    .await;
    sb.wait_final(&id, 30).await;
    // Within the linger: from RAM.
    let live = sb.process(&id).await;
    let live_stream = stream_from_start(&sb, &id).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // After it: from the store.
    let stored = sb.process(&id).await;
    let stored_stream = stream_from_start(&sb, &id).await;

    for field in [
        "status",
        "exit_code",
        "stdout",
        "stderr",
        "stdout_bytes",
        "stderr_bytes",
        "stdout_truncated",
        "started_at",
        "completed_at",
    ] {
        assert_eq!(
            live[field], stored[field],
            "{field} reads the same after the linger"
        );
    }
    let expected: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(stored["stdout"], expected.as_str());
    assert_eq!(
        (live_stream.0.as_str(), live_stream.1.as_str()),
        (expected.as_str(), "err 0\nerr 500\nerr 1000\nerr 1500\n"),
        "the stream within the linger"
    );
    assert_eq!(
        (stored_stream.0, stored_stream.1),
        (live_stream.0, live_stream.1),
        "a stream from the start reads the same after the linger"
    );
    assert_eq!(stored_stream.2 .0, "exit");
    assert_eq!(stored_stream.2 .1["exit_code"], 1);
}
