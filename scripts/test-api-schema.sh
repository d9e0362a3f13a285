#!/usr/bin/env bash
# Runs schemathesis (PyPI, in its own virtualenv) against a live sandlotd with the committed
# OpenAPI document: zero 5xx and zero responses outside the schema, within a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[api-schema]\033[0m %s\n' "$*"; }

venv=target/schemathesis-venv
st="$venv/bin/schemathesis"
[ -x "$st" ] || { say "schemathesis is missing: run scripts/setup.sh"; exit 1; }

data=$(mktemp -d /tmp/sandlot-schema-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SANDLOT_URL="http://127.0.0.1:$port" SANDLOT_API_KEY="schema-key-$RANDOM"
./target/release/sandlotd --listen "127.0.0.1:$port" --data-dir "$data" --api-key "$SANDLOT_API_KEY" \
  --max-sandboxes 200 --max-timeout-secs 30 2>"$data/server.log" &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
  umount -l "$data/volume" 2>/dev/null || true # left mounted if the server was killed
  rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "$SANDLOT_URL/health" >/dev/null && break; sleep 0.1; done
create() {
  curl -sf -X POST "$SANDLOT_URL/v1/sandboxes" -H "X-API-Key: $SANDLOT_API_KEY" \
    -H 'Content-Type: application/json' -d '{"template_name":"code-interpreter"}'
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
main_sandbox=$(create)
export SANDBOX_ID=$(field id <<<"$main_sandbox") SANDBOX_TOKEN=$(field auth_token <<<"$main_sandbox")
export DELETE_SANDBOX_ID=$(create | field id) PAUSE_SANDBOX_ID=$(create | field id)

say "schemathesis $("$st" --version | awk '{print $NF}') against $SANDLOT_URL (sandbox $SANDBOX_ID)"
status=0
"$st" --config-file tests/api/schemathesis.toml run docs/openapi.json --url "$SANDLOT_URL" || status=$?
if grep -q "panicked" "$data/server.log"; then
  say "sandlotd logged a panic:"; grep -A3 panicked "$data/server.log"; status=1
fi
if [ "$status" -ne 0 ]; then say "failed (exit $status)"; exit "$status"; fi
say "passed"
