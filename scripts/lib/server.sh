# Shell helpers to run a throwaway sandlotd: `start_sandlotd` exports SANDLOT_URL and
# SANDLOT_API_KEY; `stop_sandlotd` stops it (SIGTERM) and removes its data dir.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_sandlotd() {
  SANDLOTD_DATA=$(mktemp -d /tmp/sandlot-demo.XXXXXX)
  local port; port=$(free_port)
  export SANDLOT_URL="http://127.0.0.1:$port"
  export SANDLOT_API_KEY="demo-key-$RANDOM$RANDOM"
  SANDLOT_LOG=${SANDLOT_LOG:-warn} ./target/release/sandlotd --listen "127.0.0.1:$port" \
    --data-dir "$SANDLOTD_DATA" --api-key "$SANDLOT_API_KEY" &
  SANDLOTD_PID=$!
  for _ in $(seq 1 200); do
    if curl -sf "$SANDLOT_URL/health" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SANDLOTD_PID" 2>/dev/null; then echo "sandlotd exited" >&2; return 1; fi
    sleep 0.05
  done
  echo "sandlotd did not become healthy" >&2
  return 1
}

stop_sandlotd() {
  if [ -n "${SANDLOTD_PID:-}" ] && kill -0 "$SANDLOTD_PID" 2>/dev/null; then
    kill -TERM "$SANDLOTD_PID"
    wait "$SANDLOTD_PID" 2>/dev/null || true
  fi
  # A server that was killed leaves its quota volume mounted.
  [ -n "${SANDLOTD_DATA:-}" ] && { umount -l "$SANDLOTD_DATA/volume" 2>/dev/null || true; rm -rf "$SANDLOTD_DATA"; }
  return 0
}
