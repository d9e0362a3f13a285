#!/usr/bin/env bash
# Cluster mode (docs/cluster.md), against real local clusters from scripts/cluster.sh
# (Postgres, node agents in network namespaces, control plane replicas):
# 1. the SDK's end-to-end suites, the example scripts and the official HopX SDK suites (JS
#    and Python), unchanged, against the control plane of a 3-node cluster;
# 2. the cluster's own suite (tests/e2e/cluster.test.mjs: placement, failures, fencing,
#    router), which makes a cluster of its own with short leases.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[test-cluster]\033[0m %s\n' "$*"; }

export SANDLOT_CLUSTER_DIR=/tmp/sandlot-cluster-e2e SANDLOT_CLUSTER_PREFIX=sle SANDLOT_CLUSTER_SUBNET=10.233.0
bash scripts/cluster.sh down
trap 'bash scripts/cluster.sh down' EXIT
eval "$(bash scripts/cluster.sh up)"
say "SDK e2e suites and examples against the cluster's control plane ($SANDLOT_URL)"
SANDLOT_E2E_URL=$SANDLOT_URL SANDLOT_E2E_API_KEY=$SANDLOT_API_KEY SANDLOT_E2E_CALLBACK_HOST=$SANDLOT_CLUSTER_SUBNET.1 \
  node tests/e2e/run.mjs esm/sdk.test.mjs esm/sdk-resilience.test.mjs esm/sdk-streams.test.mjs esm/sdk-processes.test.mjs \
  esm/commands.test.mjs esm/files.test.mjs esm/terminal.test.mjs esm/hopx-js-compat.test.mjs \
  esm/network.test.mjs esm/contexts.test.mjs esm/web.test.mjs cjs/cjs.test.cjs esm/examples.test.mjs
say "the official HopX Python SDK against the cluster's control plane"
target/compat-venv/bin/python tests/compat/hopx_python.py "$SANDLOT_URL" "$SANDLOT_API_KEY"
bash scripts/cluster.sh down
trap - EXIT
unset SANDLOT_URL SANDLOT_API_KEY

say "the cluster suite: placement, node failure and fencing, the router"
node tests/e2e/run.mjs esm/cluster.test.mjs
