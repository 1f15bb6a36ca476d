#!/usr/bin/env bash
# Connection-churn and idle keep-alive soak (issue #6): Prox's resident memory against nginx as a
# proxy, same upstream, loopback only (bench/soak.py --help). Records a JSON-lines file under
# bench/results/ and prints a Markdown table.
#   bench/soak.sh                                  # 100,000 churned and 10,000 idle connections, --threads 1
#   bench/soak.sh --churn 5000 --idle 1000         # quick check (~1 minute)
#   PROX_BIN=path/to/prox bench/soak.sh            # skip the release build
# Needs nginx and cc (scripts/setup.sh --bench); Prox is the release build (scripts/build-release.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
prox=${PROX_BIN:-$(scripts/build-release.sh | tail -1)}
mkdir -p bench/results
out="bench/results/soak-$(date -u +%Y%m%d-%H%M%S).jsonl"
python3 bench/soak.py --prox "$prox" --json "$out" "$@"
echo "raw results: $out"
