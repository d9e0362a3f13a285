#!/usr/bin/env bash
# Runs every suite of the SDK: format and lints of the crate (wasm32), its wasm-bindgen tests
# under Node, then the JS end-to-end suites against a real sandlotd (the packed package
# installed into ESM and CJS projects, the web entry, every example script, and
# `tsc --noEmit --strict` on the TypeScript example). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[test-sdk]\033[0m %s\n' "$*"; }

export CARGO_TARGET_DIR="${SANDLOT_SDK_TARGET_DIR:-$PWD/target/sdk}"
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

say "cargo fmt --check (sdk crate)"
cargo fmt -p sandlot -- --check
say "cargo clippy --target wasm32-unknown-unknown (sdk crate)"
cargo clippy -p sandlot --target wasm32-unknown-unknown --all-targets -- -D warnings
say "wasm-bindgen tests under Node (config, errors, conversions, request core)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p sandlot --target wasm32-unknown-unknown

# The e2e suites test pkg/; rebuild it when it is missing or older than its sources.
if [ ! -f pkg/package.json ] || [ -n "$(find src pkg-template Cargo.toml Cargo.lock crates/protocol/src -newer pkg/package.json -print -quit)" ]; then
  say "pkg/ is missing or stale: building it"
  bash scripts/build-sdk.sh
fi
if [ -z "${SANDLOTD:-}" ] && [ ! -x target/release/sandlotd ]; then
  say "building sandlotd (release)"
  env -u CARGO_TARGET_DIR cargo build --release -p sandlot-server
fi

say "JS end-to-end suites (node:test) against a real sandlotd"
node tests/e2e/run.mjs
say "SDK suites passed"
