#!/usr/bin/env bash
# Starts a local sandlotd on a free loopback port, runs the background-execution example
# against it through the SDK, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server.sh

start_sandlotd
trap stop_sandlotd EXIT
echo "sandlotd is up at $SANDLOT_URL"

example=examples/complete-monitor.mjs
if [ -f "$example" ] && [ -d pkg ]; then
  node "$example"
else
  # Before the SDK existed: the same flow over plain HTTP.
  bash scripts/lib/walkthrough.sh
fi
