#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target in fuzz/ (issue 15, item 6),
# called by tests/run.sh; also runnable alone.
#
#   bash tests/fuzz.sh            # every target, FUZZ_SECONDS each
#   FUZZ_SECONDS=600 bash tests/fuzz.sh redact policy
#
# Stable Rust is enough: RUSTC_BOOTSTRAP=1 lets it take the -Z flags
# cargo-fuzz passes. cargo-fuzz itself is installed from crates.io into
# target/tools/cargo-fuzz, and the build is kept in target/fuzz, so a warm
# run only fuzzes. No sanitizer (-s none): the targets fuzz safe Rust (the
# crate forbids unsafe outside the tailnet FFI, which no target reaches);
# debug assertions and overflow checks stay on (cargo-fuzz's default).
#
# Each target first replays its seeds (fuzz/seeds/<target>, in the repo)
# and what earlier runs found (target/fuzz/corpus/<target>), then fuzzes
# for FUZZ_SECONDS. A crash fails the run; the input is left in
# fuzz/artifacts/<target>/ (reproduce: cargo fuzz run <target> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECONDS:-20}"
cargo_fuzz_version="0.13.2"
tools="target/tools/cargo-fuzz"
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version" --root "$tools"
fi
export PATH="$PWD/$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
flags=(-s none --codegen-units 16 --target-dir target/fuzz)

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz build: $(( $(date +%s) - start )) s"

for t in "${targets[@]}"; do
  mkdir -p "target/fuzz/corpus/$t"
  t0=$(date +%s)
  # -timeout: one input may take at most 10 s (a hang is a failure);
  # -rss_limit_mb: a leak or an unbounded allocation is a failure.
  log="target/fuzz/$t.log"
  if ! cargo fuzz run "${flags[@]}" "$t" "target/fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t FAILED; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|INITED|DONE' "$log" | tr '\n' ' '
  echo
  echo "fuzz $t: ok in $(( $(date +%s) - t0 )) s"
done
echo "fuzz total: $(( $(date +%s) - start )) s"
