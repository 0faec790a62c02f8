# Shared by benches/load.sh and benches/ratio.sh (sourced, not run): the
# static nginx upstream, the nginx reverse proxy, the gateway, and the
# measurements (wrk, CPU time and peak memory from /proc).
#
# Expects ROOT (the repository). Sets WORK (a scratch directory) and PIDS
# (the processes started), both cleaned up when the script exits.

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

CLK_TCK="$(getconf CLK_TCK)"

# A fixed chat completion, as OpenAI answers one (about 500 bytes).
STATIC_JSON='{"id":"chatcmpl-static","object":"chat.completion","created":1700000000,"model":"m","system_fingerprint":"fp_static","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! The quick brown fox jumps over the lazy dog, and then it rests.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":18,"total_tokens":30}}'

# A fixed stream, as OpenAI sends one: a role chunk, 19 content chunks, a
# finish chunk and [DONE] (22 events, about 5 KB).
static_sse() {
  local head='{"id":"chatcmpl-static","object":"chat.completion.chunk","created":1700000000,"model":"m","system_fingerprint":"fp_static","choices":[{"index":0,"delta":'
  local tail=',"logprobs":null,"finish_reason":null}]}'
  printf 'data: %s{"role":"assistant","content":""}%s\n\n' "$head" "$tail"
  local word
  for word in Hello! The quick brown fox jumps over the lazy dog, and then it rests under the old oak tree.; do
    printf 'data: %s{"content":"%s "}%s\n\n' "$head" "$word" "$tail"
  done
  printf 'data: %s{}%s\n\n' "$head" ',"logprobs":null,"finish_reason":"stop"}]}'
  printf 'data: [DONE]\n\n'
}

# The SSE events of the static stream (the data lines, [DONE] included).
STATIC_EVENTS="$(static_sse | grep -c '^data:')"

wait_for() { # url
  local _
  for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "not up: $1" >&2
  exit 1
}

# start_static_upstream ADDR: nginx answering POST {json,sse}/v1/chat/completions
# with the fixed completion and the fixed stream, and GET .../models.
start_static_upstream() {
  local addr=$1 dir="$WORK/static"
  mkdir -p "$dir"
  static_sse > "$dir/stream.txt"
  chmod -R a+rX "$dir" "$WORK"
  cat > "$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  keepalive_requests 1000000;
  etag off;
  server {
    listen $addr;
    location = /json/v1/chat/completions {
      default_type application/json;
      return 200 '$STATIC_JSON';
    }
    # A POST to a file is a 405 in nginx's static module: error_page turns
    # it into a GET of the same file, answered 200.
    location = /sse/v1/chat/completions {
      default_type text/event-stream;
      alias $dir/stream.txt;
      error_page 405 =200 \$uri;
    }
    location ~ /models\$ {
      default_type application/json;
      return 200 '{"object":"list","data":[{"id":"m","object":"model"}]}';
    }
  }
}
NGINX
  nginx -c "$dir/nginx.conf" & PIDS+=($!)
  wait_for "http://$addr/json/v1/models"
}

# start_nginx_proxy ADDR UPSTREAM: nginx's reverse proxy (one worker,
# upstream keepalive, no buffering) in front of UPSTREAM. Sets NGINX_PID.
start_nginx_proxy() {
  local addr=$1 upstream=$2 dir="$WORK/proxy-$1"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  keepalive_requests 1000000;
  upstream llm { server $upstream; keepalive 256; keepalive_requests 1000000; }
  server {
    listen $addr;
    location / {
      proxy_pass http://llm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
  nginx -c "$dir/nginx.conf" & NGINX_PID=$!; PIDS+=($NGINX_PID)
}

# start_gateway CONFIG [LOG]: the release gateway with its default log
# filter (RUST_LOG unset). Sets GATEWAY_PID.
start_gateway() {
  local config=$1 log=${2:-$WORK/gateway.log}
  env -u RUST_LOG "$BIN/understudy" --config "$config" >"$log" 2>&1 & GATEWAY_PID=$!; PIDS+=($GATEWAY_PID)
}

# The process and, for nginx, its workers.
with_children() { # pid
  echo "$1"
  pgrep -P "$1" || true
}

# cpu_ticks PID...: user + system CPU time of the processes, in clock ticks.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# peak_rss_kib PID...: the largest VmHWM of the processes, in KiB.
peak_rss_kib() {
  local pid best=0 v
  for pid in "$@"; do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${v:-0}" -gt "$best" ] && best=$v
  done
  echo "$best"
}

# write_wrk_script FILE MODEL STREAM: a wrk script POSTing one chat request
# and printing "RESULT requests errors rps p50_us p99_us" when done.
write_wrk_script() {
  local file=$1 model=$2 stream=$3
  cat > "$file" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"$model","stream":$stream,"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %.1f %.1f %.1f\n", summary.requests, errors, summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99)))
end
LUA
}

# measure URL SCRIPT THREADS CONNS SECONDS PID...: runs wrk and prints
# "requests errors rps p50_us p99_us cpu_us_per_request", the CPU time
# being the given processes' during the run.
measure() {
  local url=$1 script=$2 threads=$3 conns=$4 seconds=$5
  shift 5
  local before after line requests errors rps p50 p99
  before=$(cpu_ticks "$@")
  line=$(wrk -t"$threads" -c"$conns" -d"${seconds}s" -s "$script" "$url" | grep '^RESULT')
  after=$(cpu_ticks "$@")
  read -r _ requests errors rps p50 p99 <<<"$line"
  awk -v r="$requests" -v e="$errors" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
      -v t=$((after - before)) -v hz="$CLK_TCK" \
      'BEGIN { printf "%d %d %.0f %.0f %.0f %.2f\n", r, e, rps, p50, p99, (r > 0 ? t * 1e6 / hz / r : 0) }'
}

# median: the median of the numbers on standard input.
median() {
  sort -g | awk '{a[NR]=$1} END { if (NR == 0) { print 0 } else if (NR % 2) { print a[(NR+1)/2] } else { printf "%.9g\n", (a[NR/2] + a[NR/2+1]) / 2 } }'
}
