#!/usr/bin/env python3
"""http_receiver.py — a webhook receiver for keywatch's sink tests (Python stdlib only).

Listens on 127.0.0.1, records every request as one JSON line in --out (flushed and
fsync'ed *before* the answer is sent, so a request the client saw acknowledged is always
in the file), and answers as told:

  --port N          port to listen on (0: any; the port is written to --port-file)
  --port-file F     where to write the port once listening (atomically: F.tmp, rename)
  --out F           the request log (JSON lines: t, method, path, headers, body, status, conn)
  --status CODE     answer CODE to every request (default 200)
  --fail-first N    answer 500 to the first N requests, then --status
  --down SECS       do not listen for the first SECS seconds (connections are refused),
                    then listen on --port (which must then be given)
  --delay SECS      wait this long before answering
  --location URL    with a 3xx --status: the Location header

Runs until SIGTERM/SIGINT.  One thread per connection (HTTP/1.1 keep-alive).
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"n": 0, "conn": 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--down", type=float, default=0)
    ap.add_argument("--delay", type=float, default=0)
    ap.add_argument("--location", default="")
    args = ap.parse_args()
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            with LOCK:
                STATE["conn"] += 1
                self.conn_id = STATE["conn"]

        def log_message(self, fmt, *a):  # quiet
            pass

        def do_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n > 0 else b""
            with LOCK:
                STATE["n"] += 1
                status = 500 if STATE["n"] <= args.fail_first else args.status
                try:
                    body, valid = raw.decode("utf-8"), True
                except UnicodeDecodeError:
                    body, valid = raw.decode("utf-8", "replace"), False
                rec = {
                    "t": time.time(),
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "body_utf8": valid,
                    "body_hex": raw.hex(),
                    "status": status,
                    "conn": self.conn_id,
                }
                out.write(json.dumps(rec) + "\n")
                out.flush()
                os.fsync(out.fileno())
            if args.delay:
                time.sleep(args.delay)
            reply = b'{"ok": true}' if 200 <= status < 300 else b'{"error": "test"}'
            try:
                self.send_response(status)
                if args.location and 300 <= status < 400:
                    self.send_header("Location", args.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_POST = do_any
        do_GET = do_any
        do_PUT = do_any

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.down > 0:
        if args.port == 0:
            print("--down needs --port", file=sys.stderr)
            return 2
        time.sleep(args.down)

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    srv = Server(("127.0.0.1", args.port), Handler)
    if args.port_file:
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
