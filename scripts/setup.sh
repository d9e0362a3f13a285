#!/usr/bin/env bash
# Installs what a fresh machine (Debian, Rust, Node 20, npm, python3) lacks to build and test
# Sandlot. Idempotent: every step checks first, so a second run takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION="0.2.130"   # must equal the `=` pin of wasm-bindgen in Cargo.toml
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Rust → wasm toolchain.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
if ! command -v wasm-pack >/dev/null; then
  say "installing wasm-pack (cargo install, a few minutes)"
  cargo install wasm-pack
fi
# wasm-pack would download wasm-bindgen from GitHub, which is unreachable here: install the
# exact CLI version with cargo so `--mode no-install` finds it on PATH.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (cargo install, a few minutes)"
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
fi

# Debian packages: the runtimes the code-interpreter template runs, and (for the browser
# tests) chromium + chromedriver. Only what is missing is installed.
need_apt=()
[ -x /usr/bin/python3 ] || need_apt+=(python3)
[ -x /usr/bin/node ] || need_apt+=(nodejs)
command -v curl >/dev/null || need_apt+=(curl)
# Sandbox networking (internet_access): NAT and per-sandbox egress rules (nftables; sandlotd
# loads its libnftables, or runs nft). sandlotd makes veth pairs itself (rtnetlink); iproute2
# is for the network tests' fake internet and for looking at the result.
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || need_apt+=(iproute2)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need_apt+=(nftables)
# The network tests' fake internet: a self-signed certificate, and pip inside a sandbox.
command -v openssl >/dev/null || need_apt+=(openssl)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# mkfs.btrfs makes the volume that holds every sandbox's quota-limited workspace.
command -v mkfs.btrfs >/dev/null || [ -x /usr/sbin/mkfs.btrfs ] || need_apt+=(btrfs-progs)
# The code-interpreter template's data stack (its python contexts run IPython; charts and
# tables come from matplotlib and pandas): Debian's packages, seen read-only in every sandbox.
for pkg in python3-ipython python3-numpy python3-pandas python3-matplotlib; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
if [ -n "${SANDLOT_BROWSER_TESTS:-1}" ] && [ "${SANDLOT_BROWSER_TESTS:-1}" != 0 ]; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  [ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The official HopX Python SDK, for the compatibility suite (its own virtualenv).
venv=target/compat-venv
if ! "$venv/bin/python" -c 'import hopx_ai' 2>/dev/null; then
  say "installing hopx-ai 0.5.0 (PyPI) into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q 'hopx-ai==0.5.0'
fi

# schemathesis (PyPI), which checks the live API against docs/openapi.json, in its own virtualenv.
st_venv=target/schemathesis-venv
if ! "$st_venv/bin/schemathesis" --version 2>/dev/null | grep -q '4.32.5'; then
  say "installing schemathesis 4.32.5 (PyPI) into $st_venv"
  rm -rf "$st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q 'schemathesis==4.32.5'
fi

# kubernetes-validate (PyPI), which checks the rendered Kubernetes manifests (deploy/kubernetes)
# offline against the API schemas of each Kubernetes version we support; its PyYAML also runs the
# deployment policy check. Own virtualenv.
kv_venv=target/deploy-venv
if [ "$("$kv_venv/bin/kubernetes-validate" --version 2>/dev/null)" != 1.37.0 ]; then
  say "installing kubernetes-validate 1.37.0 (PyPI) into $kv_venv"
  rm -rf "$kv_venv"
  python3 -m venv "$kv_venv"
  "$kv_venv/bin/pip" install -q 'kubernetes-validate==1.37.0'
fi

# Node dev dependencies (typescript, binaryen's wasm-opt, test tools).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm install"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
say "ready"
