#!/usr/bin/env python3
"""Writes a config of N mixed routes for timing `prox validate` at scale (docs/BENCHMARKS.md,
"Validate at scale"): exact, prefix and regex paths (the regexes with named captures) over five
hosts, a third of each, in a fixed pseudo-random order, plus a few real shadowed routes so the
check has something to find.

    bench/gen-routes.py 10000 > /tmp/10k.yaml && time prox validate /tmp/10k.yaml

A third argument, `changed`, writes the same config changed for timing `prox diff` (docs/BENCHMARKS.md,
"Issue 8 tools: `prox diff` at scale"): one POST-only route inserted near the top, and route r5000
moved to another host.

    bench/gen-routes.py 10000 0 > /tmp/10k.yaml && bench/gen-routes.py 10000 0 changed > /tmp/10k-b.yaml
    time prox diff /tmp/10k.yaml /tmp/10k-b.yaml
"""
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
shadowed = int(sys.argv[2]) if len(sys.argv) > 2 else 10
changed = len(sys.argv) > 3 and sys.argv[3] == "changed"
rng = random.Random(8)
hosts = [f"h{i}.example.com" for i in range(5)]
out = ["version: 1", "listeners:", "  - id: main", "    address: 127.0.0.1:8080",
       "pools:", "  - id: api", "    endpoints: [127.0.0.1:9000]", "routes:"]
if changed:
    out += ["  - id: inserted", "    match: {host: h1.example.com, path: {prefix: /v2/}, methods: [POST]}", "    proxy: api"]
for i in range(n - shadowed):
    host = hosts[i % 5]
    if changed and i == 5000:
        host = hosts[(i + 1) % 5]
    svc, ver = f"svc{i // 15}", f"v{i % 3 + 1}"
    kind = rng.randrange(3)
    if kind == 0:
        path = f'{{exact: /{ver}/{svc}/items/{i}}}'
    elif kind == 1:
        path = f'{{prefix: /{ver}/{svc}/p{i}/}}'
    else:
        path = f'{{regex: "^/{ver}/{svc}/r{i}/(?<id>[0-9]+)/(?<name>[a-z]+)$"}}'
    methods = ", methods: [GET, HEAD]" if rng.randrange(4) == 0 else ""
    out += [f"  - id: r{i}", f"    match: {{host: {host}, path: {path}{methods}}}", "    proxy: api"]
# Routes shadowed by an earlier one: an exact path under an earlier prefix of the same host.
for k in range(shadowed):
    i = 3 * k + 1
    out += [f"  - id: late{k}", f"    match: {{host: {hosts[i % 5]}, path: {{exact: /v{i % 3 + 1}/svc{i // 15}/p{i}/x}}}}",
            "    proxy: api"]
print("\n".join(out))
