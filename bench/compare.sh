#!/usr/bin/env bash
# Side-by-side benchmark: Prox against nginx and HAProxy (../shared/bench/compare.py), same
# upstream, same wrk, same thread count. Records a JSON-lines file under bench/results/.
#   bench/compare.sh                      # 1 and 2 threads, c64 and c256, 3 rounds of 8 s
#   ROUNDS=1 DURATION=5 bench/compare.sh  # quicker
#   CONFIG=bench/compare-uring.yaml bench/compare.sh   # Prox on the io_uring engine
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
prox=$(scripts/build-release.sh | tail -1)
mkdir -p bench/results
out="bench/results/compare-$(date -u +%Y%m%d-%H%M%S).jsonl"
python3 ../shared/bench/compare.py \
  --prox "$prox serve --no-watch --config {config} --threads {threads}" \
  --config-template "${CONFIG:-bench/compare.yaml}" \
  --threads "${THREADS:-1,2}" --conns "${CONNS:-64,256}" \
  --rounds "${ROUNDS:-3}" --duration "${DURATION:-8}" --path "${BENCH_PATH:-/bench/users/42}" \
  --json "$out"
echo "raw results: $out"
