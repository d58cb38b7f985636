#!/usr/bin/env python3
"""http_echo.py — an HTTP peer for keywatch's HTTP client tests (Python stdlib only).

Listens on 127.0.0.1 (any port; written to --port-file, atomically: F.tmp, rename) and
answers every method (GET, POST, PUT, PATCH, DELETE, ...) by path:

  /echo/...        200, a JSON document describing the request: method, path, headers
                   (names lower-cased), body_hex
  /status/CODE     CODE, with a short body unless CODE is 204 or 304
  /redirect        302 with Location: /echo/followed (on this server)
  /size/N          200, N bytes of 'x' with a Content-Length
  /chunked/N       200, N bytes of 'x' in chunks of up to 1000, no Content-Length
  /hold/MS         waits MS milliseconds, then 200 "late"

Every request is logged to --out as one JSON line (method, path, headers, body_hex),
flushed *before* the answer is sent (and before a hold starts), so a test may wait for a
request to have arrived.  Runs until SIGTERM/SIGINT; one thread per connection.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet
            pass

        def answer(self, code, body=b"", ctype="text/plain", extra=None):
            try:
                self.send_response(code)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                if code not in (204, 304):
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if code not in (204, 304):
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def chunked(self, n):
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while n > 0:
                    k = min(n, 1000)
                    self.wfile.write(b"%x\r\n%s\r\n" % (k, b"x" * k))
                    n -= k
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n > 0 else b""
            rec = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_hex": raw.hex(),
            }
            with LOCK:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            parts = self.path.split("?")[0].strip("/").split("/")
            what, arg = parts[0], (parts[1] if len(parts) > 1 else "")
            if what == "echo":
                self.answer(200, json.dumps(rec).encode(), "application/json")
            elif what == "status":
                self.answer(int(arg), b"status %s" % arg.encode())
            elif what == "redirect":
                self.answer(302, b"moved", extra={"Location": "/echo/followed"})
            elif what == "size":
                self.answer(200, b"x" * int(arg))
            elif what == "chunked":
                self.chunked(int(arg))
            elif what == "hold":
                time.sleep(int(arg) / 1000.0)
                self.answer(200, b"late")
            else:
                self.answer(404, b"no such path")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_any

    def on_signal(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 128

        def handle_error(self, request, client_address):
            # a client that hung up (a canceled or timed-out transfer) is not an error
            if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                super().handle_error(request, client_address)

    srv = Server(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever(poll_interval=0.05)
    except SystemExit:
        pass
    finally:
        srv.server_close()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
