#!/usr/bin/env bash
# The release build Prox ships and benchmarks: optimized, with Swift's dynamic exclusivity checks
# off in every module, dependencies included (measured: ~14% fewer instructions per proxied
# request, docs/BENCHMARKS.md). Package.swift can only switch them off for Prox's own targets;
# SwiftNIO's hot paths need this command-line flag.
#   scripts/build-release.sh     -> .build-release/release/prox
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --scratch-path .build-release -Xswiftc -enforce-exclusivity=unchecked "$@"
echo "$(pwd)/.build-release/release/prox"
