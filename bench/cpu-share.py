#!/usr/bin/env python3
"""Where a request's CPU goes on this machine: the load generator, the upstream and the proxy.

For each round, Prox and then nginx as the proxy (same upstream, same wrk, one thread each):
wrk runs for a few seconds and the CPU time each process spent over the window (from
/proc/<pid>/stat) is divided by the requests served in it; the machine's idle time over the
same window comes from /proc/stat. This is what says whether the proxy's CPU per request is
what limits req/s (docs/BENCHMARKS.md, "What bounds the 1-thread cells").

Also per 100 requests: how often each process went to sleep waiting (its threads' voluntary
context switches, /proc/<pid>/task/*/status) and the machine's context switches (/proc/stat):
how finely the three processes hand work to each other.

  python3 bench/cpu-share.py [--prox .build-release/release/prox] [--config bench/compare-uring.yaml]
                             [--conns 64] [--threads 1] [--rounds 4] [--duration 4]

Needs nginx and wrk (scripts/setup.sh --bench). Loopback only; bounded in time.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

# The side-by-side script's helpers (as bench/soak.py uses them): the same upstream, the same
# nginx settings.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
from compare import NGINX_COMMON, cpu_ticks, free_port, start_upstream, stop, tree, wait_port, write  # noqa: E402

TCK = os.sysconf("SC_CLK_TCK")


def idle_ticks():
    f = open("/proc/stat").readline().split()
    return int(f[4]) + int(f[5])


def sleeps(pids):
    """Voluntary context switches of every thread of `pids` (a thread waiting for work)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                for line in open(f"/proc/{pid}/task/{t}/status"):
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
            except OSError:
                pass
    return total


def machine_switches():
    for line in open("/proc/stat"):
        if line.startswith("ctxt "):
            return int(line.split()[1])
    return 0


def start(cmd, port, log):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"), start_new_session=True)
    wait_port(port)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prox", default=".build-release/release/prox")
    ap.add_argument("--config", default="bench/compare-uring.yaml")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=int, default=4)
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool): raise SystemExit(f"needs {tool}: scripts/setup.sh --bench")

    work = tempfile.mkdtemp(prefix="prox-share-")
    upstream, up_port = start_upstream(work)
    rows = {"prox": [], "nginx": []}
    try:
        for r in range(args.rounds):
            for target in ("prox", "nginx"):
                port = free_port()
                d = tempfile.mkdtemp(dir=work, prefix=target)
                if target == "prox":
                    cfg = f"{d}/config.yaml"
                    write(cfg, open(args.config).read().replace("{port}", str(port))
                                         .replace("{upstream}", f"127.0.0.1:{up_port}").replace("{threads}", str(args.threads)))
                    cmd = [args.prox, "serve", "--no-watch", "--config", cfg, "--threads", str(args.threads)]
                else:
                    write(f"{d}/nginx.conf", f"worker_processes {args.threads};\n" + NGINX_COMMON.format(d=d) +
                        f"upstream origin {{ server 127.0.0.1:{up_port}; keepalive 1024; keepalive_requests 100000000; keepalive_timeout 300s; }}\n"
                        f"server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ proxy_pass http://origin; proxy_http_version 1.1;"
                        f" proxy_set_header Connection \"\"; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }} }} }}\n")
                    cmd = ["nginx", "-p", d, "-c", f"{d}/nginx.conf"]
                proxy = start(cmd, port, f"{d}/stderr.log")
                url = f"http://127.0.0.1:{port}/"
                try:
                    subprocess.run(["wrk", "-t1", f"-c{args.conns}", "-d1s", url], capture_output=True, timeout=30)
                    wrk = subprocess.Popen(["wrk", "-t1", f"-c{args.conns}", f"-d{args.duration + 2}s", url],
                                           stdout=subprocess.PIPE, text=True)
                    time.sleep(0.5)
                    procs = {"wrk": [wrk.pid], "upstream": tree(upstream.pid), "proxy": tree(proxy.pid)}
                    t0 = {k: cpu_ticks(v) for k, v in procs.items()}; i0 = idle_ticks(); w0 = time.time()
                    s0 = {k: sleeps(v) for k, v in procs.items()}; c0 = machine_switches()
                    time.sleep(args.duration)
                    t1 = {k: cpu_ticks(v) for k, v in procs.items()}; i1 = idle_ticks(); w1 = time.time()
                    s1 = {k: sleeps(v) for k, v in procs.items()}; c1 = machine_switches()
                    out = wrk.communicate(timeout=60)[0]
                finally:
                    stop(proxy)
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                n = rps * (w1 - w0)
                us = {k: (t1[k] - t0[k]) / TCK * 1e6 / n for k in procs}
                idle = (i1 - i0) / TCK / (w1 - w0) * 100
                sl = {k: (s1[k] - s0[k]) * 100 / n for k in procs}
                cs = (c1 - c0) * 100 / n
                rows[target].append((rps, us["wrk"], us["upstream"], us["proxy"], idle, sl["wrk"], sl["upstream"], sl["proxy"], cs))
                print(f"round {r} {target:5} {rps:9.0f} req/s  wrk {us['wrk']:.2f}  upstream {us['upstream']:.2f}"
                      f"  proxy {us['proxy']:.2f} µs/req  idle {idle:.1f}% of one core;  per 100 requests: sleeps"
                      f" wrk {sl['wrk']:.1f} upstream {sl['upstream']:.1f} proxy {sl['proxy']:.1f}, switches {cs:.1f}", flush=True)
    finally:
        stop(upstream)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nc{args.conns}, {args.threads} thread(s), medians of {args.rounds} rounds:")
    print("| proxy | req/s | wrk µs/req | upstream µs/req | proxy µs/req | idle, of one core |"
          " sleeps per 100 requests (wrk / upstream / proxy) | machine's switches per 100 requests |")
    print("|---|---|---|---|---|---|---|---|")
    for target, rs in rows.items():
        med = [statistics.median(x[i] for x in rs) for i in range(9)]
        print(f"| {target} | {med[0]:,.0f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.2f} | {med[4]:.1f}% |"
              f" {med[5]:.1f} / {med[6]:.1f} / {med[7]:.1f} | {med[8]:.1f} |")


if __name__ == "__main__":
    main()
