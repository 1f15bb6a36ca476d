#!/usr/bin/env bash
# Installs the system packages Prox needs to build and test (Debian/Ubuntu).
#   scripts/setup.sh          build + test needs: libpcre2-dev
#   scripts/setup.sh --bench  also what the benchmarks use: nginx, haproxy, wrk, valgrind
# Idempotent: skips packages already installed.
set -euo pipefail
pkgs=(libpcre2-dev pkg-config)
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(nginx haproxy wrk valgrind); fi
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
