#!/usr/bin/env bash
# The official OpenAI SDKs (Python and Node) against the `understudy` embedded
# demo, unchanged but for base_url. Installs the SDKs into a scratch folder.
# Usage: bash tests/sdk/run.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build -q -p understudy-gateway --manifest-path "$ROOT/Cargo.toml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export UNDERSTUDY_URL="http://127.0.0.1:$PORT"
"$ROOT/target/debug/understudy" --listen "127.0.0.1:$PORT" >"$WORK/demo.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "$UNDERSTUDY_URL/health" && break; sleep 0.1; done

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q openai
"$WORK/venv/bin/python" "$ROOT/tests/sdk/openai_sdk.py"

if command -v npm >/dev/null; then
  (cd "$WORK" && npm install -q --no-audit --no-fund openai >/dev/null)
  cp "$ROOT/tests/sdk/openai_sdk.mjs" "$WORK/"
  node "$WORK/openai_sdk.mjs"
else
  echo "NOTICE: npm not found; the Node SDK check was not run (it needs Node.js and npm)" >&2
fi
