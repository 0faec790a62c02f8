#!/usr/bin/env bash
# A/B throughput of two gateway binaries on the same upstream: each round
# runs A then B (then B then A on the next round, so drift in the machine's
# load falls on both alike), wrk -t2 for the given seconds after a 2 s
# warm-up, non-streaming and streaming. Prints every run (with the
# gateway's own CPU time per request, from /proc: less sensitive than
# throughput to other work on the machine) and the medians of each binary.
# See docs/benchmarks.md.
#
# Usage: bash benches/compare.sh A_BINARY B_BINARY [seconds] [rounds]
#        (defaults 10 s, 5 rounds; CONCURRENCY=16 by default)
# Needs wrk and curl; the mock from target/release.
set -euo pipefail

A="$1"; B="$2"; DURATION="${3:-10}"; ROUNDS="${4:-5}"; CONNS="${CONCURRENCY:-16}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

UPSTREAM=127.0.0.1:9201
GATEWAY=127.0.0.1:9290
MOCK="$ROOT/target/release/understudy-mock"

wait_for() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }

"$MOCK" --listen "$UPSTREAM" --name upstream 2>/dev/null & PIDS+=($!)
wait_for "http://$UPSTREAM/v1/models"

cat > "$WORK/gateway.toml" <<TOML
[server]
listen = "$GATEWAY"

[[providers]]
name = "upstream"
kind = "openai"
base_url = "http://$UPSTREAM/v1"

[[routes]]
model = "chat"
targets = [{ provider = "upstream", model = "m" }]
TOML

for stream in false true; do
  cat > "$WORK/post-$stream.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"chat","stream":$stream,"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.1f %.1f %d\n", summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
done

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system ticks

run() { # label binary stream
  local label=$1 bin=$2 stream=$3 pid line
  RUST_LOG=error "$bin" --config "$WORK/gateway.toml" 2>>"$WORK/gateway.log" & pid=$!
  wait_for "http://$GATEWAY/health"
  wrk -t2 -c"$CONNS" -d2s -s "$WORK/post-$stream.lua" "http://$GATEWAY/v1/chat/completions" >/dev/null
  local before after
  before=$(cpu "$pid")
  line=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post-$stream.lua" "http://$GATEWAY/v1/chat/completions" | grep '^RESULT')
  after=$(cpu "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  read -r _ rps p50 p99 errors <<<"$line"
  local cpu_us
  cpu_us=$(awk -v b="$before" -v a="$after" -v r="$rps" -v d="$DURATION" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (a - b) / hz * 1e6 / (r * d) }')
  printf '%s stream=%-5s c=%s %10.0f req/s  p50 %6.0f us  p99 %7.0f us  cpu %6s us/req  errors %s\n' "$label" "$stream" "$CONNS" "$rps" "$p50" "$p99" "$cpu_us" "$errors"
  echo "$label $stream $rps $cpu_us" >> "$WORK/results"
}

echo "A = $A"
echo "B = $B"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); ${DURATION}s per run, ${ROUNDS} rounds"
for round in $(seq 1 "$ROUNDS"); do
  for stream in false true; do
    if (( round % 2 )); then run A "$A" "$stream"; run B "$B" "$stream"
    else run B "$B" "$stream"; run A "$A" "$stream"; fi
  done
done
echo
for stream in false true; do
  for label in A B; do
    rps=$(awk -v l="$label" -v s="$stream" '$1 == l && $2 == s { print $3 }' "$WORK/results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    cpu_us=$(awk -v l="$label" -v s="$stream" '$1 == l && $2 == s { print $4 }' "$WORK/results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    printf '%s stream=%-5s median %.0f req/s, median %s us of gateway CPU per request\n' "$label" "$stream" "$rps" "$cpu_us"
  done
done
