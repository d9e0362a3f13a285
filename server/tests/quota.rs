//! The disk quota: a sandbox's `/workspace` holds at most `--sandbox-disk-mb`, writing
//! past it fails inside the sandbox, the host's free space drops by no more than the
//! quota, and `/tmp` is bounded in bytes and inodes.

mod common;

use common::{Sandbox, Server};
use reqwest::Method;

/// Host disk the server's quota volume takes (the image's allocated blocks): what the host
/// loses to sandbox writes, unaffected by anything else writing to the same disk.
fn volume_host_bytes(data_dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(data_dir.join("volume.img"))
        .map(|m| m.blocks() * 512)
        .unwrap_or_else(|e| panic!("the quota volume's image: {e}"))
}

async fn bash(sandbox: &Sandbox, code: &str) -> (String, String, i64) {
    let out = sandbox.run("bash", code).await;
    (
        out["stdout"].as_str().unwrap_or_default().to_string(),
        out["stderr"].as_str().unwrap_or_default().to_string(),
        out["exit_code"].as_i64().unwrap_or(-1),
    )
}

#[tokio::test]
async fn writing_past_the_quota_fails_inside_and_the_host_loses_no_more_than_the_quota() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-disk-mb", "64"]).await;
    let sandbox = s.create("code-interpreter").await;
    let before = volume_host_bytes(&s.data_dir);

    // 200 MiB asked, 64 MiB allowed.
    let (stdout, stderr, code) = bash(
        &sandbox,
        "dd if=/dev/urandom of=/workspace/big bs=1M count=200 2>&1; echo size=$(stat -c %s /workspace/big)",
    )
    .await;
    assert_ne!(code, -1, "{stderr}");
    assert!(stdout.contains("Disk quota exceeded"), "{stdout}");
    let size: u64 = stdout
        .rsplit("size=")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in {stdout}"));
    assert!(size <= 64 << 20, "wrote {size} bytes past a 64 MiB quota");
    assert!(size >= 48 << 20, "only {size} bytes fit in a 64 MiB quota");

    // Nothing more fits, not even a small file; deleting makes room again.
    let (_, stderr, code) = bash(&sandbox, "echo more > /workspace/more").await;
    assert_ne!(code, 0, "a write past the quota succeeded");
    assert!(stderr.contains("quota"), "{stderr}");
    let (_, stderr, code) = bash(
        &sandbox,
        "rm /workspace/big && sync && echo more > /workspace/more",
    )
    .await;
    assert_eq!(
        code, 0,
        "after a delete the workspace is writable again: {stderr}"
    );

    let used = volume_host_bytes(&s.data_dir).saturating_sub(before);
    assert!(
        used <= (64 + 16) << 20,
        "the host lost {} MiB for a 64 MiB quota",
        used >> 20
    );
}

#[tokio::test]
async fn the_quota_is_reported_as_disk_mb_and_each_sandbox_has_its_own() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-disk-mb", "32"]).await;
    let (a, b) = (
        s.create("code-interpreter").await,
        s.create("code-interpreter").await,
    );
    let (status, info) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", a.id), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["resources"]["disk_mb"], 32, "{info}");

    // Filling one sandbox leaves the other its whole quota.
    let (stdout, _, _) = bash(&a, "dd if=/dev/zero of=/workspace/fill bs=1M count=64 2>&1").await;
    assert!(stdout.contains("Disk quota exceeded"), "{stdout}");
    let (stdout, stderr, code) = bash(
        &b,
        "dd if=/dev/zero of=/workspace/f bs=1M count=24 2>&1 && echo ok",
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ok"));
}

#[tokio::test]
async fn tmp_is_bounded_in_bytes_and_inodes() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-tmp-mb", "8"]).await;
    let sandbox = s.create("code-interpreter").await;
    let (stdout, _, _) = bash(
        &sandbox,
        "dd if=/dev/zero of=/tmp/big bs=1M count=16 2>&1; rm -f /tmp/big",
    )
    .await;
    assert!(stdout.contains("No space left"), "{stdout}");
    // 8 MiB of /tmp allows 2,048 inodes: empty files run out of them long before bytes.
    let (stdout, _, _) = bash(
        &sandbox,
        "cd /tmp && for i in $(seq 4000); do : > f$i 2>/dev/null || { echo stopped=$i; break; }; done",
    )
    .await;
    let stopped: u32 = stdout
        .trim()
        .strip_prefix("stopped=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("4,000 empty files fit in an 8 MiB /tmp: {stdout}"));
    assert!(stopped <= 2049, "{stopped}");
}

#[tokio::test]
async fn with_the_quota_off_no_volume_is_made() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-disk-mb", "0"]).await;
    let sandbox = s.create("code-interpreter").await;
    let (stdout, stderr, code) = bash(&sandbox, "echo hi > /workspace/x && cat /workspace/x").await;
    assert_eq!((stdout.trim(), code), ("hi", 0), "{stderr}");
    assert!(!s.data_dir.join("volume.img").exists());
    assert!(s
        .data_dir
        .join("sandboxes")
        .join(&sandbox.id)
        .join("workspace")
        .join("x")
        .exists());
}

#[tokio::test]
async fn the_workspace_and_its_quota_survive_a_restart() {
    let mut s = Server::start_with(Some("test-key"), &["--sandbox-disk-mb", "32"]).await;
    let sandbox = s.create("code-interpreter").await;
    let (_, stderr, code) = bash(&sandbox, "echo kept > /workspace/note").await;
    assert_eq!(code, 0, "{stderr}");
    s.crash_and_restart().await;
    // The new server has a new port; the same token opens the sandbox there.
    let sandbox = Sandbox {
        agent: format!("{}/sandboxes/{}/agent", s.url, sandbox.id),
        ..sandbox
    };
    let (stdout, stderr, code) = bash(
        &sandbox,
        "cat /workspace/note; dd if=/dev/zero of=/workspace/f bs=1M count=64 2>&1",
    )
    .await;
    assert!(stdout.starts_with("kept"), "{stdout}{stderr} ({code})");
    assert!(stdout.contains("Disk quota exceeded"), "{stdout}");
}
