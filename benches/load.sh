#!/usr/bin/env bash
# End-to-end load benchmark: the same fast upstream measured directly,
# through nginx's reverse proxy (the reference proxy hop), and through the
# understudy gateway; then the gateway with its primary ejected (503) and
# with its primary refusing connections, and as a shared service (caller
# keys and a balanced two-deployment tier). See docs/benchmarks.md.
#
# Usage: bash benches/load.sh [duration_seconds]   (default 10)
#        CONCURRENCY="16" bash benches/load.sh 5    (only some concurrencies)
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light), curl.
set -euo pipefail

DURATION="${1:-10}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

UPSTREAM=127.0.0.1:9101   # the fast upstream (mock, no fault)
BROKEN=127.0.0.1:9102     # a primary that answers 503
DEAD=127.0.0.1:9103       # a primary nothing listens on
NGINX=127.0.0.1:9180
GATEWAY=127.0.0.1:9190
SHARED=127.0.0.1:9191     # the gateway as a shared service: [auth] and a two-deployment tier

cargo build --release -q -p understudy-gateway -p understudy-mock --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release"

wait_for() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }

"$BIN/understudy-mock" --listen "$UPSTREAM" --name upstream 2>/dev/null & PIDS+=($!)
"$BIN/understudy-mock" --listen "$BROKEN" --name broken --fault status:503 2>/dev/null & PIDS+=($!)
wait_for "http://$UPSTREAM/v1/models"
wait_for "http://$BROKEN/__mock/stats"

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK;
  proxy_temp_path $WORK;
  upstream llm { server $UPSTREAM; keepalive 256; }
  server {
    listen $NGINX;
    location / {
      proxy_pass http://llm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" & PIDS+=($!)

cat > "$WORK/gateway.toml" <<TOML
[server]
listen = "$GATEWAY"

[[providers]]
name = "upstream"
kind = "openai"
base_url = "http://$UPSTREAM/v1"

[[providers]]
name = "broken"
kind = "openai"
base_url = "http://$BROKEN/v1"

[[providers]]
name = "dead"
kind = "openai"
base_url = "http://$DEAD/v1"

[[routes]]
model = "chat"
targets = [{ provider = "upstream", model = "m" }]

[[routes]]
model = "ejected"
targets = [{ provider = "broken", model = "m" }, { provider = "upstream", model = "m" }]

[[routes]]
model = "refused"
targets = [{ provider = "dead", model = "m" }, { provider = "upstream", model = "m" }]
TOML
cat > "$WORK/shared.toml" <<TOML
[server]
listen = "$SHARED"

[[providers]]
name = "east"
kind = "openai"
base_url = "http://$UPSTREAM/v1"

[[providers]]
name = "west"
kind = "openai"
base_url = "http://$UPSTREAM/v1"

[[routes]]
model = "chat"
targets = [{ balance = [{ provider = "east", model = "m", weight = 2 }, { provider = "west", model = "m" }] }]

[auth]
keys = [{ name = "bench", key_env = "BENCH_CALLER_KEY", routes = ["*"], rpm = 100000000 }]
TOML
RUST_LOG=error "$BIN/understudy" --config "$WORK/gateway.toml" 2>"$WORK/gateway.log" & GATEWAY_PID=$!; PIDS+=($GATEWAY_PID)
BENCH_CALLER_KEY=sk-bench RUST_LOG=error "$BIN/understudy" --config "$WORK/shared.toml" 2>"$WORK/shared.log" & PIDS+=($!)
wait_for "http://$NGINX/v1/models"
wait_for "http://$GATEWAY/health"
wait_for "http://$SHARED/health"

body() { printf '{"model":"%s","stream":%s,"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}' "$1" "$2"; }

run() { # name url model stream connections
  local name=$1 url=$2 model=$3 stream=$4 conns=$5
  cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$(body "$model" "$stream")'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.1f %.1f %.1f\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99)))
end
LUA
  # Warm the pools, then measure.
  wrk -t2 -c"$conns" -d2s -s "$WORK/post.lua" "$url/v1/chat/completions" >/dev/null
  local line; line=$(wrk -t2 -c"$conns" -d"${DURATION}s" -s "$WORK/post.lua" "$url/v1/chat/completions" | grep '^RESULT')
  read -r _ requests errors rps p50 p99 <<<"$line"
  printf '%-34s c=%-4s %10.0f req/s  p50 %7.0f us  p99 %7.0f us  errors %s\n' "$name" "$conns" "$rps" "$p50" "$p99" "$errors"
  echo "$name,$conns,$stream,$rps,$p50,$p99,$errors" >> "$WORK/results.csv"
}

ttfb() { # name url model: median time to first byte of a stream over 200 requests, in us
  local name=$1 url=$2 model=$3
  local values
  values=$(for _ in $(seq 1 200); do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' -H 'content-type: application/json' \
      -d "$(body "$model" true)" "$url/v1/chat/completions"
  done | sort -n)
  printf '%-34s time to first byte, median of 200: %s us\n' "$name" "$(echo "$values" | awk '{a[NR]=$1} END {printf "%.0f", a[int(NR/2)+1]*1e6}')"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "duration ${DURATION}s per run, wrk -t2; upstream: understudy-mock (no fault)"
echo
for conns in ${CONCURRENCY:-16 256}; do
  for stream in false true; do
    run "direct (stream=$stream)" "http://$UPSTREAM" chat "$stream" "$conns"
    run "nginx proxy_pass (stream=$stream)" "http://$NGINX" chat "$stream" "$conns"
    run "understudy (stream=$stream)" "http://$GATEWAY" chat "$stream" "$conns"
  done
  run "understudy, [auth] + 2-deployment tier" "http://$SHARED" chat false "$conns"
  run "understudy, primary ejected" "http://$GATEWAY" ejected false "$conns"
  run "understudy, primary refusing" "http://$GATEWAY" refused false "$conns"
done
echo
ttfb "direct" "http://$UPSTREAM" chat
ttfb "nginx proxy_pass" "http://$NGINX" chat
ttfb "understudy" "http://$GATEWAY" chat
echo
echo "understudy peak RSS: $(grep VmHWM /proc/$GATEWAY_PID/status | awk '{print $2, $3}')"
echo
echo "the gateway's own count of attempts and fallbacks:"
curl -s "http://$GATEWAY/metrics" | grep -E '^understudy_(attempts|fallbacks)_total' || true
