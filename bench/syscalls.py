#!/usr/bin/env python3
"""System calls per proxied request, counted by `strace -c -f` (what each proxy asks of the kernel).

For each target: start it with one thread under `strace -c -f`, in front of an nginx upstream
answering 200 "ok"; send N1 and then, in a second run, N2 keep-alive requests over C connections,
each connection with one request outstanding at a time; calls per request = (S(N2) - S(N1)) /
(N2 - N1), so start-up and shutdown cancel out. Printed per target: all calls, and the three most
frequent with their counts per request.

With --conns 1 every request is served alone (no batching possible): a repeatable figure. With more
connections the count depends on how many requests a loop turn finds ready, which depends on
timing (strace slows the traced process down), so read it as an indication.

Build first: scripts/build-release.sh (prox, prox-niofloor), bench/uring-floor.sh or its build
line (prox-uringfloor).

Usage: bench/syscalls.py [--targets uringfloor,niofloor,nginx,haproxy,prox] [--conns 1,64]
                         [--n1 2000] [--n2 12000] [--prox .build-release/release/prox]
                         [--uringfloor .build-uringfloor/release/prox-uringfloor] [--path /]
"""
import argparse, os, re, selectors, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from callgrind import NGINX, free_port, wait_port  # same upstream and proxy configs

def requests(port, n, path, conns):
    """n requests over `conns` connections, one outstanding per connection."""
    req = f"GET {path} HTTP/1.1\r\nHost: bench.local\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    bufs = {s: b"" for s in socks}
    sent = done = 0
    for s in socks:
        if sent < n:
            s.sendall(req); sent += 1
            sel.register(s, selectors.EVENT_READ)
    while done < n:
        for key, _ in sel.select(timeout=10):
            s = key.fileobj
            chunk = s.recv(65536)
            if not chunk: raise RuntimeError("closed")
            buf = bufs[s] + chunk
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0: break
                m = re.search(rb"(?i)content-length:\s*(\d+)", buf[:head_end])
                need = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) < need: break
                if not buf.startswith(b"HTTP/1.1 200"): raise RuntimeError(buf[:200])
                buf = buf[need:]; done += 1
                if sent < n:
                    s.sendall(req); sent += 1
            bufs[s] = buf
    for s in socks: s.close()

def parse(out):
    calls, total = {}, None
    for line in open(out):
        f = line.split()
        if len(f) >= 5 and f[-1] == "total":
            total = int(f[3])
        elif len(f) >= 5 and re.match(r"^[\d.]+$", f[0]) and f[-1] != "syscall":
            calls[f[-1]] = int(f[3])
    if total is None: raise RuntimeError(f"no total in {out}")
    return total, calls

def run(target, n, conns, args, work, upstream):
    d = tempfile.mkdtemp(dir=work)
    port = free_port()
    out = f"{d}/strace.out"
    st = ["strace", "-c", "-f", "-o", out]
    up = f"127.0.0.1:{upstream}"
    if target == "prox":
        cfg = f"{d}/config.yaml"
        open(cfg, "w").write(open(args.config).read().replace("{port}", str(port)).replace("{upstream}", up).replace("{threads}", "1"))
        cmd = st + [args.prox, "serve", "--no-watch", "--config", cfg, "--threads", "1"]
    elif target in ("niofloor", "uringfloor"):
        binary = os.path.join(os.path.dirname(args.prox), "prox-niofloor") if target == "niofloor" else args.uringfloor
        cmd = st + [binary, "--listen", f"127.0.0.1:{port}", "--upstream", up, "--threads", "1"]
    elif target == "nginx":
        body = (f"upstream origin {{ server {up}; keepalive 64; }}\n"
                f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://origin; proxy_http_version 1.1;"
                f" proxy_set_header Connection \"\"; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }} }}")
        open(f"{d}/nginx.conf", "w").write(NGINX.format(d=d, master="off", body=body))
        cmd = st + ["nginx", "-p", d, "-c", f"{d}/nginx.conf"]
    elif target == "haproxy":
        open(f"{d}/h.cfg", "w").write(f"global\n nbthread 1\n maxconn 1000\ndefaults\n mode http\n timeout connect 5s\n timeout client 300s\n"
                                      f" timeout server 300s\n option forwardfor\n http-reuse always\nfrontend fe\n bind 127.0.0.1:{port}\n"
                                      f" default_backend be\nbackend be\n server origin {up}\n")
        cmd = st + ["haproxy", "-db", "-f", f"{d}/h.cfg"]
    else:
        raise SystemExit(f"unknown target {target}")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
        requests(port, n, args.path, conns)
    finally:
        os.killpg(p.pid, signal.SIGTERM)  # strace too: it prints its summary on SIGTERM
        try: p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL); p.wait()
    return parse(out)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prox", default=".build-release/release/prox")
    ap.add_argument("--uringfloor", default=".build-uringfloor/release/prox-uringfloor")
    ap.add_argument("--config", default="bench/compare.yaml")
    ap.add_argument("--n1", type=int, default=2000)
    ap.add_argument("--n2", type=int, default=12000)
    ap.add_argument("--conns", default="1,64")
    ap.add_argument("--targets", default="uringfloor,niofloor,nginx")
    ap.add_argument("--path", default="/")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="prox-syscalls-")
    up_dir = os.path.join(work, "up"); os.makedirs(up_dir)
    up = free_port()
    open(f"{up_dir}/nginx.conf", "w").write(NGINX.format(d=up_dir, master="on", body=f"server {{ listen 127.0.0.1:{up}; location / {{ return 200 \"ok\"; }} }}"))
    upstream = subprocess.Popen(["nginx", "-p", up_dir, "-c", f"{up_dir}/nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(up)
        print("| proxy | conns | system calls per request | most frequent (per request) |")
        print("|---|---|---|---|")
        for c in [int(x) for x in args.conns.split(",")]:
            for t in args.targets.split(","):
                t1, c1 = run(t, args.n1, c, args, work, up)
                t2, c2 = run(t, args.n2, c, args, work, up)
                per = (t2 - t1) / (args.n2 - args.n1)
                top = sorted(((c2.get(k, 0) - c1.get(k, 0)) / (args.n2 - args.n1), k) for k in c2)[::-1][:3]
                print(f"| {t} | {c} | {per:.2f} | " + ", ".join(f"{k} {v:.2f}" for v, k in top) + " |", flush=True)
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
