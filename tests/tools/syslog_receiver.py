#!/usr/bin/env python3
"""syslog_receiver.py — a syslog receiver for keywatch's sink tests (Python stdlib only).

Listens on 127.0.0.1 over UDP (one message per datagram) or TCP (RFC 6587 octet
counting, "LEN SP MSG"; anything else is recorded as a framing error), and records each
message as one JSON line in --out, flushed before the next read:

  {"t": time, "conn": N (TCP connection number, 0 for UDP), "hex": raw bytes in hex}
  {"t": time, "conn": N, "framing_error": "what was wrong"}

  --proto udp|tcp   (default udp)
  --port N          (0: any; written to --port-file once listening)
  --port-file F
  --out F
  --close-after N   TCP: close each connection after N messages on it
  --down SECS       listen only after SECS seconds (needs --port)

Runs until SIGTERM/SIGINT.
"""
import argparse
import json
import os
import select
import signal
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto", choices=("udp", "tcp"), default="udp")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--close-after", type=int, default=0)
    ap.add_argument("--down", type=float, default=0)
    args = ap.parse_args()
    out = open(args.out, "a", encoding="utf-8")

    def on_signal(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def record(conn, **kw):
        rec = {"t": time.time(), "conn": conn}
        rec.update(kw)
        out.write(json.dumps(rec) + "\n")
        out.flush()

    if args.down > 0:
        time.sleep(args.down)
    udp = args.proto == "udp"
    ls = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    if not udp:
        ls.listen(16)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % ls.getsockname()[1])
        os.rename(tmp, args.port_file)

    conns = {}  # socket -> [conn id, buffer, messages]
    nconn = 0
    try:
        while True:
            r, _, _ = select.select([ls] + list(conns), [], [], 0.5)
            for s in r:
                if s is ls and udp:
                    data, _ = ls.recvfrom(70000)
                    record(0, hex=data.hex())
                elif s is ls:
                    c, _ = ls.accept()
                    nconn += 1
                    conns[c] = [nconn, b"", 0]
                else:
                    st = conns[s]
                    data = s.recv(65536)
                    if not data:
                        s.close()
                        del conns[s]
                        continue
                    st[1] += data
                    while st[1]:
                        sp = st[1].find(b" ")
                        if sp < 0:
                            break
                        head = st[1][:sp]
                        if not head.isdigit() or head.startswith(b"0"):
                            record(st[0], framing_error="bad length %r" % head[:20])
                            st[1] = b""
                            break
                        n = int(head)
                        if len(st[1]) < sp + 1 + n:
                            break
                        record(st[0], hex=st[1][sp + 1:sp + 1 + n].hex())
                        st[1] = st[1][sp + 1 + n:]
                        st[2] += 1
                        if args.close_after and st[2] >= args.close_after:
                            s.close()
                            del conns[s]
                            break
    except SystemExit:
        pass
    finally:
        for s in conns:
            s.close()
        ls.close()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
