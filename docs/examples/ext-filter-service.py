#!/usr/bin/env python3
"""An external filter service for Prox's `ext_filter` (docs/FILTERS.md, "External filters").

Policy, as an example: /admin needs `Authorization: Bearer <user>` (403 otherwise); a known
bearer becomes `X-User: <user>` and the Authorization header is not passed on; everything else
goes on unchanged (204).

Usage: python3 docs/examples/ext-filter-service.py [PORT]   (default 9000, on 127.0.0.1)
"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = {"alice", "bob"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Prox reuses its connections

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        headers = {name.lower(): value for name, value in req.get("headers", [])}
        auth = headers.get("authorization", "")
        user = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if req.get("path", "").startswith("/admin") and user not in USERS:
            self.answer({"action": "respond", "status": 403,
                         "headers": {"Content-Type": "text/plain"}, "body": "admins only\n"})
        elif user in USERS:
            self.answer({"action": "continue", "set_headers": {"X-User": user},
                         "remove_headers": ["Authorization"]})
        else:
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def answer(self, verdict):
        body = json.dumps(verdict).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
