#!/usr/bin/env bash
# Fuzzes sandlotd's input handling (fuzz/, README "Fuzzing"): request bodies, agent tokens,
# stream resume points, query strings and local mode's guard. Each target runs for
# FUZZ_SECONDS (default 60) under cargo-fuzz (libFuzzer, address sanitizer) on a nightly
# toolchain; both are installed when missing. Where no nightly toolchain can be had (or with
# FUZZ_MODE=fallback), the same targets run as property tests on stable Rust, without
# coverage feedback, and the script says so. Not part of `npm test`: it takes minutes.
#
#   npm run fuzz                              # every target, 60 s each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh fuzz_token   # one target, longer
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }
seconds="${FUZZ_SECONDS:-60}"
targets=(fuzz_request_bodies fuzz_token fuzz_since fuzz_query_and_guard)
[ $# -gt 0 ] && targets=("$@")
mode="${FUZZ_MODE:-libfuzzer}"

if [ "$mode" = libfuzzer ] && ! rustup toolchain list | grep -q '^nightly'; then
  say "installing a nightly toolchain (rustup, minimal profile)"
  if ! rustup toolchain install nightly --profile minimal; then
    say "no nightly toolchain could be installed"
    mode=fallback
  fi
fi
if [ "$mode" = libfuzzer ] && ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (cargo install, about a minute)"
  if ! cargo install cargo-fuzz --locked; then
    say "cargo-fuzz could not be installed"
    mode=fallback
  fi
fi

if [ "$mode" != libfuzzer ]; then
  say "FALLBACK: no cargo-fuzz on nightly here, so the targets run as property tests on"
  say "stable (mutated seeds and random inputs, no coverage feedback), ${seconds} s each"
  cd fuzz
  FUZZ_SECONDS="$seconds" cargo test --release --lib -- --nocapture --test-threads=1 "${targets[@]}"
  exit $?
fi

say "building the targets (cargo +nightly fuzz build: libFuzzer, address sanitizer)"
(cd fuzz && cargo +nightly fuzz build) || exit 1

failed=()
summary=()
for t in "${targets[@]}"; do
  # New inputs go to a scratch corpus; the committed seeds (fuzz/corpus/<target>) stay as
  # they are. Keep the scratch one between runs to start where the last run ended.
  mkdir -p "fuzz/target/corpus/$t"
  log="fuzz/target/$t.log"
  say "$t: ${seconds} s (log: $log)"
  (cd fuzz && cargo +nightly fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1
  status=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -oE '^#[0-9]+.*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | awk '{print $2}')
  if [ $status -eq 0 ]; then
    summary+=("$t: ${seconds} s, ${execs:-?} executions, coverage ${cov:-?} edges, no crash")
  else
    failed+=("$t")
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | awk '{print $NF}')
    summary+=("$t: FAILED after ${execs:-?} executions; input: fuzz/${artifact:-artifacts/$t/}")
    grep -E 'panicked at|^(==[0-9]+==)?ERROR|^SUMMARY' -A2 "$log" | head -12
  fi
done

say "summary"
for line in "${summary[@]}"; do say "  $line"; done
if [ ${#failed[@]} -gt 0 ]; then
  say "reproduce with: cd fuzz && cargo +nightly fuzz run <target> <input file>"
  exit 1
fi
