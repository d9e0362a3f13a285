#!/usr/bin/env bash
# Runs every test suite: formatting and lints, Rust unit and integration tests (against the
# real sandlotd), then the SDK's suites (wasm tests, JS end-to-end, TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[test]\033[0m %s\n' "$*"; }

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (server and protocol)"
cargo clippy -p sandlot-server -p sandlot-protocol --all-targets -- -D warnings
say "cargo test (protocol unit tests, server unit and integration tests)"
cargo test -p sandlot-protocol -p sandlot-server
say "API schema: schemathesis against a live sandlotd (docs/openapi.json)"
bash scripts/test-api-schema.sh
say "compatibility: the official HopX Python SDK against sandlotd"
bash scripts/test-compat.sh
say "deployment: Kubernetes manifests (kustomize, strict schemas 1.28-1.33, policy)"
bash scripts/test-deploy.sh
if [ -f scripts/test-sdk.sh ]; then
  bash scripts/test-sdk.sh
fi
say "cluster mode: the suites against a local cluster's control plane, then failures and fencing"
bash scripts/test-cluster.sh
say "all suites passed"
