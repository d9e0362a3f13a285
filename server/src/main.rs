//! The `sandlotd` executable: see the library for what it does.

fn main() -> std::process::ExitCode {
    sandlot_server::main()
}
