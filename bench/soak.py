#!/usr/bin/env python3
"""Connection-churn and idle-connection soak: resident memory of Prox and of nginx as a proxy (issue #6).

Usage:
  soak.py --prox PATH [--churn 100000] [--idle 10000] [--concurrency 64] [--threads 1]
          [--targets prox,nginx] [--settle 2] [--warmup 1000] [--timeout 900] [--json OUT.jsonl]

Loopback only (127.0.0.1). For each target, in turn, in front of the same upstream (an nginx answering
200 "ok", as ../shared/bench/compare.py starts it):
  1. start the proxy (Prox: `PATH serve --no-watch --config GENERATED --threads N`; nginx: a reverse
     proxy with `worker_processes N`, upstream keep-alive as compare.py's nginx target);
  2. churn --warmup connections (not counted), let it settle, read the proxy's RSS ("before");
  3. churn --churn connections, at most --concurrency at once: each connects, sends one GET, reads
     the whole response, closes; settle --settle seconds, read RSS ("after"): delta and delta per
     connection;
  4. open --idle connections, each after one completed request (so it sits in keep-alive idle), hold
     them all, settle, read RSS: KiB per idle connection; close them, settle, read RSS again.
The load client is bench/soak_client.c, compiled with cc at run time (epoll, one thread).
RSS is VmRSS from /proc/PID/status summed over the proxy's process tree (nginx master + worker).
Prints a Markdown table with the targets side by side and appends JSON lines to --json.
Every phase is bounded; the whole run stops after --timeout seconds and stops its processes.
Generated Prox config: the listener's max_connections and keep_alive_idle are raised to fit the
idle phase (defaults 10000 and 1m, docs/CONFIG.md); --config-template FILE replaces the built-in
template ({port} {upstream} {max_connections} {keep_alive_idle} are filled in).
"""
import argparse, datetime, json, os, resource, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
from compare import NGINX_COMMON, free_port, start_upstream, stop, tree, wait_port, write  # noqa: E402

PROX_TEMPLATE = """version: 1
server:
  access_log: "off"
  drain_timeout: 1s
listeners:
  - id: soak
    address: "127.0.0.1:{port}"
    limits:
      max_connections: {max_connections}
    timeouts:
      keep_alive_idle: {keep_alive_idle}
pools:
  - id: upstream
    endpoints: ["{upstream}"]
routes:
  - id: all
    proxy: upstream
"""


class Expired(BaseException):
    pass


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def build_client(work):
    """The load client is bench/soak_client.c (epoll, one thread): Python asyncio managed ~6x fewer connections
    per CPU second, and on a shared 2-core machine the client's CPU is taken from the proxy's."""
    exe = os.path.join(work, "soak_client")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak_client.c")],
                   check=True)
    return exe


def parse_done(line):
    _, ok, errs, secs, first = line.split(" ", 4)
    return int(ok), int(errs), float(secs), (None if first.strip() == "-" else first.strip())


def churn(args, port, count, label):
    """`count` connections, each one request and its full response, then closed. Returns (ok, errors, s, first error)."""
    r = subprocess.run([args.client, str(port), str(count), str(args.concurrency), "churn", args.path,
                        str(int(args.conn_timeout * 1000))], capture_output=True, text=True, timeout=args.timeout)
    if r.returncode != 0:
        raise RuntimeError(f"soak_client failed: {r.stderr}")
    res = parse_done(r.stdout.strip().splitlines()[-1])
    if label:
        print(f"  {label}: {res[0]:,} ok, {res[1]} errors in {res[2]:.1f}s ({count / res[2]:,.0f}/s)"
              + (f", first error: {res[3]}" if res[3] else ""), file=sys.stderr, flush=True)
    return res


def start_proxy(args, target, work, upstream_port):
    up = f"127.0.0.1:{upstream_port}"
    port = free_port()
    d = tempfile.mkdtemp(dir=work, prefix=target)
    max_conns = args.idle + args.concurrency + 1024
    if target == "nginx":
        common = NGINX_COMMON.replace("worker_connections 16384", f"worker_connections {max(16384, 2 * max_conns)}")
        common = common.replace("keepalive_timeout 300s", f"keepalive_timeout {args.timeout}s")
        write(f"{d}/nginx.conf", f"worker_processes {args.threads};\n" + common.format(d=d) +
              f"upstream origin {{ server {up}; keepalive 1024; keepalive_requests 100000000; keepalive_timeout 300s; }}\n"
              f"server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ proxy_pass http://origin; proxy_http_version 1.1;"
              f" proxy_set_header Connection \"\"; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }} }} }}\n")
        cmd = ["nginx", "-p", d, "-c", f"{d}/nginx.conf"]
    elif target == "prox":
        template = open(args.config_template).read() if args.config_template else PROX_TEMPLATE
        config = f"{d}/config.yaml"
        write(config, template.replace("{port}", str(port)).replace("{upstream}", up)
              .replace("{max_connections}", str(max(max_conns, 10000))).replace("{keep_alive_idle}", f"{args.timeout}s")
              .replace("{threads}", str(args.threads)))
        cmd = [args.prox, "serve", "--no-watch", "--config", config, "--threads", str(args.threads)]
    else:
        raise SystemExit(f"unknown target {target} (prox, nginx)")
    log = open(f"{d}/stderr.log", "w")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    p.log_path = log.name
    try:
        wait_port(port)
    except RuntimeError:
        stop(p)
        raise SystemExit(f"{target} did not start; its stderr:\n" + open(f"{d}/stderr.log").read()[-2000:])
    return p, port


def soak(args, target, proc, port):
    def rss_kib_alive():
        if proc.poll() is not None:
            raise RuntimeError(f"{target} exited ({proc.returncode}); its stderr:\n" + open(proc.log_path).read()[-2000:])
        return rss_kib(proc.pid)
    rss = rss_kib_alive
    r = dict(target=target, threads=args.threads, churn=args.churn, idle=args.idle, concurrency=args.concurrency,
             warmup=args.warmup, settle_s=args.settle, rss_start_kib=rss())
    settle = lambda: time.sleep(args.settle)  # noqa: E731
    if args.warmup:
        r["warmup_errors"] = churn(args, port, args.warmup, None)[1]
        settle()
    r["rss_before_kib"] = before = rss()
    print(f"{target}: RSS {before / 1024:.1f} MiB before churn", file=sys.stderr, flush=True)
    ok, errs, secs, first = churn(args, port, args.churn, f"{target} churn")
    settle()
    r["rss_after_churn_kib"] = after = rss()
    r.update(churn_s=round(secs, 2), churn_per_s=round(args.churn / secs), churn_errors=errs, churn_first_error=first,
             churn_delta_kib=after - before, churn_kib_per_conn=round((after - before) / args.churn, 3) if args.churn else None)
    print(f"{target}: RSS {after / 1024:.1f} MiB after {args.churn:,} churned connections"
          f" ({(after - before) / max(args.churn, 1):+.3f} KiB each)", file=sys.stderr, flush=True)
    c = subprocess.Popen([args.client, str(port), str(args.idle), str(args.concurrency), "idle", args.path,
                          str(int(args.conn_timeout * 1000))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = c.stdout.readline().split()  # held N errors E
        if len(line) != 4:
            raise RuntimeError("soak_client (idle) stopped early")
        settle()
        r["rss_idle_kib"] = held_rss = rss()
        c.stdin.write("\n"); c.stdin.flush()
        open_now = int(c.stdout.readline().split()[1])  # open N: still open when RSS was read
        ok, errs, secs, first = parse_done(c.stdout.readline().strip())
        c.wait(timeout=60)
    finally:
        if c.poll() is None:
            c.kill(); c.wait()
    r.update(idle_open_s=round(secs, 2), idle_errors=errs, idle_first_error=first, idle_held=open_now,
             idle_delta_kib=held_rss - after, idle_kib_per_conn=round((held_rss - after) / open_now, 3) if open_now else None)
    print(f"{target}: RSS {held_rss / 1024:.1f} MiB holding {open_now:,} idle keep-alive connections"
          f" ({(held_rss - after) / max(open_now, 1):.2f} KiB each), {errs} errors" + (f", first: {first}" if first else ""),
          file=sys.stderr, flush=True)
    settle()
    r["rss_after_close_kib"] = rss()
    print(f"{target}: RSS {r['rss_after_close_kib'] / 1024:.1f} MiB after closing them", file=sys.stderr, flush=True)
    return r


def table(rows):
    mib = lambda k: f"{k / 1024:,.1f} MiB"  # noqa: E731
    lines = [
        ("RSS at start", lambda r: mib(r["rss_start_kib"])),
        (f"RSS before churn (after {rows[0]['warmup']:,} warm-up connections)", lambda r: mib(r["rss_before_kib"])),
        (f"RSS after {rows[0]['churn']:,} churned connections", lambda r: mib(r["rss_after_churn_kib"])),
        ("churn growth", lambda r: f"{r['churn_delta_kib'] / 1024:+,.1f} MiB"),
        ("growth per churned connection", lambda r: f"{r['churn_kib_per_conn']:+.3f} KiB"),
        ("churn rate (errors)", lambda r: f"{r['churn_per_s']:,}/s ({r['churn_errors']})"),
        (f"RSS holding {rows[0]['idle']:,} idle keep-alive connections", lambda r: mib(r["rss_idle_kib"])),
        ("per idle connection", lambda r: f"{r['idle_kib_per_conn']:.2f} KiB" if r["idle_kib_per_conn"] is not None else "-"),
        ("idle connections held (errors)", lambda r: f"{r['idle_held']:,} ({r['idle_errors']})"),
        ("RSS after closing them", lambda r: mib(r["rss_after_close_kib"])),
    ]
    out = ["| | " + " | ".join(r["target"] for r in rows) + " |", "|---|" + "---|" * len(rows)]
    for name, f in lines:
        out.append(f"| {name} | " + " | ".join(f(r) for r in rows) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prox", help="path to the prox binary (release build)")
    ap.add_argument("--config-template")
    ap.add_argument("--targets", default=None, help="comma-separated: prox,nginx (default: both, or nginx without --prox)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--churn", type=int, default=100000)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--conn-timeout", type=float, default=10.0)
    ap.add_argument("--timeout", type=int, default=900, help="the whole run stops after this many seconds")
    ap.add_argument("--path", default="/")
    ap.add_argument("--json")
    args = ap.parse_args()
    targets = (args.targets or ("prox,nginx" if args.prox else "nginx")).split(",")
    if "prox" in targets and not (args.prox and os.access(args.prox, os.X_OK)):
        raise SystemExit(f"--prox {args.prox!r} is not an executable (scripts/build-release.sh builds one)")
    for tool in ("nginx", "cc"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: scripts/setup.sh --bench installs nginx; cc comes with build-essential")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    need = args.idle + args.concurrency + 256
    if need > want:
        raise SystemExit(f"--idle {args.idle} needs ~{need} file descriptors; the hard limit is {hard} (ulimit -Hn)")

    def expire(*_):
        raise Expired()
    signal.signal(signal.SIGALRM, expire)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(args.timeout)

    commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or None
    work = tempfile.mkdtemp(prefix="prox-soak-")
    up = proxy = None
    rows = []
    try:
        args.client = build_client(work)
        up, up_port = start_upstream(work)
        for target in targets:
            proxy, port = start_proxy(args, target, work, up_port)
            try:
                r = soak(args, target, proxy, port)
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
                print(f"soak: {target} failed: {e}", file=sys.stderr)
                continue
            finally:
                stop(proxy)
                proxy = None
            r.update(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), commit=commit,
                     prox=args.prox if target == "prox" else None)
            rows.append(r)
    except Expired:
        print(f"soak: stopped after --timeout {args.timeout}s", file=sys.stderr)
    finally:
        signal.alarm(0)
        stop(proxy)
        stop(up)
        shutil.rmtree(work, ignore_errors=True)
    if args.json and rows:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    if rows:
        print(table(rows))
    if len(rows) < len(targets):
        sys.exit(1)


if __name__ == "__main__":
    main()
