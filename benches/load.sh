#!/usr/bin/env bash
# End-to-end load benchmark: nginx's reverse proxy (the reference proxy
# hop) and the understudy gateway, measured in the same run over the same
# upstreams: understudy-mock (no fault) and a static nginx upstream (a
# fixed completion and a fixed 22-event stream). Then the gateway with its
# primary ejected (503) and with its primary refusing connections, the
# time to first byte of a stream, peak memory, and the gateway's
# allocations per request under heaptrack. The HTTP floor (hyper's server
# and pooled client alone, examples/floor_proxy) and hyper without the pool
# (the same with --no-pool) are measured beside them. See docs/benchmarks.md.
#
# Usage: bash benches/load.sh [duration_seconds]   (default 7; about 5 minutes in all)
#        CONCURRENCY="16" bash benches/load.sh 5    (only some concurrencies)
#        HEAPTRACK=0 bash benches/load.sh           (no allocation count)
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light), curl, and
# heaptrack for the allocation count. Prints a table and writes a CSV
# (target/load-results.csv unless CSV=path).
set -euo pipefail

DURATION="${1:-7}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CSV="${CSV:-$ROOT/target/load-results.csv}"
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh"

BASE="${PORT_BASE:-19100}"
MOCK=127.0.0.1:$((BASE + 1))        # understudy-mock, no fault
BROKEN=127.0.0.1:$((BASE + 2))      # a primary that answers 503
DEAD=127.0.0.1:$((BASE + 3))        # a primary nothing listens on
STATIC=127.0.0.1:$((BASE + 4))      # the static nginx upstream
NGINX_MOCK=127.0.0.1:$((BASE + 80)) # nginx proxy_pass to the mock
NGINX_STATIC=127.0.0.1:$((BASE + 81)) # nginx proxy_pass to the static upstream
GATEWAY=127.0.0.1:$((BASE + 90))
HEAP_GATEWAY=127.0.0.1:$((BASE + 91))
FLOOR=127.0.0.1:$((BASE + 92))      # examples/floor_proxy: hyper alone
NO_POOL=127.0.0.1:$((BASE + 93))   # examples/floor_proxy --no-pool: hyper, no pool

cargo build --release -q -p understudy-gateway -p understudy-mock --manifest-path "$ROOT/Cargo.toml"
cargo build --release -q -p understudy --example floor_proxy --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release"

"$BIN/understudy-mock" --listen "$MOCK" --name upstream >/dev/null 2>&1 & PIDS+=($!)
"$BIN/understudy-mock" --listen "$BROKEN" --name broken --fault status:503 >/dev/null 2>&1 & PIDS+=($!)
wait_for "http://$MOCK/v1/models"
wait_for "http://$BROKEN/__mock/stats"
start_static_upstream "$STATIC"
start_nginx_proxy "$NGINX_MOCK" "$MOCK"; NGINX_MOCK_PID=$NGINX_PID
start_nginx_proxy "$NGINX_STATIC" "$STATIC"; NGINX_STATIC_PID=$NGINX_PID
"$BIN/examples/floor_proxy" "$FLOOR" "$STATIC" & FLOOR_PID=$!; PIDS+=("$FLOOR_PID")
wait_for "http://$FLOOR/json/v1/chat/completions"
"$BIN/examples/floor_proxy" "$NO_POOL" "$STATIC" --no-pool & NO_POOL_PID=$!; PIDS+=("$NO_POOL_PID")
wait_for "http://$NO_POOL/json/v1/chat/completions"

gateway_config() { # listen address
  cat <<TOML
[server]
listen = "$1"

[[providers]]
name = "upstream"
kind = "openai"
base_url = "http://$MOCK/v1"

[[providers]]
name = "broken"
kind = "openai"
base_url = "http://$BROKEN/v1"

[[providers]]
name = "dead"
kind = "openai"
base_url = "http://$DEAD/v1"

[[providers]]
name = "static"
kind = "openai"
base_url = "http://$STATIC/json/v1"

[[providers]]
name = "static-sse"
kind = "openai"
base_url = "http://$STATIC/sse/v1"

[[routes]]
model = "chat"
targets = [{ provider = "upstream", model = "m" }]

[[routes]]
model = "ejected"
targets = [{ provider = "broken", model = "m" }, { provider = "upstream", model = "m" }]

[[routes]]
model = "refused"
targets = [{ provider = "dead", model = "m" }, { provider = "upstream", model = "m" }]

[[routes]]
model = "static"
targets = [{ provider = "static", model = "m" }]

[[routes]]
model = "static-stream"
targets = [{ provider = "static-sse", model = "m" }]
TOML
}
gateway_config "$GATEWAY" > "$WORK/gateway.toml"
start_gateway "$WORK/gateway.toml"
wait_for "http://$NGINX_MOCK/v1/models"
wait_for "http://$NGINX_STATIC/json/v1/models"
wait_for "http://$GATEWAY/health"

# The events of one stream through a proxy, [DONE] included.
events_of() { # url model
  curl -s -H 'content-type: application/json' \
    -d "{\"model\":\"$2\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}]}" \
    "$1" | grep -c '^data:'
}

mkdir -p "$(dirname "$CSV")"
echo "upstream,proxy,mode,conns,requests,errors,rps,p50_us,p99_us,cpu_us_per_request,events_per_stream,cpu_us_per_event" > "$CSV"

# run UPSTREAM PROXY MODE CONNS: one measurement, a warm-up first.
run() {
  local upstream=$1 proxy=$2 mode=$3 conns=$4
  local url model stream pids events
  stream=false; [ "$mode" = stream ] && stream=true
  case "$proxy/$upstream" in
    nginx/mock) url="http://$NGINX_MOCK/v1/chat/completions"; model=chat; pids=$(with_children "$NGINX_MOCK_PID") ;;
    nginx/static)
      if [ "$mode" = stream ]; then url="http://$NGINX_STATIC/sse/v1/chat/completions"; else url="http://$NGINX_STATIC/json/v1/chat/completions"; fi
      model=m; pids=$(with_children "$NGINX_STATIC_PID") ;;
    floor/static) url="http://$FLOOR/json/v1/chat/completions"; model=m; pids=$FLOOR_PID ;;
    floor-no-pool/static) url="http://$NO_POOL/json/v1/chat/completions"; model=m; pids=$NO_POOL_PID ;;
    understudy*/*)
      url="http://$GATEWAY/v1/chat/completions"; pids=$GATEWAY_PID
      case "$proxy/$upstream/$mode" in
        understudy/mock/*) model=chat ;;
        understudy/static/stream) model=static-stream ;;
        understudy/static/*) model=static ;;
        understudy-ejected/*) model=ejected ;;
        understudy-refused/*) model=refused ;;
      esac ;;
  esac
  events=1
  [ "$mode" = stream ] && events=$(events_of "$url" "$model")
  write_wrk_script "$WORK/post.lua" "$model" "$stream"
  wrk -t2 -c"$conns" -d1s -s "$WORK/post.lua" "$url" >/dev/null
  # shellcheck disable=SC2086
  read -r requests errors rps p50 p99 cpu <<<"$(measure "$url" "$WORK/post.lua" 2 "$conns" "$DURATION" $pids)"
  local per_event
  per_event=$(awk -v c="$cpu" -v e="$events" 'BEGIN { printf "%.2f", c / e }')
  printf '%-7s %-19s %-6s c=%-4s %8s req/s  p50 %7s us  p99 %7s us  CPU %8s us/req' "$upstream" "$proxy" "$mode" "$conns" "$rps" "$p50" "$p99" "$cpu"
  [ "$mode" = stream ] && printf '  %6s us/event (%s events)' "$per_event" "$events"
  [ "$errors" != 0 ] && printf '  errors %s' "$errors"
  printf '\n'
  echo "$upstream,$proxy,$mode,$conns,$requests,$errors,$rps,$p50,$p99,$cpu,$events,$per_event" >> "$CSV"
}

# ttfb URL MODEL: the median time to the first byte of a stream over 100
# sequential requests (a new connection each), in microseconds.
ttfb() {
  local url=$1 model=$2
  for _ in $(seq 1 100); do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' -H 'content-type: application/json' \
      -d "{\"model\":\"$model\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}]}" "$url"
  done | median | awk '{printf "%.0f", $1 * 1e6}'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t2, ${DURATION}s per measurement after a 1 s warm-up; nginx and the gateway alternate which goes first"
echo
first=nginx
for conns in ${CONCURRENCY:-16 256}; do
  for upstream in static mock; do
    for mode in json stream; do
      if [ "$first" = nginx ]; then
        run "$upstream" nginx "$mode" "$conns"; run "$upstream" understudy "$mode" "$conns"; first=understudy
      else
        run "$upstream" understudy "$mode" "$conns"; run "$upstream" nginx "$mode" "$conns"; first=nginx
      fi
    done
  done
  run static floor json "$conns"
  run static floor-no-pool json "$conns"
  run mock understudy-ejected json "$conns"
  run mock understudy-refused json "$conns"
done

GATEWAY_RSS=$(peak_rss_kib "$GATEWAY_PID")
# shellcheck disable=SC2046
NGINX_RSS=$(peak_rss_kib $(with_children "$NGINX_STATIC_PID") $(with_children "$NGINX_MOCK_PID"))

echo
TTFB_NGINX_STATIC=$(ttfb "http://$NGINX_STATIC/sse/v1/chat/completions" m)
TTFB_GATEWAY_STATIC=$(ttfb "http://$GATEWAY/v1/chat/completions" static-stream)
TTFB_NGINX_MOCK=$(ttfb "http://$NGINX_MOCK/v1/chat/completions" chat)
TTFB_GATEWAY_MOCK=$(ttfb "http://$GATEWAY/v1/chat/completions" chat)
TTFB_DIRECT_STATIC=$(ttfb "http://$STATIC/sse/v1/chat/completions" m)
TTFB_DIRECT_MOCK=$(ttfb "http://$MOCK/v1/chat/completions" chat)

# Allocations per request: the gateway under heaptrack, idle for the same
# time as loaded, the difference divided by the requests served.
ALLOCS_JSON="" ALLOCS_STREAM="" ALLOCS_NOTE=""
allocation_calls() { # seconds mode: prints "calls requests"
  local seconds=$1 mode=$2 hpid gpid requests=0 data
  heaptrack -o "$WORK/heap-$mode" "$HEAP_BIN/understudy" --config "$WORK/heap.toml" >"$WORK/heaptrack-$mode.log" 2>&1 &
  hpid=$!
  wait_for "http://$HEAP_GATEWAY/health"
  case $mode in
    idle) sleep "$seconds" ;;
    json|stream)
      local model=static stream=false
      [ "$mode" = stream ] && model=static-stream stream=true
      write_wrk_script "$WORK/heap.lua" "$model" "$stream"
      requests=$(wrk -t1 -c16 -d"${seconds}s" -s "$WORK/heap.lua" "http://$HEAP_GATEWAY/v1/chat/completions" | awk '/^RESULT/ {print $2}') ;;
  esac
  gpid=$(pgrep -P "$hpid" -x understudy || true)
  [ -n "$gpid" ] && kill -TERM "$gpid"
  wait "$hpid" || true
  data=$(ls "$WORK"/heap-"$mode"* 2>/dev/null | head -n1)
  echo "$(heaptrack_print -f "$data" 2>/dev/null | awk -F: '/^calls to allocation functions:/ {split($2, a, " "); print a[1]}') $requests"
}
if [ "${HEAPTRACK:-1}" = 1 ] && command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null; then
  # heaptrack hooks malloc; the shipped binary allocates with mimalloc, so
  # the count is taken of the same code built with the system allocator.
  cargo build --release -q -p understudy-gateway --bin understudy --features system-allocator \
    --target-dir "$ROOT/target/system-allocator" --manifest-path "$ROOT/Cargo.toml"
  HEAP_BIN="$ROOT/target/system-allocator/release"
  gateway_config "$HEAP_GATEWAY" > "$WORK/heap.toml"
  read -r idle_calls _ <<<"$(allocation_calls 5 idle)"
  read -r json_calls json_requests <<<"$(allocation_calls 5 json)"
  read -r stream_calls stream_requests <<<"$(allocation_calls 5 stream)"
  ALLOCS_JSON=$(awk -v c="$json_calls" -v i="$idle_calls" -v r="$json_requests" 'BEGIN { printf "%.1f", (c - i) / r }')
  ALLOCS_STREAM=$(awk -v c="$stream_calls" -v i="$idle_calls" -v r="$stream_requests" 'BEGIN { printf "%.1f", (c - i) / r }')
  ALLOCS_NOTE="heaptrack, wrk -t1 -c16 for 5 s over the static upstream ($json_requests and $stream_requests requests), less an idle 5 s ($idle_calls calls)"
else
  ALLOCS_NOTE="not counted (heaptrack missing or HEAPTRACK=0)"
fi

# The final table: the gateway against nginx, same upstream, same run.
echo "== understudy / nginx (same upstream, same run; CPU is the proxy process's user + system time)"
printf '%-7s %-6s %-5s %14s %14s %8s %12s %12s %8s\n' upstream mode c "nginx req/s" "gw req/s" "ratio" "nginx us/req" "gw us/req" "ratio"
awk -F, 'NR > 1 { key = $1 "," $3 "," $4; if ($2 == "nginx") { nr[key] = $7; nc[key] = $10 } else if ($2 == "understudy") { gr[key] = $7; gc[key] = $10; order[++n] = key } }
  END { for (i = 1; i <= n; i++) { k = order[i]; split(k, p, ","); if (nr[k] == "") continue;
    printf "%-7s %-6s %-5s %14.0f %14.0f %7.0f%% %12.1f %12.1f %7.2fx\n", p[1], p[2], p[3], nr[k], gr[k], 100 * gr[k] / nr[k], nc[k], gc[k], (nc[k] > 0 ? gc[k] / nc[k] : 0) } }' "$CSV"
echo
echo "== the HTTP floor, static upstream, non-streaming: hyper's server and pooled client alone (examples/floor_proxy), and hyper with an upstream connection per caller connection, no pool (floor_proxy --no-pool)"
awk -F, 'NR > 1 && $1 == "static" && $3 == "json" { k = $4; if ($2 == "nginx") { nc[k] = $10; nr[k] = $7 } else if ($2 == "floor") { fc[k] = $10; fr[k] = $7; o[++n] = k } else if ($2 == "floor-no-pool") { pc[k] = $10; pr[k] = $7 } else if ($2 == "understudy") gc[k] = $10 }
  END { for (i = 1; i <= n; i++) { k = o[i]; if (nc[k] == "" || gc[k] == "") continue;
    printf "c=%-4s floor %6.0f req/s (%3.0f%% of nginx)  CPU %6.1f us/req (%.2fx nginx); the gateway adds %.1f us/req\n", k, fr[k], 100 * fr[k] / nr[k], fc[k], fc[k] / nc[k], gc[k] - fc[k];
    if (pc[k] != "") printf "c=%-4s no pool %6.0f req/s (%3.0f%% of nginx)  CPU %6.1f us/req (%.2fx nginx)\n", k, pr[k], 100 * pr[k] / nr[k], pc[k], pc[k] / nc[k] } }' "$CSV"
echo
echo "== the gateway with its primary failing (mock upstream, non-streaming) against the healthy route"
awk -F, 'NR > 1 && $1 == "mock" && $3 == "json" { r[$2 "," $4] = $7; c[$2 "," $4] = $10; cs[$4] = 1 }
  END { for (k in cs) for (p in r) { split(p, q, ","); if (q[2] != k || q[1] !~ /understudy-/) continue;
    printf "%-20s c=%-4s %8.0f req/s (%3.0f%% of healthy)  CPU %6.1f us/req (%.2fx)\n", q[1], k, r[p], 100 * r[p] / r["understudy," k], c[p], c[p] / c["understudy," k] } }' "$CSV" | sort
echo
echo "== time to first byte of a stream (median of 100, a new connection each)"
printf '%-7s direct %6s us   nginx %6s us   understudy %6s us   (gateway - nginx: %+d us)\n' \
  static "$TTFB_DIRECT_STATIC" "$TTFB_NGINX_STATIC" "$TTFB_GATEWAY_STATIC" $((TTFB_GATEWAY_STATIC - TTFB_NGINX_STATIC))
printf '%-7s direct %6s us   nginx %6s us   understudy %6s us   (gateway - nginx: %+d us)\n' \
  mock "$TTFB_DIRECT_MOCK" "$TTFB_NGINX_MOCK" "$TTFB_GATEWAY_MOCK" $((TTFB_GATEWAY_MOCK - TTFB_NGINX_MOCK))
echo
echo "== peak RSS (VmHWM) after every run, c=256 included"
echo "understudy $((GATEWAY_RSS / 1024)) MiB ($GATEWAY_RSS KiB); nginx (largest process) $((NGINX_RSS / 1024)) MiB ($NGINX_RSS KiB)"
echo
echo "== allocations per request (the gateway)"
if [ -n "$ALLOCS_JSON" ]; then
  echo "non-streaming: $ALLOCS_JSON; streaming: $ALLOCS_STREAM per stream ($STATIC_EVENTS events); $ALLOCS_NOTE"
else
  echo "$ALLOCS_NOTE"
fi
{
  echo "ttfb,static,direct,$TTFB_DIRECT_STATIC"; echo "ttfb,static,nginx,$TTFB_NGINX_STATIC"; echo "ttfb,static,understudy,$TTFB_GATEWAY_STATIC"
  echo "ttfb,mock,direct,$TTFB_DIRECT_MOCK"; echo "ttfb,mock,nginx,$TTFB_NGINX_MOCK"; echo "ttfb,mock,understudy,$TTFB_GATEWAY_MOCK"
  echo "peak_rss_kib,,understudy,$GATEWAY_RSS"; echo "peak_rss_kib,,nginx,$NGINX_RSS"
  echo "allocations_per_request,static,json,$ALLOCS_JSON"; echo "allocations_per_request,static,stream,$ALLOCS_STREAM"
} >> "$CSV"
echo
echo "CSV: $CSV"
