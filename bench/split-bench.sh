#!/bin/sh
# Traffic-split cost per request, from the real sources, optimized build.
#   bench/split-bench.sh              ns per decision (medians of 7 runs of 50M decisions)
#   bench/split-bench.sh --callgrind  instructions per decision (callgrind, (I(N2)-I(N1))/(N2-N1))
set -e
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# TrafficSplit.swift imports ProxCore; compiled here as one module with the files it uses.
sed '/^import ProxCore$/d' Sources/ProxUpstream/TrafficSplit.swift > "$out/TrafficSplit.swift"
swiftc -O -wmo -module-name SplitBench -o "$out/split-bench" \
    Sources/ProxCore/Slots/SplitTable.swift Sources/ProxCore/Chain/RequestID.swift "$out/TrafficSplit.swift" \
    bench/SplitBench/main.swift
if [ "$1" != "--callgrind" ]; then "$out/split-bench"; exit; fi
count() {
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$out/split-bench" "$1" "$2" 2>&1 \
        | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
for mode in plain two four given; do
    a=$(count $mode 100000); b=$(count $mode 1100000)
    echo "$mode: $(( (b - a) / 1000000 )) instructions per decision"
done
