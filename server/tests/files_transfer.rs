//! Streamed file transfers against the real server: a 200 MB upload and download with the
//! server's memory watched, byte ranges, and the upload limit.

mod common;

use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

use common::files::{get, raw, write};
use common::{Sandbox, Server};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

/// VmRSS, or VmHWM (the peak), of a process, in KiB.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn sha256_file(path: &std::path::Path) -> Vec<u8> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().to_vec()
}

async fn upload_file(sb: &Sandbox, local: &std::path::Path, remote: &str) -> (u16, Value) {
    let file = tokio::fs::File::open(local).await.unwrap();
    let len = file.metadata().await.unwrap().len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name("big.bin");
    let form = reqwest::multipart::Form::new()
        .text("path", remote.to_string())
        .part("file", part);
    common::send(raw(sb, Method::POST, "/files/upload").multipart(form)).await
}

#[tokio::test]
async fn a_200_mb_upload_and_download_stream_with_flat_server_memory() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let dir = common::unique_temp_dir("sandlot-files-big");
    std::fs::create_dir_all(&dir).unwrap();
    let local = dir.join("big.bin");
    {
        use std::io::Write;
        let mut block = vec![0u8; MIB as usize];
        getrandom::fill(&mut block).unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(&local).unwrap());
        for i in 0..200u32 {
            block[..4].copy_from_slice(&i.to_le_bytes());
            f.write_all(&block).unwrap();
        }
    }
    let want = sha256_file(&local);
    let cp_started = Instant::now();
    std::fs::copy(&local, dir.join("copy.bin")).unwrap();
    let cp_secs = cp_started.elapsed().as_secs_f64();

    let before = vm_kib(s.pid(), "VmRSS:");
    let started = Instant::now();
    let (status, r) = upload_file(&sb, &local, "/workspace/big.bin").await;
    let up_secs = started.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["size"], 200 * MIB);
    let out = sb.sh("stat -c '%s %u' /workspace/big.bin; id -u").await;
    let uid = out.lines().nth(1).unwrap().to_string();
    assert_eq!(out.lines().next().unwrap(), format!("{} {uid}", 200 * MIB));

    let started = Instant::now();
    let resp = raw(&sb, Method::GET, "/files/download?path=/workspace/big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(200 * MIB));
    let mut stream = resp.bytes_stream();
    let fetched = dir.join("fetched.bin");
    let mut out = tokio::fs::File::create(&fetched).await.unwrap();
    while let Some(chunk) = stream.next().await {
        tokio::io::AsyncWriteExt::write_all(&mut out, &chunk.unwrap())
            .await
            .unwrap();
    }
    tokio::io::AsyncWriteExt::flush(&mut out).await.unwrap();
    let down_secs = started.elapsed().as_secs_f64();
    assert_eq!(std::fs::metadata(&fetched).unwrap().len(), 200 * MIB);
    assert_eq!(sha256_file(&fetched), want, "the download is the upload");
    let peak = vm_kib(s.pid(), "VmHWM:");
    let after = vm_kib(s.pid(), "VmRSS:");
    eprintln!(
        "200 MiB: upload {:.0} MiB/s, download {:.0} MiB/s, host cp {:.0} MiB/s; server RSS {} -> {} KiB (peak {} KiB)",
        200.0 / up_secs, 200.0 / down_secs, 200.0 / cp_secs, before, after, peak
    );
    assert!(
        peak < before + 40 * 1024,
        "server memory grew with the file: {before} KiB -> peak {peak} KiB"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn downloads_answer_single_byte_ranges() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let bytes: Vec<u8> = (0..=255u8).collect();
    use base64::Engine;
    write(
        &sb,
        json!({"path": "/workspace/r.bin", "encoding": "base64",
        "content": base64::engine::general_purpose::STANDARD.encode(&bytes)}),
    )
    .await;
    let ranged = |range: &'static str| {
        raw(&sb, Method::GET, "/files/download?path=/workspace/r.bin")
            .header("Range", range)
            .send()
    };
    let r = ranged("bytes=10-19").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/256");
    assert_eq!(r.headers()["content-length"], "10");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[10..20]);
    let r = ranged("bytes=-5").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[251..]);
    let r = ranged("bytes=250-").await.unwrap();
    assert_eq!(r.headers()["content-range"], "bytes 250-255/256");
    let r = ranged("bytes=300-").await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */256");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "RANGE_NOT_SATISFIABLE");
    let r = ranged("bytes=0-1,5-6").await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.bytes().await.unwrap().len()),
        (200, 256),
        "several ranges: the whole file"
    );
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_and_leave_nothing_behind() {
    let s = Server::start_with(Some("test-key"), &["--max-upload-mb", "1"]).await;
    let sb = s.create("code-interpreter").await;
    let dir = common::unique_temp_dir("sandlot-files-limit");
    std::fs::create_dir_all(&dir).unwrap();
    let local = dir.join("three.bin");
    std::fs::write(&local, vec![7u8; 3 * MIB as usize]).unwrap();
    // Declared length over the limit: refused before a byte is written.
    let (status, r) = upload_file(&sb, &local, "/workspace/three.bin").await;
    assert_eq!(
        (status, r["code"].as_str()),
        (413, Some("FILE_TOO_LARGE")),
        "{r}"
    );
    // No declared length (chunked): refused while streaming, the partial file removed.
    let chunks = futures_util::stream::iter(
        (0..3).map(|_| Ok::<_, std::io::Error>(vec![7u8; MIB as usize])),
    );
    let part =
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(chunks)).file_name("c.bin");
    let form = reqwest::multipart::Form::new()
        .text("path", "/workspace/chunked.bin")
        .part("file", part);
    let resp = raw(&sb, Method::POST, "/files/upload")
        .multipart(form)
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, list) = get(&sb, "/files/list", "/workspace").await;
    assert_eq!(list["count"], 0, "nothing left behind: {list}");

    // Under the limit, with the file part first and a /tmp target (staged, then moved).
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"small".to_vec()).file_name("s.txt"),
        )
        .text("path", "/tmp/sub/s.txt");
    let (status, r) = common::send(raw(&sb, Method::POST, "/files/upload").multipart(form)).await;
    assert_eq!(status, 200, "{r}");
    let (_, r) = get(&sb, "/files/read", "/tmp/sub/s.txt").await;
    assert_eq!(r["content"], "small");
    let (_, list) = get(&sb, "/files/list", "/workspace").await;
    assert_eq!(list["count"], 0, "the staging file is gone: {list}");
    let _ = std::fs::remove_dir_all(&dir);
}
