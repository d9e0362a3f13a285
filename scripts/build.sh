#!/usr/bin/env bash
# Builds sandlotd (release) and, when the SDK build script exists, the wasm SDK package.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[build]\033[0m %s\n' "$*"; }

say "cargo build --release -p sandlot-server"
cargo build --release -p sandlot-server
if [ -f scripts/build-sdk.sh ]; then
  bash scripts/build-sdk.sh
fi
