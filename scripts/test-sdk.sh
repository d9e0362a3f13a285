#!/usr/bin/env bash
# Runs every suite of the SDK: format and lints of the crate (wasm32), its wasm-bindgen tests
# under Node and in headless Chromium, then the JS end-to-end suites against a real sandlotd
# (the packed package installed into ESM and CJS projects, the web entry, every example
# script, the browser examples driven in Chromium by playwright-core,
# `tsc --noEmit --strict` on the TypeScript example, and the `sandlot` command line run with
# `npx` from the packed tarball), and one smoke scenario in every runtime (Node ESM and CJS,
# Deno, Bun, headless Chromium, workerd: tests/runtimes/). Exits non-zero on any failure.
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

# The same tests in headless Chromium (Debian's chromium + chromium-driver). WASM_BINDGEN_USE_BROWSER
# makes the runner use the browser for a suite configured for Node; `wasm-pack test --chrome`
# would skip such a suite (and builds the whole workspace for wasm32). The output is checked,
# so a run that silently fell back to Node or ran nothing fails.
if [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ]; then
  say "wasm-bindgen tests in headless Chromium ($(/usr/bin/chromedriver --version | awk '{print $2}'))"
  log=$(mktemp)
  CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_USE_BROWSER=1 \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p sandlot --target wasm32-unknown-unknown 2>&1 | tee "$log"
  grep -q 'Running headless tests in Chrome' "$log" || { say "the wasm tests did not run in Chrome"; exit 1; }
  grep -Eq 'test result: ok\. [1-9][0-9]* passed' "$log" || { say "no wasm test passed in Chrome"; exit 1; }
  rm -f "$log"
elif [ -n "${CI:-}" ]; then
  say "chromium/chromedriver missing (scripts/setup.sh installs them): browser tests cannot run on CI"
  exit 1
else
  say "SKIPPED: wasm-bindgen tests in Chromium (no /usr/bin/chromium or /usr/bin/chromedriver; scripts/setup.sh installs them)"
fi

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
say "the sandlot command line (npx sandlot from the packed tarball) against a real sandlotd"
SANDLOT_REPO="$PWD" node --test --test-concurrency=1 tests/e2e/cli.test.mjs tests/e2e/cli-files.test.mjs
say "the smoke scenario in every runtime: Node ESM and CJS, Deno, Bun, headless Chromium, workerd"
SANDLOT_REPO="$PWD" node --test tests/e2e/runtimes.test.mjs
say "SDK suites passed"
