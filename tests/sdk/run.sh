#!/usr/bin/env bash
# The official OpenAI SDKs (Python and Node) against the `understudy` embedded
# demo, unchanged but for base_url; then the Python SDK against the gateway in
# front of four mock providers speaking Azure OpenAI's, Bedrock's, Gemini's
# and Anthropic's wire formats. Installs the SDKs into a scratch folder.
# Last, the Python SDK streaming through a stream the gateway resumes on a
# backup after the primary cut it (resume_sdk.py).
# Usage: bash tests/sdk/run.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build -q -p understudy-gateway -p understudy-mock --manifest-path "$ROOT/Cargo.toml"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Polls until a server answers (start-up of a process this script launched).
await_up() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
PORT=$(free_port)
export UNDERSTUDY_URL="http://127.0.0.1:$PORT"
"$ROOT/target/debug/understudy" --listen "127.0.0.1:$PORT" >"$WORK/demo.log" 2>&1 &
PIDS+=($!)
await_up "$UNDERSTUDY_URL/health"

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

# Four providers, four wire formats, one gateway; and an OpenAI-compatible
# pair, a primary that always answers 503 and a healthy one.
declare -A BASE=([azure]=/openai [bedrock]= [gemini]=/v1beta [anthropic]=/v1)
start_mock() { # NAME FORMAT [FAULT]
  local port
  port=$(free_port)
  "$ROOT/target/debug/understudy-mock" --format "$2" --name "$1" --listen "127.0.0.1:$port" ${3:+--fault "$3"} >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  export "MOCK_${1^^}=http://127.0.0.1:$port"
  await_up "http://127.0.0.1:$port/__mock/stats"
}
for kind in azure bedrock gemini anthropic; do start_mock "$kind" "$kind"; done
start_mock primary openai status:503
start_mock openai openai
cat >"$WORK/providers.toml" <<TOML
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "azure"
kind = "azure"
base_url = "${MOCK_AZURE}${BASE[azure]}"
api_version = "2024-10-21"
api_key_env = "AZURE_OPENAI_API_KEY"

[[providers]]
name = "bedrock"
kind = "bedrock"
region = "us-east-1"
base_url = "${MOCK_BEDROCK}${BASE[bedrock]}"

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "${MOCK_GEMINI}${BASE[gemini]}"
api_key_env = "GEMINI_API_KEY"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "${MOCK_ANTHROPIC}${BASE[anthropic]}"
api_key_env = "ANTHROPIC_API_KEY"

[[providers]]
name = "primary"
kind = "openai"
base_url = "${MOCK_PRIMARY}/v1"

[[providers]]
name = "openai"
kind = "openai"
base_url = "${MOCK_OPENAI}/v1"

[[routes]]
model = "msg-anthropic"
targets = [{ provider = "primary", model = "big" }, { provider = "anthropic", model = "claude-3-5-haiku-latest" }]

[[routes]]
model = "msg-openai"
targets = [{ provider = "primary", model = "big" }, { provider = "openai", model = "gpt-4o-mini" }]

[[routes]]
model = "embed"
targets = [{ provider = "anthropic", model = "claude" }, { provider = "primary", model = "embed-large" }, { provider = "openai", model = "embed-small" }]

[[routes]]
model = "chain"
targets = [
  { provider = "azure", model = "gpt-4o-eu" },
  { provider = "bedrock", model = "anthropic.claude-3-5-haiku-20241022-v1:0" },
  { provider = "gemini", model = "gemini-2.0-flash" },
  { provider = "anthropic", model = "claude-3-5-haiku-latest" },
]

[[routes]]
model = "bedrock-first"
targets = [
  { provider = "bedrock", model = "anthropic.claude-3-5-haiku-20241022-v1:0" },
  { provider = "gemini", model = "gemini-2.0-flash" },
]
$(for kind in azure bedrock gemini anthropic; do printf '\n[[routes]]\nmodel = "%s"\ntargets = [{ provider = "%s", model = "m-%s" }]\n' "$kind" "$kind" "$kind"; done)

[retry]
max_retries = 0

[health]
probe_interval_secs = 0
consecutive_failures = 1000   # the always-failing primary stays in the routes
min_requests = 1000
TOML
PORT=$(free_port)
export UNDERSTUDY_URL="http://127.0.0.1:$PORT"
AZURE_OPENAI_API_KEY=azure-key GEMINI_API_KEY=gemini-key ANTHROPIC_API_KEY=anthropic-key \
  AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=aws-secret \
  "$ROOT/target/debug/understudy" --config "$WORK/providers.toml" --listen "127.0.0.1:$PORT" >"$WORK/providers.log" 2>&1 &
PIDS+=($!)
await_up "$UNDERSTUDY_URL/health"
"$WORK/venv/bin/python" "$ROOT/tests/sdk/providers_sdk.py"
"$WORK/venv/bin/pip" install -q anthropic
"$WORK/venv/bin/python" "$ROOT/tests/sdk/anthropic_sdk.py"
if grep -q -e azure-key -e gemini-key -e anthropic-key -e aws-secret "$WORK/providers.log"; then
  echo "a provider secret reached the gateway's log" >&2
  exit 1
fi

# A primary that cuts every stream after three content chunks, and two
# backups (OpenAI-compatible, Anthropic) on routes that resume; every mock
# answers the same sentence, continuations with its rest.
export RESUME_SENTENCE="The quick brown fox jumps over the lazy dog."
start_resume_mock() { # NAME FORMAT [FAULT]
  local port
  port=$(free_port)
  "$ROOT/target/debug/understudy-mock" --format "$2" --name "$1" --listen "127.0.0.1:$port" \
    --text "$RESUME_SENTENCE" --stream-chunks 8 ${3:+--fault "$3"} >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  export "MOCK_${1^^}=http://127.0.0.1:$port"
  await_up "http://127.0.0.1:$port/__mock/stats"
}
start_resume_mock resume_primary openai cut-after-chunks:3
start_resume_mock resume_openai openai
start_resume_mock resume_anthropic anthropic
cat >"$WORK/resume.toml" <<TOML
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "primary"
kind = "openai"
base_url = "${MOCK_RESUME_PRIMARY}/v1"

[[providers]]
name = "openai"
kind = "openai"
base_url = "${MOCK_RESUME_OPENAI}/v1"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "${MOCK_RESUME_ANTHROPIC}/v1"
api_key_env = "ANTHROPIC_API_KEY"

[[routes]]
model = "resume-openai"
targets = [{ provider = "primary", model = "big" }, { provider = "openai", model = "small" }]
resume = true

[[routes]]
model = "resume-anthropic"
targets = [{ provider = "primary", model = "big" }, { provider = "anthropic", model = "claude" }]
resume = true

[retry]
max_retries = 0

[health]
probe_interval_secs = 0
consecutive_failures = 1000   # the cutting primary stays in the routes
min_requests = 1000
TOML
PORT=$(free_port)
export UNDERSTUDY_URL="http://127.0.0.1:$PORT"
ANTHROPIC_API_KEY=anthropic-key "$ROOT/target/debug/understudy" --config "$WORK/resume.toml" \
  --listen "127.0.0.1:$PORT" >"$WORK/resume.log" 2>&1 &
PIDS+=($!)
await_up "$UNDERSTUDY_URL/health"
"$WORK/venv/bin/python" "$ROOT/tests/sdk/resume_sdk.py"
grep -q 'event="resume"\|"event":"resume"\|event=resume' "$WORK/resume.log" || { echo "no resume logged" >&2; cat "$WORK/resume.log" >&2; exit 1; }
