#!/usr/bin/env python3
"""Latency under load with and without reloads (issue #6: reloads must not stall the event loops).

Usage:
  reload_latency.py --prox PATH [--threads 2] [--conns 32] [--duration 25] [--interval 0.2]
                    [--reloads 100] [--rounds 2] [--config bench/compare.yaml] [--extra-routes N]
                    [--json OUT.jsonl]

Loopback only. Starts an nginx upstream answering 200 "ok" (as ../shared/bench/compare.py does) and
`prox serve --config FILE --threads N --no-watch`, then for each round runs wrk (1 thread,
--latency) twice for --duration seconds: once quietly, once while a SIGHUP every --interval
seconds makes Prox recompile and swap its config (--reloads of them, spread over the run). Each
reload reads the file anew, compiles it off the loops and swaps it in; the log line "snapshot N is
live" is counted to prove the reloads happened. Prints p50, p99, max latency, req/s and errors for
both, per round, and appends JSON lines to --json.
"""
import argparse, json, os, re, signal, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
from compare import free_port, start_upstream, stop, wait_port  # noqa: E402


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port, conns, duration):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=duration + 30).stdout
    r = {}
    m = re.search(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    if m: r["max_ms"] = to_ms(*m.groups())
    for q in ("50", "99"):
        m = re.search(rf"\s{q}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        if m: r[f"p{q}_ms"] = to_ms(*m.groups())
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m: errs += sum(int(x) for x in m.groups())
    r["errors"] = errs
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prox", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--duration", type=int, default=25)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--reloads", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--config", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare.yaml"))
    ap.add_argument("--extra-routes", type=int, default=0,
                    help="append N regex routes (never matched by the load) so each reload compiles and frees more")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="prox-reload-")
    upstream, up_port = start_upstream(work)
    port = free_port()
    cfg = os.path.join(work, "prox.yaml")
    with open(cfg, "w") as f:
        f.write(open(a.config).read().replace("{port}", str(port)).replace("{upstream}", f"127.0.0.1:{up_port}")
                .replace("{threads}", str(a.threads)))
        for i in range(a.extra_routes):
            f.write(f"  - id: extra{i}\n    match:\n      host: h{i}.example\n      path: {{regex: \"^/r{i}/(?<id>[0-9]+)/(?<rest>.*)$\"}}\n"
                    f"    respond: {{status: 200, body: \"{{path.1}}\"}}\n")
    log = open(os.path.join(work, "prox.log"), "w+")
    prox = subprocess.Popen([a.prox, "serve", "--no-watch", "--config", cfg, "--threads", str(a.threads)],
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    rows = []
    try:
        wait_port(port)
        run_wrk(port, a.conns, 3)  # warm up
        for rnd in range(a.rounds):
            quiet = run_wrk(port, a.conns, a.duration)
            sent = [0]
            done = threading.Event()

            def hup():
                # Reloads spread over the middle of the run, never past its end.
                time.sleep(max(0.0, (a.duration - a.reloads * a.interval) / 2))
                while sent[0] < a.reloads and not done.is_set():
                    os.kill(prox.pid, signal.SIGHUP)
                    sent[0] += 1
                    time.sleep(a.interval)

            t = threading.Thread(target=hup)
            t.start()
            busy = run_wrk(port, a.conns, a.duration)
            done.set()
            t.join()
            time.sleep(0.5)
            log.seek(0)
            live = len(re.findall(r"snapshot \d+ is live", log.read()))
            for name, r in (("quiet", quiet), ("reloading", busy)):
                r.update(round=rnd + 1, run=name, reloads=sent[0] if name == "reloading" else 0,
                         threads=a.threads, conns=a.conns, duration=a.duration, extra_routes=a.extra_routes)
                rows.append(r)
            rows[-1]["swaps_logged_total"] = live
    finally:
        stop(prox)
        stop(upstream)
    print(f"| round | run | reloads | req/s | p50 ms | p99 ms | max ms | errors |")
    print(f"|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['run']} | {r['reloads']} | {r['rps']:.0f} | {r.get('p50_ms', 0):.2f} | "
              f"{r.get('p99_ms', 0):.2f} | {r.get('max_ms', 0):.2f} | {r['errors']} |")
    print(f"swaps logged by prox: {rows[-1].get('swaps_logged_total')}")
    if a.json:
        with open(a.json, "a") as f:
            for r in rows: f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
