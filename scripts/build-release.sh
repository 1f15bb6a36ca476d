#!/usr/bin/env bash
# The release build Prox ships and benchmarks: optimized, with Swift's dynamic exclusivity checks
# off in every module, dependencies included (the measured gain: docs/BENCHMARKS.md, "The
# exclusivity flag"). Package.swift sets no unsafe flags (Prox must stay usable as a dependency),
# and SwiftNIO's hot paths need the flag anyway, so it is passed on the command line.
#   scripts/build-release.sh     -> .build-release/release/prox
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --scratch-path .build-release -Xswiftc -enforce-exclusivity=unchecked "$@"
echo "$(pwd)/.build-release/release/prox"
