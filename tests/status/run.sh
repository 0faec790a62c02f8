#!/usr/bin/env bash
# The /status page in a real browser: headless Chromium, driven over the
# DevTools protocol, watches a gateway in front of two mock providers while
# the primary starts failing and is ejected. Installs Chromium from Debian's
# packages when it is missing, and the DevTools client into a scratch venv.
# Usage: bash tests/status/run.sh   (UNDERSTUDY_BIN: a built gateway to use)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "FAIL: chromium is not installed (apt-get install chromium), and this script cannot install it" >&2
    exit 1
  fi
fi
chromium --version

cargo build -q -p understudy-gateway -p understudy-mock --manifest-path "$ROOT/Cargo.toml"
BIN="${UNDERSTUDY_BIN:-$ROOT/target/debug/understudy}"
MOCK="$(dirname "$BIN")/understudy-mock"
[ -x "$MOCK" ] || MOCK="$ROOT/target/debug/understudy-mock"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Polls until a server answers (start-up of a process this script launched).
await_up() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "FAIL: no answer from $1" >&2; exit 1; }
start_mock() { # NAME
  local port
  port=$(free_port)
  "$MOCK" --format openai --name "$1" --listen "127.0.0.1:$port" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  export "MOCK_${1^^}=http://127.0.0.1:$port"
  await_up "http://127.0.0.1:$port/__mock/stats"
}
start_mock primary
start_mock backup

cat >"$WORK/status.toml" <<TOML
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "${MOCK_PRIMARY}/v1"

[[providers]]
name = "backup"
kind = "openai"
base_url = "${MOCK_BACKUP}/v1"

[[routes]]
model = "chat"
targets = [{ provider = "primary", model = "big" }, { provider = "backup", model = "small" }]

[retry]
max_retries = 0

[health]
consecutive_failures = 3
base_ejection_secs = 120
probe_interval_secs = 0
TOML
PORT=$(free_port)
export UNDERSTUDY_URL="http://127.0.0.1:$PORT"
"$BIN" --config "$WORK/status.toml" --listen "127.0.0.1:$PORT" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
await_up "$UNDERSTUDY_URL/health"

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q websocket-client
STATUS_WORK="$WORK" "$WORK/venv/bin/python" "$ROOT/tests/status/status_page.py"
