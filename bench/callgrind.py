#!/usr/bin/env python3
"""User-space instructions per proxied request, counted by callgrind (repeatable run to run).

For each proxy (prox, nginx, haproxy): start it under `valgrind --tool=callgrind` with one
thread, in front of the same nginx upstream answering 200 "ok"; send N1 and then, in a second
run, N2 keep-alive requests over 4 connections; instructions per request = (I(N2) - I(N1)) /
(N2 - N1), so start-up and shutdown cancel out.

Build first with scripts/build-release.sh.

Usage: bench/callgrind.py [--prox .build-release/release/prox] [--config bench/compare.yaml]
                          [--n1 2000] [--n2 12000] [--targets prox,nginx,haproxy] [--path /]
                          [--keep DIR]

The upstream also answers POST /ext-filter with 204 (an external filter service saying
"continue", for bench/ext-filter.yaml).

`--config bench/compare-uring.yaml` counts the io_uring engine. valgrind 3.19 does not know that
`io_uring_enter` blocks, so the script bounds the worker's waits (PROX_URING_MAX_WAIT_MS=10) and
the worker then yields, which is where valgrind switches threads. Kernel work is not counted:
compare engines by req/s and CPU (compare.sh), and by these counts only their user space.

Target `niofloor` is bench/NIOFloor (built beside prox): SwiftNIO forwarding bytes verbatim, the
floor under any proxy built on SwiftNIO channels. Target `uringfloor` is bench/URingFloor, its
io_uring twin (built by bench/uring-floor.sh; --uringfloor names the binary).
"""
import argparse, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")

NGINX = """daemon off; master_process {master}; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
{body} }}
"""

def requests(port, n, path, conns=4):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    req = f"GET {path} HTTP/1.1\r\nHost: bench.local\r\n\r\n".encode()
    bufs = [b""] * conns
    for i in range(n):
        k = i % conns
        s = socks[k]
        s.sendall(req)
        buf = bufs[k]
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"(?i)content-length:\s*(\d+)", buf[:head_end])
                need = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) >= need:
                    if not buf.startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(buf[:200])
                    bufs[k] = buf[need:]
                    break
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("closed")
            buf += chunk
    for s in socks: s.close()

def total_instructions(out):
    for line in open(out):
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")

def run(target, n, args, work, upstream):
    d = tempfile.mkdtemp(dir=work)
    port = free_port()
    out = f"{d}/callgrind.out"
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    if target == "prox":
        binary = f"{d}/prox"
        shutil.copy(args.prox, binary)
        subprocess.run(["objcopy", "--strip-debug", binary], check=True)
        cfg = f"{d}/config.yaml"
        open(cfg, "w").write(open(args.config).read().replace("{port}", str(port)).replace("{upstream}", f"127.0.0.1:{upstream}").replace("{threads}", "1"))
        cmd = vg + [binary, "serve", "--no-watch", "--config", cfg, "--threads", "1"]
    elif target == "niofloor":
        # The SwiftNIO floor (bench/NIOFloor): verbatim bytes, one upstream connection per client.
        binary = f"{d}/prox-niofloor"
        shutil.copy(os.path.join(os.path.dirname(args.prox), "prox-niofloor"), binary)
        subprocess.run(["objcopy", "--strip-debug", binary], check=True)
        cmd = vg + [binary, "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream}", "--threads", "1"]
    elif target == "uringfloor":
        binary = f"{d}/prox-uringfloor"
        shutil.copy(args.uringfloor, binary)
        subprocess.run(["objcopy", "--strip-debug", binary], check=True)
        cmd = vg + [binary, "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream}", "--threads", "1"]
    elif target == "nginx":
        body = (f"upstream origin {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n"
                f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://origin; proxy_http_version 1.1;"
                f" proxy_set_header Connection \"\"; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; }} }}")
        open(f"{d}/nginx.conf", "w").write(NGINX.format(d=d, master="off", body=body))
        cmd = vg + ["nginx", "-p", d, "-c", f"{d}/nginx.conf"]
    elif target == "haproxy":
        open(f"{d}/h.cfg", "w").write(f"global\n nbthread 1\n maxconn 1000\ndefaults\n mode http\n timeout connect 5s\n timeout client 300s\n"
                                      f" timeout server 300s\n option forwardfor\n http-reuse always\nfrontend fe\n bind 127.0.0.1:{port}\n"
                                      f" default_backend be\nbackend be\n server origin 127.0.0.1:{upstream}\n")
        cmd = vg + ["haproxy", "-db", "-f", f"{d}/h.cfg"]
    # valgrind holds its lock through io_uring_enter: a waiting io_uring worker must wake every
    # 10 ms so the other threads run (an idle wake costs a few hundred instructions).
    env = dict(os.environ, PROX_URING_MAX_WAIT_MS="10")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "w"), start_new_session=True, env=env)
    try:
        wait_port(port)
        requests(port, n, args.path)
    finally:
        os.killpg(p.pid, signal.SIGINT if target != "haproxy" else signal.SIGUSR1)
        try: p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL); p.wait()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        shutil.copy(out, os.path.join(args.keep, f"{target}-{n}.out"))
    return total_instructions(out)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prox", default=".build-release/release/prox")
    ap.add_argument("--config", default="bench/compare.yaml")
    ap.add_argument("--uringfloor", default=".build-uringfloor/release/prox-uringfloor")
    ap.add_argument("--n1", type=int, default=2000)
    ap.add_argument("--n2", type=int, default=12000)
    ap.add_argument("--targets", default="prox,nginx,haproxy")
    ap.add_argument("--path", default="/")
    ap.add_argument("--keep", help="copy each run's callgrind output to DIR/<target>-<n>.out (for callgrind_annotate)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="prox-callgrind-")
    up_dir = os.path.join(work, "up"); os.makedirs(up_dir)
    up = free_port()
    open(f"{up_dir}/nginx.conf", "w").write(NGINX.format(d=up_dir, master="on", body=f"server {{ listen 127.0.0.1:{up}; location / {{ return 200 \"ok\"; }} location = /ext-filter {{ return 204; }} }}"))
    upstream = subprocess.Popen(["nginx", "-p", up_dir, "-c", f"{up_dir}/nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(up)
        print("| proxy | instructions per request | x nginx |")
        print("|---|---|---|")
        results = {}
        for t in args.targets.split(","):
            i1 = run(t, args.n1, args, work, up)
            i2 = run(t, args.n2, args, work, up)
            results[t] = (i2 - i1) / (args.n2 - args.n1)
            print(f"{t}: I({args.n1})={i1} I({args.n2})={i2}", file=sys.stderr, flush=True)
        for t, v in results.items():
            ratio = f"{v / results['nginx']:.2f}" if "nginx" in results else "-"
            print(f"| {t} | {v:,.0f} | {ratio} |")
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
