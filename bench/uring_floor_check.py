#!/usr/bin/env python3
"""Correctness of a verbatim forwarder (bench/URingFloor, bench/NIOFloor): byte-exact both ways and
clean closes. An echo upstream; 20 concurrent clients send 1 B to 20 MB of random bytes, half-close,
and must read back exactly what they sent; one slow reader (flow control); then a refused upstream
(the client's connection is closed, the forwarder keeps accepting). prox-niofloor fails the
half-close part by design (SwiftNIO closes the pair at the first EOF; HTTP clients never half-close). Descriptors are counted after
each part: none may leak. Loopback only, bounded. Exit status 1 on any mismatch.

  python3 bench/uring_floor_check.py .build-uringfloor/release/prox-uringfloor [extra args...]
  e.g. extra args --buffers 8 --buffer-size 1024 to starve the buffer ring on purpose
"""
import atexit, os, socket, sys, threading, hashlib, time, subprocess, signal
floor = sys.argv[1]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
up_port, port, dead_port = free_port(), free_port(), free_port()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("127.0.0.1", up_port)); srv.listen(512)
def echo(c):
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the forwarder closed: the client's side reports it
    c.close()
def accept_loop():
    while True:
        c, _ = srv.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
threading.Thread(target=accept_loop, daemon=True).start()
procs = []
def stop_all():  # whatever happens, no forwarder outlives the check
    for q in procs:
        if q.poll() is None: q.send_signal(signal.SIGTERM); q.wait()
atexit.register(stop_all)
def start(up):
    global port
    port = free_port()  # a fresh port: the ring's teardown after exit holds the old listener a moment
    p = subprocess.Popen([floor, "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{up}", "--threads", "2"] + sys.argv[2:], stdout=subprocess.DEVNULL)
    procs.append(p)
    for _ in range(100):
        try: socket.create_connection(("127.0.0.1", port)).close(); return p
        except OSError: time.sleep(0.05)
    raise SystemExit("no listen")
p = start(up_port)
errors = []
time.sleep(0.3)
baseline = len(os.listdir(f"/proc/{p.pid}/fd"))
def client(n, size, slow=False):
    try:
        data = os.urandom(size)
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(120)  # bounded: a stuck transfer fails the check instead of hanging it
        def sender():
            s.sendall(data); s.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=sender); t.start()
        h = hashlib.sha256(); got = 0
        while True:
            if slow: time.sleep(0.002)
            b = s.recv(4096 if slow else 262144)
            if not b: break
            h.update(b); got += len(b)
        t.join(); s.close()
        if got != size or h.digest() != hashlib.sha256(data).digest():
            errors.append(f"client {n}: got {got} of {size}, digest {'ok' if h.digest()==hashlib.sha256(data).digest() else 'BAD'}")
    except Exception as e:
        errors.append(f"client {n}: {e!r}")
t0 = time.time()
ts = [threading.Thread(target=client, args=(i, [1, 100, 70000, 3_000_000, 20_000_000][i % 5])) for i in range(20)]
ts.append(threading.Thread(target=client, args=(99, 8_000_000, True)))
for t in ts: t.start()
for t in ts: t.join()
print(f"echo: {len(ts)} clients in {time.time()-t0:.1f}s, errors: {errors}")
time.sleep(0.3)
fds = len(os.listdir(f"/proc/{p.pid}/fd"))
print(f"descriptors open after all closed: {fds} (at start: {baseline})")
if fds != baseline: errors.append("descriptors leaked")
p.send_signal(signal.SIGTERM); p.wait()
# A refused upstream: the client's connection is closed, and the forwarder lives on.
p = start(dead_port)
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET / HTTP/1.1\r\n\r\n")
s.settimeout(5)
try: r = s.recv(10)
except ConnectionResetError: r = "reset"
s.close()
print(f"refused upstream: client got {r!r} (EOF or reset expected)")
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
try: print("still accepting:", s.recv(10) == b"")
except ConnectionResetError: print("still accepting: True (reset)")
s.close()
time.sleep(0.3); fds = len(os.listdir(f"/proc/{p.pid}/fd"))
print(f"descriptors after refused: {fds}")
if fds != baseline: errors.append("descriptors leaked after refused upstream")
p.send_signal(signal.SIGTERM); p.wait()
sys.exit(1 if errors else 0)
