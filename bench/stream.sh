#!/usr/bin/env bash
# A 1 GiB download and a 1 GiB upload through Prox (release build), with Prox's peak resident
# memory (VmHWM) read from /proc: streaming with backpressure keeps it flat. The upstream is
# bench/stream_upstream.py.
#   bench/stream.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
bin=${PROX_BIN:-.build-release/release/prox}
[[ -x $bin ]] || scripts/build-release.sh
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
truncate -s "${size}M" "$work/big.bin"
up=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
px=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
python3 bench/stream_upstream.py "$up" &
for _ in $(seq 50); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$up),0.2).close()" 2>/dev/null && break; sleep 0.1; done
cat > "$work/prox.yaml" <<YAML
version: 1
server: {access_log: "off"}
listeners: [{id: main, address: "127.0.0.1:$px"}]
pools: [{id: up, endpoints: ["127.0.0.1:$up"]}]
routes: [{id: all, proxy: up}]
YAML
$bin serve --no-watch --threads 1 --config "$work/prox.yaml" 2>"$work/prox.log" &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$px/" && break; sleep 0.1; done
rss() { grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MiB"}'; }
echo "prox peak RSS after start: $(rss)"
t0=$(date +%s.%N)
curl -s -o /dev/null -w "download: %{size_download} bytes, HTTP %{http_code}, %{speed_download} B/s\n" "http://127.0.0.1:$px/bytes/$((size << 20))"
echo "prox peak RSS after download: $(rss)"
curl -s -o "$work/answer" -T "$work/big.bin" -X POST -w "upload:   %{size_upload} bytes, HTTP %{http_code}, %{speed_upload} B/s\n" "http://127.0.0.1:$px/upload"
echo "upstream received: $(cat "$work/answer") bytes"
echo "prox peak RSS after upload: $(rss)"
