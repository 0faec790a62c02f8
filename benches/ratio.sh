#!/usr/bin/env bash
# CPU per request of the gateway against nginx's, in the same run: the CI
# check that the gateway's cost does not creep up.
#
# nginx's reverse proxy (one worker, upstream keepalive) and the gateway
# (default configuration and log filter, one worker thread) proxy the same static nginx
# upstream (a fixed chat completion). Each round runs `wrk -t1 -c16` for a
# few seconds against each, the order swapped every round, and reads the
# proxy's user + system CPU time from /proc; the ratio of the two CPU times
# per request is taken per round, and the median of the rounds is compared
# with the committed baseline (benches/baseline-ratio). A ratio more than
# 15% above it fails (exit 1). A ratio holds on a noisy machine where
# absolute figures do not: both proxies suffer the same neighbours.
#
# Usage: bash benches/ratio.sh [seconds_per_measurement] [rounds]   (default 4 and 7)
#        UPDATE_BASELINE=1 bash benches/ratio.sh   (print the figures, write no verdict)
# Builds the release gateway only when target/release/understudy is missing.
# Needs wrk, nginx and curl.
set -euo pipefail

SECONDS_PER="${1:-4}"
ROUNDS="${2:-7}"
TOLERANCE="${TOLERANCE:-1.15}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"

for tool in wrk nginx curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "ratio: $tool is missing (Debian: apt-get install wrk nginx-light curl)" >&2
    exit 1
  fi
done

BIN="${UNDERSTUDY_BIN_DIR:-$ROOT/target/release}"
if [ ! -x "$BIN/understudy" ]; then
  cargo build --release -q -p understudy-gateway --bin understudy --manifest-path "$ROOT/Cargo.toml"
fi

BASE="${PORT_BASE:-19300}"
STATIC=127.0.0.1:$((BASE + 4))
NGINX=127.0.0.1:$((BASE + 80))
GATEWAY=127.0.0.1:$((BASE + 90))

start_static_upstream "$STATIC"
start_nginx_proxy "$NGINX" "$STATIC"
cat > "$WORK/gateway.toml" <<TOML
[server]
listen = "$GATEWAY"

[[providers]]
name = "static"
kind = "openai"
base_url = "http://$STATIC/json/v1"

[[routes]]
model = "static"
targets = [{ provider = "static", model = "m" }]
TOML
# WORKERS: the gateway's serving threads (`[server] workers`); default:
# one per core, as shipped.
WORKERS="${WORKERS:-}"
if [ -n "$WORKERS" ]; then
  sed -i "s/^\[server\]$/[server]\nworkers = $WORKERS/" "$WORK/gateway.toml"
fi
start_gateway "$WORK/gateway.toml"
wait_for "http://$NGINX/json/v1/models"
wait_for "http://$GATEWAY/health"

write_wrk_script "$WORK/nginx.lua" m false
write_wrk_script "$WORK/gateway.lua" static false
NGINX_URL="http://$NGINX/json/v1/chat/completions"
GATEWAY_URL="http://$GATEWAY/v1/chat/completions"
NGINX_PIDS="$(with_children "$NGINX_PID")"

# Warm both: pools, caches, the allocator.
wrk -t1 -c16 -d1s -s "$WORK/nginx.lua" "$NGINX_URL" >/dev/null
wrk -t1 -c16 -d1s -s "$WORK/gateway.lua" "$GATEWAY_URL" >/dev/null

echo "ratio: wrk -t1 -c16, ${SECONDS_PER}s per measurement, $ROUNDS rounds, gateway with ${WORKERS:-the default (one per core)} worker thread(s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$WORK/ratios"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    # shellcheck disable=SC2086
    read -r nr ne nrps _ _ ncpu <<<"$(measure "$NGINX_URL" "$WORK/nginx.lua" 1 16 "$SECONDS_PER" $NGINX_PIDS)"
    read -r gr ge grps _ _ gcpu <<<"$(measure "$GATEWAY_URL" "$WORK/gateway.lua" 1 16 "$SECONDS_PER" "$GATEWAY_PID")"
  else
    read -r gr ge grps _ _ gcpu <<<"$(measure "$GATEWAY_URL" "$WORK/gateway.lua" 1 16 "$SECONDS_PER" "$GATEWAY_PID")"
    # shellcheck disable=SC2086
    read -r nr ne nrps _ _ ncpu <<<"$(measure "$NGINX_URL" "$WORK/nginx.lua" 1 16 "$SECONDS_PER" $NGINX_PIDS)"
  fi
  if [ "$nr" = 0 ] || [ "$gr" = 0 ] || [ "$ne" != 0 ] || [ "$ge" != 0 ]; then
    echo "ratio: round $round failed: nginx $nr requests ($ne errors), gateway $gr requests ($ge errors)" >&2
    exit 1
  fi
  ratio=$(awk -v g="$gcpu" -v n="$ncpu" 'BEGIN { printf "%.3f", (n > 0 ? g / n : 0) }')
  echo "$ratio" >> "$WORK/ratios"
  printf 'round %d: nginx %6s req/s %7s us CPU/req | gateway %6s req/s %7s us CPU/req | ratio %s\n' \
    "$round" "$nrps" "$ncpu" "$grps" "$gcpu" "$ratio"
done

MEDIAN=$(median < "$WORK/ratios")
BASELINE=$(grep -v '^#' "$ROOT/benches/baseline-ratio" | grep -m1 -E '^[0-9.]+$' || true)
if [ -z "$BASELINE" ]; then
  echo "ratio: benches/baseline-ratio holds no number" >&2
  exit 1
fi
LIMIT=$(awk -v b="$BASELINE" -v t="$TOLERANCE" 'BEGIN { printf "%.3f", b * t }')
echo "ratio: median gateway/nginx CPU per request $MEDIAN; baseline $BASELINE; limit $LIMIT (+$(awk -v t="$TOLERANCE" 'BEGIN { printf "%.0f", (t - 1) * 100 }')%)"
if [ "${UPDATE_BASELINE:-0}" = 1 ]; then
  echo "ratio: UPDATE_BASELINE=1: no verdict"
  exit 0
fi
if awk -v m="$MEDIAN" -v l="$LIMIT" 'BEGIN { exit !(m > l) }'; then
  echo "ratio: FAILED: the gateway's CPU per request is ${MEDIAN}x nginx's, above the limit ${LIMIT}x (baseline ${BASELINE}x + 15%)" >&2
  exit 1
fi
echo "ratio: ok"
