#!/usr/bin/env python3
"""CPU per request split into user and kernel time, for the floors beside nginx.

perf's hardware counters are not available on this VM (`perf stat -e instructions true` says
<not supported>), so the split comes from the kernel's own accounting: utime and stime of every
thread of the proxy (/proc/PID/stat, io_uring's io-wq workers included) over a wrk run, divided by
the requests wrk completed. Same upstream and nginx config as ../shared/bench/compare.py (whose
helpers it imports); wrk with 1 thread, a 2 s warm-up, then the measured run. Prints `uptime`'s
load before each cell: these are wall-clock figures on a shared machine.

Usage: bench/cpu_split.py [--targets uringfloor,niofloor,nginx] [--threads 1,2] [--conns 64,256]
                          [--duration 8] [--niofloor PATH] [--uringfloor PATH]
"""
import argparse, os, re, subprocess, sys, tempfile, shutil, time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "shared", "bench"))
import compare  # ../shared/bench/compare.py

def ticks(pids):
    u = s = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            u += int(f[11]); s += int(f[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return u, s

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="uringfloor,niofloor,nginx")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--conns", default="64,256")
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--path", default="/bench/users/42")
    ap.add_argument("--niofloor", default=".build-release/release/prox-niofloor")
    ap.add_argument("--uringfloor", default=".build-uringfloor/release/prox-uringfloor")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="prox-cpusplit-")
    up, up_port = compare.start_upstream(work)
    print("| conns | threads | target | load (1 min) | req/s | user µs/req | kernel µs/req | kernel share |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for c in [int(x) for x in args.conns.split(",")]:
            for th in [int(x) for x in args.threads.split(",")]:
                for tg in args.targets.split(","):
                    load = os.getloadavg()[0]
                    ns = argparse.Namespace(config_template=None, prox=None)
                    if tg in ("niofloor", "uringfloor"):
                        ns.prox = os.path.abspath(args.niofloor if tg == "niofloor" else args.uringfloor) + \
                            " --listen 127.0.0.1:{port} --upstream {upstream} --threads {threads}"
                    p, port = compare.start_target(ns, "prox" if ns.prox else tg, th, work, up_port)
                    url = f"http://127.0.0.1:{port}{args.path}"
                    try:
                        subprocess.run(["wrk", "-t1", f"-c{c}", "-d2s", url], capture_output=True, timeout=30)
                        pids = compare.tree(p.pid)
                        u0, s0 = ticks(pids)
                        r = subprocess.run(["wrk", "-t1", f"-c{c}", f"-d{args.duration}s", url],
                                           capture_output=True, text=True, timeout=args.duration + 30)
                        u1, s1 = ticks(compare.tree(p.pid))
                    finally:
                        compare.stop(p)
                    n = int(re.search(r"(\d+) requests in", r.stdout).group(1))
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
                    us = lambda t: t / compare.TCK / n * 1e6
                    share = (s1 - s0) / max(1, (u1 - u0) + (s1 - s0))
                    print(f"| {c} | {th} | {tg} | {load:.2f} | {rps:,.0f} | {us(u1 - u0):.2f} | {us(s1 - s0):.2f} | {share:.0%} |", flush=True)
    finally:
        compare.stop(up)
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
