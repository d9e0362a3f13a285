#!/usr/bin/env bash
# Deployment manifests, offline (no cluster is needed, and none is reachable here): renders the
# Kustomize base and the example overlay, validates them strictly (unknown fields fail) against
# the API schemas of each Kubernetes version we support, then checks the rules the cluster
# design relies on (tests/deploy/policy.py). The Nomad jobs cannot be checked here: no nomad.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[test-deploy]\033[0m %s\n' "$*"; }

venv=target/deploy-venv   # made by scripts/setup.sh
out=target/deploy
versions=(1.28.0 1.29.0 1.30.0 1.31.0 1.32.0 1.33.0)
mkdir -p "$out"

if command -v kubectl >/dev/null; then
  say "rendering deploy/kubernetes/base and overlays/example (kubectl kustomize)"
  kubectl kustomize deploy/kubernetes/base >"$out/base.yaml"
  kubectl kustomize deploy/kubernetes/overlays/example >"$out/example.yaml"
  rendered=("$out/base.yaml" "$out/example.yaml")
  policy_args=(--base "$out/base.yaml" --overlay "$out/example.yaml")
else
  say "kubectl not found: cannot render Kustomize; checking the base's files as they are"
  for f in deploy/kubernetes/base/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || { cat "$f"; echo '---'; }
  done >"$out/base.yaml"
  rendered=("$out/base.yaml")
  policy_args=(--base "$out/base.yaml")
fi

for v in "${versions[@]}"; do
  say "kubernetes-validate --strict, Kubernetes $v"
  # --quiet prints only warnings and failures. A warning (say, an unknown kind) still exits 0,
  # so any output at all fails the step.
  if ! report=$("$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "${rendered[@]}" 2>&1) \
    || [ -n "$report" ]; then
    printf '%s\n' "$report"
    say "FAILED: the manifests do not validate against Kubernetes $v"
    exit 1
  fi
done

say "policy: tests/deploy/policy.py"
"$venv/bin/python" tests/deploy/policy.py "${policy_args[@]}"
