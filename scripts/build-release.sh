#!/usr/bin/env bash
# The release build Prox ships and benchmarks: optimized, with Swift's dynamic exclusivity checks
# off in every module, dependencies included (the measured gain: docs/BENCHMARKS.md, "The
# exclusivity flag"). Package.swift sets no unsafe flags (Prox must stay usable as a dependency),
# and SwiftNIO's hot paths need the flag anyway, so it is passed on the command line.
#   scripts/build-release.sh          -> .build-release/release/prox
#   scripts/build-release.sh --uring  -> .build-uring/release/prox: SwiftNIO's experimental
#       io_uring selector (io_uring as the readiness notifier in place of epoll; reads and writes
#       stay system calls), for measurement only (issue 9; docs/BENCHMARKS.md, "io_uring floor").
#       Needs liburing-dev (scripts/setup.sh --bench) at build and run time.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-release
flags=()
if [[ "${1:-}" == "--uring" ]]; then
  shift
  scratch=.build-uring
  flags=(-Xcc -DSWIFTNIO_USE_IO_URING=1 -Xlinker -luring -Xswiftc -DSWIFTNIO_USE_IO_URING
         -Xswiftc -DSWIFTNIO_IO_URING_MULTISHOT)
fi
swift build -c release --scratch-path "$scratch" -Xswiftc -enforce-exclusivity=unchecked ${flags[@]+"${flags[@]}"} "$@"
echo "$(pwd)/$scratch/release/prox"
