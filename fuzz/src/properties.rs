//! The fuzz targets as property tests, for machines without a nightly toolchain (cargo-fuzz
//! needs one for the sanitizers): `FUZZ_SECONDS=60 cargo test --release --lib -- --nocapture`
//! in `fuzz/`. Each target first runs its seed corpus (`corpus/<target>/`), then inputs made
//! by mutating the seeds, splicing them and random bytes, for `FUZZ_SECONDS` (default 5).
//! There is no coverage feedback: libFuzzer is far stronger, this only keeps the targets
//! running. An input that panics is written to `artifacts/<target>/` and fails the test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Byte strings a mutation likes to insert: JSON and query syntax, edge numbers, NUL.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e400",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775808",
    b"\\u0000",
    b"\\ud800",
    b"\x00",
    b"\xff",
    b"=",
    b"&",
    b"%",
    b"%00",
    b"+",
    b".",
    b"\n",
    b" ",
    b"/",
    b"\"code\":",
    b"\"workdir\":",
    b"\"working_dir\":",
    b"\"env\":{",
    b"\"env_vars\":{",
    b"\"timeout\":",
    b"\"language\":",
    b"\"template_id\":",
    b"since=",
    b"limit=",
    b"status=",
    b"Host: ",
    b"Origin: ",
    b"Content-Type: ",
    b"Content-Length: 1",
    b"localhost",
    b"[::1]",
    b"127.0.0.1",
    b"application/json",
    b"text/plain",
    b"+json",
    b";",
];

/// xorshift64*: enough randomness for mutations, reproducible with `FUZZ_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(16) == 0 {
        return (0..rng.below(256)).map(|_| rng.next() as u8).collect();
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 if at < data.len() => {
                let end = (at + 1 + rng.below(8)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                data.splice(at..at, other[from..to].iter().copied());
            }
            5 => data.truncate(at),
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

fn run(name: &str, target: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("corpus").join(name)) {
        for entry in entries.flatten() {
            if let Ok(data) = std::fs::read(entry.path()) {
                seeds.push(data);
            }
        }
    }
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs: u64 = 0;
    let mut inputs = seeds.clone().into_iter();
    loop {
        let data = match inputs.next() {
            Some(seed) => seed,
            None if Instant::now() < deadline => mutate(&mut rng, &seeds),
            None => break,
        };
        runs += 1;
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            let out = dir.join("artifacts").join(name);
            let _ = std::fs::create_dir_all(&out);
            let path = out.join(format!("crash-fallback-{seed:x}-{runs}"));
            let _ = std::fs::write(&path, &data);
            panic!(
                "{name}: input {runs} panicked (FUZZ_SEED={seed}); saved to {}",
                path.display()
            );
        }
    }
    println!(
        "{name}: {runs} runs in {seconds} s ({} seeds), no failure (FUZZ_SEED={seed})",
        seeds.len()
    );
}

#[test]
fn fuzz_request_bodies() {
    run("fuzz_request_bodies", crate::request_bodies);
}

#[test]
fn fuzz_token() {
    run("fuzz_token", crate::token);
}

#[test]
fn fuzz_since() {
    run("fuzz_since", crate::since);
}

#[test]
fn fuzz_query_and_guard() {
    run("fuzz_query_and_guard", crate::query_and_guard);
}
