#!/usr/bin/env bash
# Installs the system packages Prox needs to build and test (Debian/Ubuntu).
#   scripts/setup.sh          build + test needs: libpcre2-dev, pkg-config, and openssl (the
#                             command line: the TLS tests make their certificates with it)
#   scripts/setup.sh --bench  also what the benchmarks use: nginx, haproxy, wrk, valgrind, strace,
#                             liburing-dev (bench/URingFloor)
# No libssl-dev: Prox's TLS is swift-nio-ssl, which builds its own copy of BoringSSL.
# Not needed to build or test, but on a host that runs Prox: ca-certificates, the system trust
# store that pools with `tls` and no `ca` verify their upstreams against.
# Idempotent: skips packages already installed.
set -euo pipefail
pkgs=(libpcre2-dev pkg-config openssl)
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(nginx haproxy wrk valgrind strace liburing-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift is not on PATH (Swift 6.x toolchain needed)" >&2; exit 1; }
