#!/usr/bin/env bash
# A local Sandlot cluster for development and tests (docs/cluster.md):
#   scripts/cluster.sh up       (also the default, and `npm run cluster`) Postgres (Debian's, its own data dir, socket + loopback), N node
#                               agents each in its own network namespace, and the control plane
#                               on loopback. Prints exactly `export SANDLOT_URL=…` and
#                               `export SANDLOT_API_KEY=…` on stdout: eval "$(scripts/cluster.sh up)"
#   scripts/cluster.sh down     stops everything it started and removes its namespaces
#   scripts/cluster.sh status   what runs, and the nodes as the control plane sees them
#   scripts/cluster.sh node-start N | node-stop N   (re)start or SIGKILL one node agent
#   scripts/cluster.sh control-start N | control-stop N   the same for a control plane replica
# Settings (environment): SANDLOT_CLUSTER_DIR (/tmp/sandlot-cluster), SANDLOT_CLUSTER_NODES (3),
# SANDLOT_CLUSTER_CONTROLS (control plane replicas, 1), SANDLOT_CLUSTER_LEASE_SECS (15),
# SANDLOT_CLUSTER_HEARTBEAT_SECS (3), SANDLOT_CLUSTER_NODE_CAPACITY (100),
# SANDLOT_CLUSTER_PREFIX (names of links and namespaces, "slc"), SANDLOT_CLUSTER_SUBNET
# (the nodes' /24, 10.231.0), SANDLOT_CLUSTER_CALLBACK_HOSTS (webhook hosts the nodes may call;
# default: the bridge address, where a receiver on the host is reached, and loopback), SANDLOTD (the binary).
# Node agents are started with `nsenter --net=`, not `ip netns exec`: the latter remounts
# /sys, and a node would find no cgroup hierarchy to put sandboxes in.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# The processes started here take their settings from flags: a client's SANDLOT_API_KEY (say,
# from an earlier `eval`) must not reach them.
unset SANDLOT_API_KEY SANDLOT_API_KEY_FILE SANDLOT_JOIN_TOKEN SANDLOT_JOIN_TOKEN_FILE SANDLOT_LISTEN \
  SANDLOT_DATA_DIR SANDLOT_PUBLIC_URL SANDLOT_DATABASE_URL

dir=${SANDLOT_CLUSTER_DIR:-/tmp/sandlot-cluster}
nodes=${SANDLOT_CLUSTER_NODES:-3}
controls=${SANDLOT_CLUSTER_CONTROLS:-1}
lease=${SANDLOT_CLUSTER_LEASE_SECS:-15}
heartbeat=${SANDLOT_CLUSTER_HEARTBEAT_SECS:-3}
capacity=${SANDLOT_CLUSTER_NODE_CAPACITY:-100}
prefix=${SANDLOT_CLUSTER_PREFIX:-slc}
subnet=${SANDLOT_CLUSTER_SUBNET:-10.231.0}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
say() { printf '\033[1m[cluster]\033[0m %s\n' "$*" >&2; }

sandlotd_bin() {
  for b in "${SANDLOTD:-}" "$repo/target/release/sandlotd" "$repo/target/debug/sandlotd"; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return; }
  done
  say "no sandlotd binary: run cargo build --release -p sandlot-server"; exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url, pid, what
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || { say "$3 exited; its log:"; tail -20 "$dir/$3.log" >&2; return 1; }
    sleep 0.05
  done
  say "$3 did not answer at $1"; tail -20 "$dir/$3.log" >&2; return 1
}

start_postgres() {
  mkdir -p "$dir/pg" "$dir/pgsock" "$dir/pglog"
  chown postgres: "$dir/pg" "$dir/pgsock" "$dir/pglog"; chmod 700 "$dir/pg"
  runuser -u postgres -- "$pgbin/initdb" -D "$dir/pg" -U sandlot -A trust -N --no-instructions >"$dir/pglog/init.log" 2>&1
  # TLS, as a managed Postgres or CloudNativePG has it: a CA of this cluster's own signs the
  # server's certificate (for 127.0.0.1); the control plane requires TLS and verifies it.
  local tls="$dir/pgtls"
  mkdir -p "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj "/CN=sandlot local cluster CA" -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$tls/san.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 7 -extfile "$tls/san.ext" -out "$tls/server.crt" 2>/dev/null
  chown postgres: "$tls/server.key" "$tls/server.crt"; chmod 600 "$tls/server.key"
  local port; port=$(free_port)
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pglog/postgres.log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $dir/pgsock -c fsync=off -c max_connections=200 \
     -c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key" start >/dev/null
  "$pgbin/psql" -h 127.0.0.1 -p "$port" -U sandlot -d postgres -qc 'CREATE DATABASE sandlot' >/dev/null
  echo "postgres://sandlot@127.0.0.1:$port/sandlot?sslmode=require" >"$dir/database-url"
}

make_network() {
  ip link add "$prefix-br0" type bridge
  ip addr add "$subnet.1/24" dev "$prefix-br0"
  ip link set "$prefix-br0" up
  for n in $(seq 1 "$nodes"); do
    ip netns add "$prefix-node$n"
    ip link add "$prefix-veth$n" type veth peer name eth0 netns "$prefix-node$n"
    ip link set "$prefix-veth$n" master "$prefix-br0" up
    ip -n "$prefix-node$n" addr add "$subnet.$((10 + n))/24" dev eth0
    ip -n "$prefix-node$n" link set eth0 up
    ip -n "$prefix-node$n" link set lo up
  done
}

start_control() { # index
  # Every replica listens on one shared port (SO_REUSEPORT: the kernel spreads connections,
  # as a Service would) and on one of its own, to reach a given replica.
  local i=$1 port own
  [ -f "$dir/control-port" ] || free_port >"$dir/control-port"
  port=$(cat "$dir/control-port"); own=$(free_port)
  local listen="127.0.0.1:$port,$subnet.1:$port,127.0.0.1:$own"
  SANDLOT_LOG=${SANDLOT_LOG:-info} setsid "$(sandlotd_bin)" control --listen "$listen" \
    --database-url "$(cat "$dir/database-url")" --database-ca-file "$dir/pgtls/ca.crt" \
    --public-url "http://127.0.0.1:$port" \
    --api-key-file "$dir/api-key" --join-token-file "$dir/join-token" \
    --token-private-key-file "$dir/keys/token-private.key" \
    --lease-secs "$lease" --heartbeat-secs "$heartbeat" >"$dir/control$i.log" 2>&1 &
  echo $! >"$dir/control$i.pid"
  echo "http://127.0.0.1:$port" >"$dir/control$i.url"
  echo "http://127.0.0.1:$own" >"$dir/control$i.own-url"
  echo "http://$subnet.1:$port" >"$dir/control$i.internal-url"
  wait_http "http://127.0.0.1:$own/health" "$(cat "$dir/control$i.pid")" "control$i"
}

start_node() { # index
  local n=$1 ip="$subnet.$((10 + $1))"
  mkdir -p "$dir/node$n"
  SANDLOT_LOG=${SANDLOT_LOG:-info} setsid nsenter --net="/run/netns/$prefix-node$n" "$(sandlotd_bin)" node \
    --listen "$ip:7071" --data-dir "$dir/node$n" --node-name "node$n" \
    --control-plane "$(cat "$dir/control1.internal-url")" --advertise "http://$ip:7071" \
    --join-token-file "$dir/join-token" --token-public-key-file "$dir/keys/token-public.key" \
    --max-sandboxes "$capacity" --network-cidr "10.$((200 + n)).0.0/16" \
    --webhook-allow-hosts "${SANDLOT_CLUSTER_CALLBACK_HOSTS:-$subnet.1,127.0.0.1}" >>"$dir/node$n.log" 2>&1 &
  echo $! >"$dir/node$n.pid"
  wait_http "http://$ip:7071/health" "$(cat "$dir/node$n.pid")" "node$n"
}

stop_pid() { # pid file, signal
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

ready_nodes() {
  curl -sf -H "X-API-Key: $(cat "$dir/api-key")" "$(cat "$dir/control1.url")/v1/cluster/nodes" |
    python3 -c 'import json,sys; print(sum(n["state"]=="ready" for n in json.load(sys.stdin)["nodes"]))'
}

up() {
  [ -e "$dir/database-url" ] && { say "a cluster is already up in $dir (scripts/cluster.sh down first)"; exit 1; }
  [ -n "$pgbin" ] || { say "no PostgreSQL server (apt-get install postgresql)"; exit 1; }
  mkdir -p "$dir"; chmod 755 "$dir"
  # A failure half way leaves nothing behind.
  trap 'say "up failed; removing what it started"; down' EXIT
  say "Postgres ($pgbin)"
  start_postgres
  "$(sandlotd_bin)" keygen --out "$dir/keys" >/dev/null
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/api-key"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/join-token"
  chmod 600 "$dir/api-key" "$dir/join-token"
  say "network: bridge $prefix-br0 ($subnet.1), namespaces $prefix-node1..$nodes"
  make_network
  for i in $(seq 1 "$controls"); do start_control "$i"; done
  say "control plane: $(cat "$dir/control1.url") ($controls replica(s))"
  for n in $(seq 1 "$nodes"); do start_node "$n"; done
  for _ in $(seq 1 $((heartbeat * 40 + 100))); do
    [ "$(ready_nodes 2>/dev/null || echo 0)" = "$nodes" ] && break
    sleep 0.05
  done
  [ "$(ready_nodes)" = "$nodes" ] || { say "the nodes did not all become ready"; exit 1; }
  say "$nodes nodes ready"
  trap - EXIT
  echo "export SANDLOT_URL=$(cat "$dir/control1.url")"
  echo "export SANDLOT_API_KEY=$(cat "$dir/api-key")"
}

down() {
  if [ -d "$dir" ]; then
    for f in "$dir"/control*.pid "$dir"/node*.pid; do [ -e "$f" ] && stop_pid "$f"; done
    if [ -f "$dir/pg/postmaster.pid" ]; then
      runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
  fi
  # The namespaces and links go by name, even when the state dir is gone.
  for n in $(seq 1 20); do
    ip netns del "$prefix-node$n" 2>/dev/null || true
    ip link del "$prefix-veth$n" 2>/dev/null || true
  done
  ip link del "$prefix-br0" 2>/dev/null || true
  for v in "$dir"/node*/volume; do [ -d "$v" ] && umount -l "$v" 2>/dev/null || true; done
  rm -rf "$dir"
  say "down"
}

status() {
  [ -f "$dir/control1.url" ] || { say "no cluster in $dir"; exit 1; }
  for f in "$dir"/*.pid; do
    local name; name=$(basename "$f" .pid)
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: stopped"; fi
  done
  curl -s -H "X-API-Key: $(cat "$dir/api-key")" "$(cat "$dir/control1.url")/v1/cluster/nodes"; echo
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  node-start) start_node "${2:?node number}" ;;
  node-stop) stop_pid "$dir/node${2:?node number}.pid" KILL ;;
  control-start) start_control "${2:?replica number}" ;;
  control-stop) stop_pid "$dir/control${2:?replica number}.pid" KILL ;;
  *) echo "usage: scripts/cluster.sh up|down|status|node-start N|node-stop N|control-start N|control-stop N" >&2; exit 2 ;;
esac
