#!/usr/bin/env bash
# Compatibility: the official HopX Python SDK (hopx-ai 0.5.0, from PyPI, unmodified) against
# a throwaway sandlotd. The SDK lives in its own virtualenv (target/compat-venv, made by
# scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server.sh
say() { printf '\033[1m[test-compat]\033[0m %s\n' "$*"; }

venv=target/compat-venv   # made by scripts/setup.sh
start_sandlotd
trap stop_sandlotd EXIT
say "hopx-ai (Python) against $SANDLOT_URL"
"$venv/bin/python" tests/compat/hopx_python.py "$SANDLOT_URL" "$SANDLOT_API_KEY"
