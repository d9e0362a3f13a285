//! sandlotd: a self-hosted sandbox server that speaks the HopX sandbox API.
//!
//! The binary (`main.rs`) only dispatches: the same executable is the server and its own
//! isolation helpers (`__sandbox-init`, `__sandbox-spawner`, `__sandbox-exec`, `__sandbox-pty`,
//! `__sandbox-zygote`), which run before any thread exists so they stay single-threaded. The library's public surface is that entry point
//! plus what the fuzz targets drive (token parsing, the router's input handling).

mod api;
mod cluster;
mod config;
mod contexts;
mod data_dir_lock;
mod exec;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod network;
mod node;
mod sandbox;
mod server;
mod shutdown;
mod store;
mod terminal;
mod time;
pub mod token;
mod webhook;

use sandbox::isolation::{
    self, EXEC_SUBCOMMAND, INIT_SUBCOMMAND, PTY_SUBCOMMAND, SPAWNER_SUBCOMMAND, ZYGOTE_SUBCOMMAND,
};

/// Runs sandlotd, or one of its isolation helpers, as the arguments say.
pub fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(INIT_SUBCOMMAND) => isolation::init::main(),
        Some(EXEC_SUBCOMMAND) => isolation::exec::main(),
        Some(PTY_SUBCOMMAND) => isolation::pty::main(),
        Some(ZYGOTE_SUBCOMMAND) => isolation::zygote::main(),
        Some(SPAWNER_SUBCOMMAND) => isolation::spawner::main(),
        _ => server::main(),
    }
}
