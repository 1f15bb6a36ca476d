#!/usr/bin/env python3
"""A tiny HTTP/1.1 upstream for bench/stream.sh: GET /bytes/N streams N bytes; POST/PUT reads
the whole body (Content-Length or chunked) and answers with its size. One thread per connection."""
import socket, sys, threading

def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d: return None, b""
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest

def serve(conn):
    buf = b""
    try:
        while True:
            head, buf = read_head(conn, buf)
            if head is None: return
            lines = head.split("\r\n"); method, target, _ = lines[0].split(" ", 2)
            hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
            got = 0
            if "content-length" in hdrs:
                left = int(hdrs["content-length"]) - len(buf); got = len(buf); buf = b""
                while left > 0:
                    d = conn.recv(min(left, 1 << 20))
                    if not d: return
                    left -= len(d); got += len(d)
            elif hdrs.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    while b"\r\n" not in buf: buf += conn.recv(65536)
                    size_line, buf = buf.split(b"\r\n", 1); size = int(size_line.split(b";")[0], 16)
                    while len(buf) < size + 2:
                        d = conn.recv(1 << 20)
                        if not d: return
                        buf += d
                    got += size; buf = buf[size + 2:]
                    if size == 0: break
            if method == "GET" and target.startswith("/bytes/"):
                n = int(target[7:])
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
                block = b"x" * (1 << 20)
                while n > 0:
                    k = min(n, len(block)); conn.sendall(block[:k]); n -= k
            else:
                body = f"{got}\n".encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()

s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
