#!/usr/bin/env bash
# HTTPS side by side: Prox against nginx, the same certificate (EC P-256, made here with openssl),
# the same nginx upstream answering 200 "ok", the same wrk, on 1 and 2 event loops (nginx worker
# processes). Three figures per proxy and thread count:
#   full handshakes/s  a new TLS connection per request, never resumed: CLIENTS parallel
#                 `openssl s_time -new` (one HTTP/1.0 GET per connection), connections summed
#   resumed/s     a new connection per request with wrk and `Connection: close`. wrk resumes the
#                 previous session when the server allows it (OpenSSL keeps it across SSL_clear),
#                 and Prox's BoringSSL issues session tickets (swift-nio-ssl has no switch for
#                 them), so nginx gets `ssl_session_tickets on` too: abbreviated handshakes on both
#   keep-alive    requests/s over long-lived HTTPS connections (one handshake each, at the start)
# Both negotiate TLS 1.3 (TLS_AES_128_GCM_SHA256, X25519). Results: a JSON-lines file under
# bench/results/ and a table on stdout; record them in docs/BENCHMARKS.md.
#   bench/tls-compare.sh                          # threads 1,2; 64 connections; 3 rounds of 8 s
#   THREADS=1 ROUNDS=1 DURATION=5 bench/tls-compare.sh
#   CHECK=1 bench/tls-compare.sh                  # start everything, one request each, no timing
# Run it on a quiet machine: wrk shares the cores with the proxies (as in bench/compare.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${CHECK:-}" == 1 ]] || scripts/setup.sh --bench
prox=${PROX:-$(scripts/build-release.sh | tail -1)}
threads_list=${THREADS:-1,2}
conns=${CONNS:-64}
clients=${CLIENTS:-4}
rounds=${ROUNDS:-3}
duration=${DURATION:-8}

work=$(mktemp -d /tmp/prox-tls-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout "$work/bench.key" \
    -out "$work/bench.crt" -subj /CN=bench.local -addext subjectAltName=DNS:bench.local 2>/dev/null

nginx_conf() {  # nginx_conf <dir> <workers> <server block>
    mkdir -p "$1"
    cat > "$1/nginx.conf" <<NGINX
daemon off; master_process on; worker_processes $2; pid $1/nginx.pid; error_log $1/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
$3 }
NGINX
}

# The upstream both proxies forward to.
up=$(free_port)
nginx_conf "$work/up" 2 "server { listen 127.0.0.1:$up; location / { return 200 \"ok\"; } }"
nginx -p "$work/up" -c "$work/up/nginx.conf" >/dev/null 2>&1 & pids+=($!)
wait_port "$up"

# start_prox/start_nginx <threads>: set PORT and PID (no command substitution: the server
# would inherit its output pipe).
start_prox() {
    local port; port=$(free_port)
    cat > "$work/prox.yaml" <<YAML
version: 1
server: {access_log: "off"}
listeners:
  - id: bench
    address: "127.0.0.1:$port"
    limits: {max_connections: 100000}
    tls:
      certificates: [{cert: $work/bench.crt, key: $work/bench.key}]
pools:
  - id: upstream
    endpoints: ["127.0.0.1:$up"]
    limits: {max_connections_per_endpoint: 4096, max_idle_per_endpoint: 1024}
routes:
  - id: bench
    proxy: upstream
YAML
    "$prox" serve --no-watch --config "$work/prox.yaml" --threads "$1" --log-level warning >/dev/null 2>"$work/prox.err" &
    PID=$!; pids+=("$PID"); PORT=$port
    wait_port "$port"
}

start_nginx() {
    local port; port=$(free_port)
    nginx_conf "$work/nginx-$1" "$1" "upstream origin { server 127.0.0.1:$up; keepalive 64; }
server { listen 127.0.0.1:$port ssl; ssl_certificate $work/bench.crt; ssl_certificate_key $work/bench.key;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets on;
  location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
    nginx -p "$work/nginx-$1" -c "$work/nginx-$1/nginx.conf" >/dev/null 2>&1 &
    PID=$!; pids+=("$PID"); PORT=$port
    wait_port "$port"
}

rps() { grep -oE 'Requests/sec: *[0-9.]+' | grep -oE '[0-9.]+$'; }

# Full handshakes per second: $clients `openssl s_time -new` in parallel for $duration s, summed.
full_handshakes() {  # full_handshakes <port>
    local i
    for i in $(seq 1 "$clients"); do
        openssl s_time -connect "127.0.0.1:$1" -new -www / -time "$duration" > "$work/stime.$i" 2>&1 &
    done
    wait $(jobs -p | tail -n "$clients") 2>/dev/null || true
    for i in $(seq 1 "$clients"); do
        grep -oE '[0-9]+ connections in [0-9.]+ real' "$work/stime.$i" | awk '{print $1 / $4}'
    done | awk '{s += $1} END {printf "%.1f", s}'
}

mkdir -p bench/results
out="bench/results/tls-compare-$(date -u +%Y%m%d-%H%M%S).jsonl"
echo "| proxy | threads | full handshakes/s | resumed handshakes/s (wrk) | HTTPS keep-alive req/s |"
echo "|---|---|---|---|---|"
for t in ${threads_list//,/ }; do
    for proxy in prox nginx; do
        if [[ $proxy == prox ]]; then start_prox "$t"; else start_nginx "$t"; fi
        port=$PORT pid=$PID
        url="https://127.0.0.1:$port/"
        if [[ "${CHECK:-}" == 1 ]]; then
            code=$(curl -sk --resolve "bench.local:$port:127.0.0.1" -o /dev/null -w '%{http_code} %{ssl_verify_result}' "https://bench.local:$port/")
            echo "| $proxy | $t | check: HTTP $code | $(DURATION=1 duration=1 full_handshakes "$port") | - |"
        else
            fh=() hs=() ka=()
            for r in $(seq 1 "$rounds"); do
                fh+=("$(full_handshakes "$port")")
                hs+=("$(wrk -t1 -c"$conns" -d"${duration}s" -H 'Connection: close' "$url" | rps)")
                ka+=("$(wrk -t1 -c"$conns" -d"${duration}s" "$url" | rps)")
            done
            best() { printf '%s\n' "$@" | sort -g | tail -1; }
            echo "| $proxy | $t | $(best "${fh[@]}") | $(best "${hs[@]}") | $(best "${ka[@]}") |"
            printf '{"proxy":"%s","threads":%s,"conns":%s,"clients":%s,"duration_s":%s,"full_handshakes_per_s":[%s],"resumed_per_s":[%s],"keepalive_rps":[%s],"load":"%s"}\n' \
                "$proxy" "$t" "$conns" "$clients" "$duration" "$(IFS=,; echo "${fh[*]}")" "$(IFS=,; echo "${hs[*]}")" "$(IFS=,; echo "${ka[*]}")" \
                "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out"
        fi
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
[[ "${CHECK:-}" == 1 ]] || echo "raw results: $out (best of $rounds rounds shown)"
