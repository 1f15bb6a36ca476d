#!/usr/bin/env bash
# The io_uring floor beside nginx and HAProxy: bench/floor.sh's run with prox-uringfloor
# (bench/URingFloor: bytes forwarded verbatim through one io_uring per thread, one upstream
# connection per client, no HTTP work) in Prox's place. Records a JSON-lines file under
# bench/results/. bench/URingFloor is a package of its own (liburing-dev: scripts/setup.sh --bench),
# built into .build-uringfloor.
#   bench/uring-floor.sh                      # 1 and 2 threads, c64 and c256, 3 rounds of 8 s
#   ROUNDS=1 DURATION=5 bench/uring-floor.sh  # quicker
#   BUILD_ONLY=1 bench/uring-floor.sh         # just build (for bench/callgrind.py, bench/syscalls.py)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
swift build -c release --package-path bench/URingFloor --scratch-path .build-uringfloor \
  -Xswiftc -enforce-exclusivity=unchecked >/dev/null
floor="$(pwd)/.build-uringfloor/release/prox-uringfloor"
[[ -n "${BUILD_ONLY:-}" ]] && { echo "$floor"; exit 0; }
mkdir -p bench/results
out="bench/results/uring-floor-$(date -u +%Y%m%d-%H%M%S).jsonl"
echo "load before: $(uptime)"
python3 ../shared/bench/compare.py \
  --prox "$floor --listen 127.0.0.1:{port} --upstream {upstream} --threads {threads}" \
  --targets "${TARGETS:-nginx,haproxy,prox}" \
  --threads "${THREADS:-1,2}" --conns "${CONNS:-64,256}" \
  --rounds "${ROUNDS:-3}" --duration "${DURATION:-8}" --path "${BENCH_PATH:-/bench/users/42}" \
  --json "$out"
echo "load after: $(uptime)"
echo "raw results: $out"
