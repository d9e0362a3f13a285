#!/usr/bin/env bash
# Builds the `sandlot` npm package into pkg/: one release wasm (size-tuned `wasm-release`
# profile), JS glue for the web and nodejs targets, wasm-opt -Os, then pkg-template/ merged
# in and minified (scripts/assemble-sdk.mjs). Prints the sizes, and fails when the package is
# over its size budget (scripts/sdk-size.mjs).
#
# Needs: the wasm32-unknown-unknown target, wasm-pack, and wasm-bindgen-cli at exactly the
# version Cargo.lock pins (wasm-pack --mode no-install refuses to download anything), and
# npm devDependencies (binaryen's wasm-opt). scripts/setup.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# A target dir of its own, so SDK builds never wait on the server build's cargo lock.
export CARGO_TARGET_DIR="${SANDLOT_SDK_TARGET_DIR:-$PWD/target/sdk}"
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
built="$CARGO_TARGET_DIR/wasm-pack"

for target in web nodejs; do
  dir=$([ "$target" = nodejs ] && echo node || echo "$target")
  echo "==> wasm-pack build --target $target"
  wasm-pack --log-level warn build --mode no-install --no-pack --no-gitignore --no-opt \
    --target "$target" --out-dir "$built/$dir" --out-name sandlot \
    --profile wasm-release . -- -p sandlot
done

# Both targets' wasm are the same bytes; optimise one, use it for both. -Os, not -Oz: measured
# on this crate, -Os output is 1.6 % larger raw but 0.5 KB smaller gzipped.
if ! cmp -s "$built/web/sandlot_bg.wasm" "$built/node/sandlot_bg.wasm"; then
  echo "error: web and nodejs targets produced different .wasm files" >&2
  exit 1
fi
raw_before=$(wc -c <"$built/web/sandlot_bg.wasm")
if command -v wasm-opt >/dev/null; then
  wasm-opt -Os "$built/web/sandlot_bg.wasm" -o "$built/web/sandlot_bg.opt.wasm"
  mv "$built/web/sandlot_bg.opt.wasm" "$built/web/sandlot_bg.wasm"
else
  echo "warning: wasm-opt not found (npm install puts binaryen's in node_modules/.bin); shipping unoptimised wasm" >&2
fi

node scripts/assemble-sdk.mjs "$built" pkg

echo "sandlot_bg.wasm before wasm-opt: ${raw_before} bytes raw"
node scripts/sdk-size.mjs pkg

# Let the repository's own examples `import 'sandlot'` the package just built (not when
# node_modules is a link to another checkout's: its `sandlot` is that checkout's build).
if [ ! -L node_modules ]; then
  mkdir -p node_modules
  ln -sfn ../pkg node_modules/sandlot
fi
