#!/usr/bin/env bash
# The background-execution flow over plain HTTP (curl + python3 for JSON), for a sandlotd
# at $SANDLOT_URL with key $SANDLOT_API_KEY.
set -euo pipefail
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
cp() { curl -sS -H "X-API-Key: $SANDLOT_API_KEY" -H 'Content-Type: application/json' "$@"; }

sandbox=$(cp -X POST "$SANDLOT_URL/v1/sandboxes" -d '{"template_name":"code-interpreter"}')
id=$(echo "$sandbox" | json "['id']")
agent=$(echo "$sandbox" | json "['public_host']")
token=$(echo "$sandbox" | json "['auth_token']")
ag() { curl -sS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
echo "sandbox $id"

code='import time
for i in range(3):
    print(f"step {i}")
    time.sleep(0.5)
print("done")'
body=$(python3 -c 'import json,sys; print(json.dumps({"code": sys.argv[1], "language": "python", "name": "long-task", "timeout": 60}))' "$code")
proc=$(ag -X POST "$agent/execute/background" -d "$body")
pid=$(echo "$proc" | json "['process_id']")
echo "started $pid ($(echo "$proc" | json "['status']"))"
while :; do
  p=$(ag "$agent/execute/processes/$pid")
  status=$(echo "$p" | json "['status']")
  echo "status: $status"
  case "$status" in completed|failed|killed|timeout) break ;; esac
  sleep 0.5
done
echo "stdout:"; echo "$p" | json "['stdout']"
cp -X DELETE "$SANDLOT_URL/v1/sandboxes/$id" >/dev/null
echo "sandbox killed"
