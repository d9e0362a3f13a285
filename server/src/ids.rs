//! Identifiers in the shapes HopX clients expect.

use std::time::SystemTime;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_suffix(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Sandbox ids look like HopX's: 10-digit Unix time + 8 lowercase alphanumerics.
pub fn sandbox_id() -> String {
    format!(
        "{}{}",
        crate::time::unix_seconds(SystemTime::now()),
        random_suffix(8)
    )
}

pub fn process_id() -> String {
    format!("proc_{}", random_suffix(12))
}

pub fn context_id() -> String {
    format!("ctx_{}", random_suffix(12))
}

pub fn terminal_id() -> String {
    format!("term_{}", random_suffix(12))
}

pub fn execution_id() -> String {
    format!("exec_{}", random_suffix(12))
}

pub fn request_id() -> String {
    format!("req_{}", random_suffix(16))
}
