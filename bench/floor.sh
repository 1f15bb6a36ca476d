#!/usr/bin/env bash
# The SwiftNIO floor beside nginx and HAProxy: ../shared/bench/compare.py with prox-niofloor
# (bench/NIOFloor: bytes forwarded verbatim, one upstream connection per client, no HTTP work)
# in Prox's place. What it costs per request is what SwiftNIO and the kernel cost; Prox cannot
# cost less. Records a JSON-lines file under bench/results/.
#   bench/floor.sh                      # 1 and 2 threads, c64 and c256, 3 rounds of 8 s
#   ROUNDS=1 DURATION=5 bench/floor.sh  # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
scripts/build-release.sh --product prox-niofloor >/dev/null
floor="$(pwd)/.build-release/release/prox-niofloor"
mkdir -p bench/results
out="bench/results/floor-$(date -u +%Y%m%d-%H%M%S).jsonl"
python3 ../shared/bench/compare.py \
  --prox "$floor --listen 127.0.0.1:{port} --upstream {upstream} --threads {threads}" \
  --targets "${TARGETS:-nginx,haproxy,prox}" \
  --threads "${THREADS:-1,2}" --conns "${CONNS:-64,256}" \
  --rounds "${ROUNDS:-3}" --duration "${DURATION:-8}" --path "${BENCH_PATH:-/bench/users/42}" \
  --json "$out"
echo "raw results: $out"
