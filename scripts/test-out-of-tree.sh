#!/usr/bin/env bash
# Builds templates/custom-prox (a `prox` with an extra filter, depending on this checkout by path,
# as a team's own repository would depend on a Prox release) and checks the binary knows the
# extra filter. A separate SwiftPM build, in .build-outoftree: slow when cold (it compiles
# SwiftNIO again); later runs are incremental.
#   scripts/test-out-of-tree.sh            build + checks
#   scripts/test-out-of-tree.sh --tests    also run the template's own tests
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scratch="$root/.build-outoftree"
pkg="$root/templates/custom-prox"
start=$(date +%s)
swift build --package-path "$pkg" --scratch-path "$scratch" --product acme-prox
bin="$(swift build --package-path "$pkg" --scratch-path "$scratch" --show-bin-path)/acme-prox"
fail() { echo "test-out-of-tree: $*" >&2; exit 1; }
list=$("$bin" filters)
echo "$list"
grep -qE '^api_key +custom ' <<<"$list" || fail "acme-prox filters does not list api_key as custom"
grep -qE '^tenant +custom ' <<<"$list" || fail "acme-prox filters does not list the shipped custom filters"
"$bin" validate "$pkg/acme.yaml" || fail "acme.yaml does not validate"
"$bin" filters api_key | grep -q '`keys`' || fail "prox filters api_key does not print its reference"
if [[ "${1:-}" == "--tests" ]]; then
    swift test --package-path "$pkg" --scratch-path "$scratch"
fi
echo "out-of-tree build + checks: $(( $(date +%s) - start )) s"
