#!/usr/bin/env bash
# test_api.sh — the HTTP API over real HTTP on loopback (`keywatch serve`), and the
# dashboard in real headless Chromium.
#
# The bundled sample plus a few calls with a hostile user agent are ingested (alerts
# fire), then `keywatch serve` runs with a viewer and a responder token (one from the
# environment, one from a 0600 file).  Asserted with a Python client on raw sockets and
# urllib:
#   - status codes and the JSON shape of every endpoint of docs/api.md; the security
#     headers (CSP, nosniff, no-store, frame denial) on every answer, errors included
#   - auth: no token 401 (WWW-Authenticate), an unknown token 401, a viewer may read but
#     not ack (403), a responder acks (the store records the token's name), bulk ack
#   - CSRF: a POST without JSON content type, or from a foreign Origin, is refused; the
#     same-origin one passes
#   - paging: alerts and calls page by page with next_cursor, no item twice, none lost
#   - limits: 413 for a large body, 431 for a huge header, 400 for garbage and for a
#     path escaping with ..; 404/405
#   - slowloris: a client trickling its headers is cut off (408) within the server's
#     header timeout although it keeps sending
#   - revoke through the API queues a manual revocation (202), visible in revocations
#   - the dashboard (tests/browser/dashboard.js, playwright-core + Debian chromium):
#     alert queue, ack as responder, refusal as viewer, the key page chart, the hostile
#     user agent shown as text with nothing run; screenshots under the test output
#   - no raw key in any answer
. "$(dirname "$0")/lib.sh"

export KEYWATCH_SECRET=test-api-secret-0123456789abcdef0123456789
SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log
HOSTILE_UA='<script>alert("ua")</script><img src=x onerror=alert(1)>'
VIEWER_TOKEN=viewer-token-$(python3 -c 'import secrets; print(secrets.token_hex(12))')
RESPONDER_TOKEN=responder-token-$(python3 -c 'import secrets; print(secrets.token_hex(12))')
mkdir -p "$T/kw" "$T/secrets"
printf '%s\n' "$RESPONDER_TOKEN" >"$T/secrets/responder"
chmod 600 "$T/secrets/responder"
export KW_TEST_VIEWER=$VIEWER_TOKEN
PORT=$(kw_free_port)
cat >"$T/kw.yaml" <<YAML
db: $T/kw/kw.db
http:
  listen: 127.0.0.1:$PORT
  tokens:
    - {name: alice-viewer, role: viewer, secret: {env: KW_TEST_VIEWER}}
    - {name: bob-responder, role: responder, secret: {file: $T/secrets/responder}}
  allowed_hosts: [keywatch.internal]
YAML
# a key that fires the canary-free default rules: 12 auth failures in a minute, hostile UA
python3 - "$T/hostile.log" "$HOSTILE_UA" <<'EOF'
import sys, time
ua = sys.argv[2].replace('"', '\\x22')  # as nginx escapes it
t0 = time.time() - 3600
with open(sys.argv[1], "w") as f:
    for i in range(12):
        t = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t0 + i))
        f.write('198.51.100.7 - - [%s] "GET /api/card/%d HTTP/1.1" 401 15 "-" "%s" '
                '"mb_HostileKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" 0.001\n' % (t, i, ua))
EOF
kw ingest --config "$T/kw.yaml" ingest -q --format keyed "$SAMPLE" "$T/hostile.log"
expect_eq "ingest of the sample exits 0" "$KW_RC" 0
kw_run_start serve --config "$T/kw.yaml" serve
kw_wait_port "$PORT" 10 "$KW_RUN_PID" || { fail "keywatch serve did not listen: $(tail -3 "$T/out/serve.err")"; kw_finish; }
ok "keywatch serve on 127.0.0.1:$PORT"

KW_CFG=$T/kw.yaml python3 - "$PORT" "$VIEWER_TOKEN" "$RESPONDER_TOKEN" "$HOSTILE_UA" "$T/kw/kw.db" <<'EOF'
import json, socket, sqlite3, sys, time, urllib.request, urllib.error
port, viewer, responder, hostile_ua, db = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
base = "http://127.0.0.1:%s" % port
failed = 0
def check(cond, msg):
    global failed
    print(("ok - " if cond else "FAIL - ") + msg)
    if not cond: failed += 1
def call(method, path, token=None, body=None, headers=None):
    h = dict(headers or {})
    if token: h["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    rq = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(rq, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
def js(b):
    return json.loads(b.decode("utf-8"))
SEC = {"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff",
       "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
def secure(h):
    return all(k in h and h[k].startswith(v) for k, v in SEC.items())

# ---- auth
s, h, b = call("GET", "/api/v1/alerts")
check(s == 401 and "Bearer" in h.get("WWW-Authenticate", ""), "no token: 401 with WWW-Authenticate (%d)" % s)
check(secure(h), "security headers on an error answer")
s, h, b = call("GET", "/api/v1/alerts", token="not-a-token-at-all-1234")
check(s == 401, "unknown token: 401 (%d)" % s)
s, h, b = call("GET", "/api/v1/alerts?limit=500", token=viewer)
check(s == 200 and secure(h), "viewer reads alerts: 200 with security headers (%d)" % s)
alerts = js(b)["items"]
check(len(alerts) >= 2, "alerts from the ingested traffic (%d)" % len(alerts))
hostile = [a for a in alerts if a["key_prefix"] == "mb_Host"]
check(len(hostile) == 1, "the hostile key's auth-failure alert is listed")
aid = alerts[0]["id"]
s, h, b = call("POST", "/api/v1/alerts/%d/ack" % aid, token=viewer, body={"note": "mine"})
check(s == 403, "viewer may not ack: 403 (%d)" % s)
s, h, b = call("GET", "/api/v1/alerts/%d" % aid, token=viewer)
check(s == 200 and js(b)["alert"]["state"] == "open", "... and the alert is still open")
s, h, b = call("POST", "/api/v1/alerts/%d/ack" % aid, token=responder, body={"note": "on it <b>"})
check(s == 200 and js(b)["alert"]["state"] == "acknowledged", "responder acks: 200, acknowledged (%d)" % s)
row = sqlite3.connect(db).execute("SELECT state, state_by, note FROM alerts WHERE id = ?", (aid,)).fetchone()
check(row == ("acknowledged", "bob-responder", "on it <b>"), "the store records who and the note: %s" % (row,))
s, h, b = call("POST", "/api/v1/alerts/%d/resolve" % aid, token=responder, body={})
check(s == 200 and js(b)["alert"]["state"] == "resolved", "responder resolves (%d)" % s)
ids = [a["id"] for a in alerts[1:3]] + [999999]
s, h, b = call("POST", "/api/v1/alerts/ack", token=responder, body={"ids": ids})
check(s == 200 and js(b)["updated"] == 2, "bulk ack: 2 updated, the unknown id skipped (%s)" % b[:80])
s, h, b = call("POST", "/api/v1/alerts/424242/ack", token=responder, body={})
check(s == 404, "ack of an unknown alert: 404 (%d)" % s)

# ---- CSRF
s, h, b = call("POST", "/api/v1/alerts/%d/reopen" % aid, token=responder, body=b"{}",
               headers={"Content-Type": "text/plain"})
check(s == 403, "POST without a JSON content type: 403 (%d)" % s)
s, h, b = call("POST", "/api/v1/alerts/%d/reopen" % aid, token=responder, body={},
               headers={"Origin": "http://evil.example"})
check(s == 403, "POST from a foreign Origin: 403 (%d)" % s)
s, h, b = call("POST", "/api/v1/alerts/%d/reopen" % aid, token=responder, body={},
               headers={"Origin": "http://127.0.0.1:%s" % port})
check(s == 200, "POST from the same origin: 200 (%d)" % s)

# ---- DNS rebinding: only an IP literal, localhost or an allowed name in Host
for host in ("evil.example:%s" % port, "evil.example", "127.0.0.1.evil.example:%s" % port,
             "[::1", "keywatch.internal.evil:%s" % port):
    s, h, b = call("GET", "/api/v1/alerts", token=viewer, headers={"Host": host})
    check(s == 403 and "allowed_hosts" in js(b)["error"] and secure(h),
          "Host %s: 403, naming http.allowed_hosts (%d)" % (host, s))
s, h, b = call("GET", "/", headers={"Host": "evil.example"})
check(s == 403, "... the dashboard page too (%d)" % s)
for host in ("127.0.0.1:%s" % port, "localhost:%s" % port, "LOCALHOST", "[::1]:%s" % port,
             "keywatch.internal:%s" % port, "KeyWatch.Internal"):
    s, h, b = call("GET", "/api/v1/alerts", token=viewer, headers={"Host": host})
    check(s == 200, "Host %s: 200 (%d)" % (host, s))

# ---- paging
def pages(path, limit):
    items, cursor, n = [], None, 0
    while n < 1000:
        q = "%s%slimit=%d" % (path, "&" if "?" in path else "?", limit)
        if cursor: q += "&cursor=" + urllib.request.quote(cursor)
        s, h, b = call("GET", q, token=viewer)
        if s != 200: return None
        d = js(b)
        items += d["items"]; cursor = d["next_cursor"]; n += 1
        if cursor is None: return items
    return None
all_alerts = js(call("GET", "/api/v1/alerts?limit=500", token=viewer)[2])["items"]
paged = pages("/api/v1/alerts", 2)
check(paged is not None and [a["id"] for a in paged] == [a["id"] for a in all_alerts],
      "alerts page by page (2 per page) = the whole list, same order (%d)" % len(all_alerts))
calls = pages("/api/v1/calls?key=mb_dNqi", 97)
n_key = sqlite3.connect(db).execute("SELECT calls FROM keys WHERE prefix = 'mb_dNqi'").fetchone()[0]
check(calls is not None and len(calls) == n_key, "calls of a key page by page: %s of %d" % (len(calls or []), n_key))
check(calls is not None and len({(c["time"], c["path"], c["client"]) for c in calls}) >= n_key * 0.9 and
      all(calls[i]["time"] >= calls[i + 1]["time"] for i in range(len(calls) - 1)),
      "calls newest first, no page repeats")
s, h, b = call("GET", "/api/v1/alerts?limit=0", token=viewer)
check(s == 400, "limit=0: 400 (%d)" % s)
s, h, b = call("GET", "/api/v1/alerts?severity=catastrophic", token=viewer)
check(s == 400 and b"severity" in b, "bad severity: 400 naming the parameter (%d)" % s)

# ---- keys, review, status, revocations, metrics, UI
s, h, b = call("GET", "/api/v1/keys?limit=5", token=viewer)
check(s == 200 and len(js(b)["items"]) == 5, "keys page (%d)" % s)
s, h, b = call("GET", "/api/v1/keys/mb_dNqi?hours=24", token=viewer)
d = js(b) if s == 200 else {}
check(s == 200 and len(d.get("hours", [])) == 24 and d["key"]["calls"] == n_key and d["endpoints"],
      "key page: 24 hours, endpoints, calls (%d)" % s)
s, h, b = call("GET", "/api/v1/keys/mb_Host?hours=3", token=viewer)
d = js(b) if s == 200 else {}
check(s == 200 and sum(x["calls"] for x in d["hours"]) == 12 and
      sum(x["errors"] for x in d["hours"]) == 12 and len(d["hours"]) == 3,
      "key page hours (from the hourly rollup): the 12 failed calls of the last hours")
s, h, b = call("GET", "/api/v1/keys/mb_", token=viewer)
check(s == 400 and b"several" in b, "ambiguous key prefix: 400 (%d)" % s)
s, h, b = call("GET", "/api/v1/keys/mb_Nope", token=viewer)
check(s == 404, "unknown key: 404 (%d)" % s)
s, h, b = call("GET", "/api/v1/review", token=viewer)
check(s == 404 and b"keywatch review" in b, "no review yet: 404 saying how to make one (%d)" % s)
import subprocess, os
subprocess.run([os.environ["KEYWATCH"], "--config", os.environ["KW_CFG"], "review", "--format", "json",
                "--output", os.devnull], check=True, stderr=subprocess.DEVNULL)
s, h, b = call("GET", "/api/v1/review", token=viewer)
check(s == 200 and "keys" in js(b), "a stored review is served (%d)" % s)
s, h, b = call("GET", "/api/v1/reviews", token=viewer)
check(s == 200 and len(js(b)["items"]) == 1, "the list of reviews (%d)" % s)
s, h, b = call("GET", "/api/v1/status", token=viewer)
check(s == 200 and js(b)["sources"], "status (%d)" % s)
s, h, b = call("POST", "/api/v1/keys/mb_dNqi/revoke", token=viewer, body={"reason": "x"})
check(s == 403, "viewer may not revoke (%d)" % s)
s, h, b = call("POST", "/api/v1/keys/mb_dNqi/revoke", token=responder, body={"reason": "test"})
check(s == 202 and "revocation_id" in js(b), "responder revokes: 202 queued (%d)" % s)
s, h, b = call("GET", "/api/v1/revocations", token=viewer)
revs = js(b)["items"] if s == 200 else []
check(len(revs) == 1 and revs[0]["decided_by"] == "api:bob-responder" and revs[0]["state"] == "decided",
      "the revocation is queued, decided by the token's name")
s, h, b = call("GET", "/metrics")
check(s == 200 and h.get("Content-Type", "").startswith("text/plain") and b"keywatch_calls_total" in b,
      "/metrics without a token (%d)" % s)
s, h, b = call("GET", "/")
check(s == 200 and h.get("Content-Type", "").startswith("text/html") and secure(h), "the dashboard page (%d)" % s)
s, h, b = call("DELETE", "/api/v1/alerts", token=responder)
check(s in (404, 405), "DELETE: refused (%d)" % s)
s, h, b = call("GET", "/api/v2/whatever", token=viewer)
check(s == 404, "unknown endpoint: 404 (%d)" % s)

# ---- raw HTTP: limits, malformed, slowloris
def raw(data, wait=5.0):
    so = socket.create_connection(("127.0.0.1", int(port)), timeout=wait)
    so.sendall(data)
    out = b""
    try:
        while True:
            c = so.recv(65536)
            if not c: break
            out += c
    except socket.timeout:
        pass
    so.close()
    return out
r = raw(b"POST /api/v1/alerts/ack HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 70000\r\n\r\n" + b"{" * 1000)
check(r.startswith(b"HTTP/1.1 413"), "a 70 kB body: 413 (%s)" % r[:20])
r = raw(b"GET /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
check(r.startswith(b"HTTP/1.1 431"), "a 20 kB header: 431 (%s)" % r[:20])
r = raw(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
check(r.startswith(b"HTTP/1.1 400"), "garbage: 400 (%s)" % r[:20])
r = raw(b"GET /ui/../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
check(r.startswith(b"HTTP/1.1 400") or r.startswith(b"HTTP/1.1 404"), "a path escaping with ..: refused (%s)" % r[:20])
r = raw(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + viewer.encode() +
        b"\r\n\r\nGET /api/v1/keys?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
        viewer.encode() + b"\r\nConnection: close\r\n\r\n", wait=5)
check(r.count(b"HTTP/1.1 200") == 2 and r.index(b'"sources"') < r.index(b'"items"'),
      "two pipelined requests: two answers, in order")
# slowloris: one header byte every 0.5 s; the server's header timeout is 10 s
so = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
so.sendall(b"GET /api/v1/status HTTP/1.1\r\n")
t0 = time.monotonic(); cut = None; got = b""
so.settimeout(0.5)
while time.monotonic() - t0 < 25:
    try:
        so.sendall(b"X")
    except OSError:
        cut = time.monotonic() - t0; break
    try:
        c = so.recv(4096)
        if c == b"":
            cut = time.monotonic() - t0; break
        got += c
    except socket.timeout:
        pass
so.close()
check(cut is not None and cut < 15, "slowloris: cut off after %.1f s although still sending" % (cut or -1))
check(got.startswith(b"HTTP/1.1 408") or got == b"", "slowloris: answered 408 (%s)" % got[:20])
sys.exit(1 if failed else 0)
EOF
if [ $? -eq 0 ]; then ok "HTTP API checks"; else fail "HTTP API checks"; fi

# ---------------------------------------------------------------- the dashboard
if [ -x /usr/bin/chromium ] && [ -d "$KW_SOURCE_DIR/tests/browser/node_modules" ]; then
  mkdir -p "$T/out/screenshots"
  if node "$KW_SOURCE_DIR/tests/browser/dashboard.js" --base "http://127.0.0.1:$PORT" \
    --viewer "$VIEWER_TOKEN" --responder "$RESPONDER_TOKEN" --hostile-ua "$HOSTILE_UA" \
    --out "$T/out/screenshots" >"$T/out/dashboard.json" 2>"$T/out/dashboard.err"; then
    ok "dashboard in headless Chromium (screenshots in $T/out/screenshots)"
  else
    fail "dashboard in headless Chromium: $(tail -5 "$T/out/dashboard.err") $(tail -c 600 "$T/out/dashboard.json")"
  fi
else
  fail "the dashboard test needs /usr/bin/chromium and tests/browser/node_modules (scripts/install-deps.sh)"
fi

kw_run_stop TERM
expect_eq "keywatch serve stops cleanly" "$KW_RUN_RC" 0
check "no raw key in the server's output" bash -c "! grep -q 'HostileKeyAAA' '$T/out/serve.err' '$T/out/serve.out'"
kw_finish
