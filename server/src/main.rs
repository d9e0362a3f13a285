//! sandlotd: a self-hosted sandbox server that speaks the HopX sandbox API.
//!
//! The same binary is also its own isolation helper: `__sandbox-init` and `__sandbox-exec`
//! are dispatched before any thread exists, so the helpers stay single-threaded.

mod api;
mod config;
mod exec;
mod ids;
mod node;
mod sandbox;
mod server;
mod shutdown;
mod store;
mod time;
mod token;
mod webhook;

use sandbox::isolation::{self, EXEC_SUBCOMMAND, INIT_SUBCOMMAND};

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(INIT_SUBCOMMAND) => isolation::init::main(),
        Some(EXEC_SUBCOMMAND) => isolation::exec::main(args.next()),
        _ => server::main(),
    }
}
