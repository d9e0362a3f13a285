#!/usr/bin/env bash
# `npm run example:browser`: the playground in one command. Starts a throwaway sandlotd on a
# free loopback port that allows the page's origin (--cors-origins), then the playground's
# backend with the Vite dev server on http://127.0.0.1:${PORT:-5173}/. Ctrl+C stops both.
# Needs root (sandlotd creates namespaces and cgroups), a built pkg/ and sandlotd
# (`npm run build` makes both).
set -euo pipefail
cd "$(dirname "$0")/../.."

port=${PORT:-5173}
[ -f pkg/package.json ] || { echo "pkg/ is missing: run npm run build" >&2; exit 1; }
[ -x target/release/sandlotd ] || { echo "target/release/sandlotd is missing: run npm run build" >&2; exit 1; }

data=$(mktemp -d /tmp/sandlot-playground.XXXXXX)
sandlot_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SANDLOT_URL="http://127.0.0.1:$sandlot_port"
export SANDLOT_API_KEY="playground-$RANDOM$RANDOM"   # stays in this shell and the backend
SANDLOT_LOG=${SANDLOT_LOG:-warn} ./target/release/sandlotd --listen "127.0.0.1:$sandlot_port" \
  --data-dir "$data" --api-key "$SANDLOT_API_KEY" \
  --cors-origins "http://127.0.0.1:$port,http://localhost:$port" &
sandlotd=$!
trap 'kill -TERM $sandlotd 2>/dev/null; wait $sandlotd 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 200); do
  curl -sf "$SANDLOT_URL/health" >/dev/null 2>&1 && break
  kill -0 $sandlotd 2>/dev/null || { echo "sandlotd exited" >&2; exit 1; }
  sleep 0.05
done
echo "sandlotd at $SANDLOT_URL"
node examples/browser/server.mjs --port "$port"
