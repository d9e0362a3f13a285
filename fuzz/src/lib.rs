//! The bodies of sandlotd's fuzz targets, shared by the libFuzzer binaries (`fuzz_targets/`,
//! run by `cargo fuzz`) and the fallback property run (`cargo test --release --lib`, used by
//! `scripts/fuzz.sh` when no nightly toolchain is available).
//!
//! Every target must not panic on any input. Its properties are plain `assert!`s, so a broken
//! property is a crash that libFuzzer (or the fallback) reports with the input.
//!
//! Each target reads the server's own code through `sandlot_server::fuzzing`, which runs the
//! same functions a request goes through.

mod bodies;
mod guard;
mod since;
mod tokens;

pub use bodies::request_bodies;
pub use guard::query_and_guard;
pub use since::since;
pub use tokens::token;

#[cfg(test)]
mod properties;
