#!/usr/bin/env bash
# test_pcap.sh — the packet collector against real traffic: nginx, curl and tcpdump.
#
# Starts /usr/sbin/nginx on 127.0.0.1 (and [::1] when the host has IPv6) with its own
# JSON access log, captures loopback with `tcpdump -i lo -w` while curl sends keyed
# requests (random Metabase-style keys in X-API-Key, Authorization: Bearer and ?api_key=),
# anonymous ones, keep-alive series, a POST, a HEAD, 401/404s, an upload with
# Expect: 100-continue, a chunked upload and a 300 KB download; then decodes the capture
# with the collector (tests/tools/kw_pcapdump, which prints one line per record) and
# checks that it saw what nginx logged: the same number of calls, the same calls per
# X-API-Key and per Authorization value, the same (method, URI, status) multiset, the same
# response body sizes and client addresses, and no loss, error or unanswered request.
#
# Needs nginx, curl, tcpdump (root or CAP_NET_RAW) and the decoder tool: $KW_PCAPDUMP, or
# kw_pcapdump next to $KEYWATCH (CMake builds it there).
. "$(dirname "$0")/lib.sh"

NGINX=${NGINX:-/usr/sbin/nginx}
[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
command -v tcpdump >/dev/null || { echo "tcpdump is required (apt-get install tcpdump)" >&2; exit 1; }
PCAPDUMP=${KW_PCAPDUMP:-$(dirname "$KEYWATCH")/kw_pcapdump}
[ -x "$PCAPDUMP" ] || { echo "kw_pcapdump not found at $PCAPDUMP (set KW_PCAPDUMP)" >&2; exit 1; }

# ---------------------------------------------------------------- keys (random per run)
NK=$((3 + RANDOM % 3))
python3 - "$NK" > "$T/keys.txt" <<'EOF'
import base64, os, sys
seen, n = set(), int(sys.argv[1])
while len(seen) < n:
    seen.add("mb_" + base64.b64encode(os.urandom(32)).decode())
for k in sorted(seen):
    print(k)
EOF
mapfile -t KEYS < "$T/keys.txt"

# ---------------------------------------------------------------- nginx
PORT=$(kw_free_port)
HAVE6=0
[ -s /proc/net/if_inet6 ] && grep -q '^0*1 ' /proc/net/if_inet6 && HAVE6=1
mkdir -p "$T/ngx/tmp" "$T/ngx/static"
head -c 300000 /dev/urandom > "$T/ngx/static/big.bin"
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
write_conf() {
  local listen6=""
  [ "$HAVE6" = 1 ] && listen6="listen [::1]:$PORT;"
  cat > "$T/ngx/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
daemon off;
pid $T/ngx/nginx.pid;
error_log $T/ngx/error.log warn;
events { worker_connections 64; }
http {
  client_body_temp_path $T/ngx/tmp/body;
  proxy_temp_path $T/ngx/tmp/proxy;
  fastcgi_temp_path $T/ngx/tmp/fastcgi;
  uwsgi_temp_path $T/ngx/tmp/uwsgi;
  scgi_temp_path $T/ngx/tmp/scgi;
  log_format j escape=json '{"addr":"\$remote_addr","method":"\$request_method","uri":"\$request_uri","status":\$status,"body":\$body_bytes_sent,"key":"\$http_x_api_key","auth":"\$http_authorization","expect":"\$http_expect"}';
  access_log $T/ngx/access.log j;
  client_max_body_size 10m;
  server {
    listen 127.0.0.1:$PORT;
    $listen6
    default_type application/json;
    location = /api/denied { return 401 '{"error":"unauthenticated"}'; }
    location /api/upload { client_body_buffer_size 1m; proxy_pass http://127.0.0.1:$PORT/sink; }
    location = /sink { return 201 '{"stored":true}'; }
    location /api/ { return 200 '{"ok":true}'; }
    location /static/ { root $T/ngx; }
    location / { return 404; }
  }
}
EOF
}
NGX_PID=""
for _ in 1 2 3; do
  write_conf
  kw_spawn_bg "$NGINX" -p "$T/ngx/" -c "$T/ngx/nginx.conf" -e "$T/ngx/error.log"
  NGX_PID=$KW_SPAWNED
  if kw_wait_port "$PORT" 10 "$NGX_PID"; then
    break
  fi
  kw_stop_pid "$NGX_PID"
  NGX_PID=""
  PORT=$(kw_free_port)
done
[ -n "$NGX_PID" ] || { fail "nginx did not start: $(tail -5 "$T/ngx/error.log" 2>/dev/null)"; kw_finish; }
ok "nginx listening on 127.0.0.1:$PORT (IPv6: $HAVE6)"

# ---------------------------------------------------------------- capture
# a 32 MB kernel buffer: the whole run (about 1 MB) fits, so nothing is dropped even on a
# loaded machine.  libpcap hands packets over in blocks that the kernel retires after at
# most tcpdump's 1 s timeout: the capture is stopped 1.5 s after the last request.
kw_spawn_bg tcpdump -i lo -nn -s 0 -B 32768 -U -w "$T/cap.pcap" "tcp port $PORT" \
  2> "$T/tcpdump.err"
TD_PID=$KW_SPAWNED
for _ in $(seq 100); do grep -q listening "$T/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
if ! grep -q listening "$T/tcpdump.err"; then
  fail "tcpdump did not start (root or CAP_NET_RAW needed): $(cat "$T/tcpdump.err")"
  kw_finish
fi
sleep 0.3

# ---------------------------------------------------------------- traffic
B="http://127.0.0.1:$PORT"
SENT=0
c() { curl -sg --max-time 10 "$@" > /dev/null || fail "curl $* failed"; }
for ((r = 0; r < NK * 6; r++)); do
  k=${KEYS[$((r % NK))]}
  case $((r % 3)) in
  0) c -H "X-API-Key: $k" -A "python-requests/2.31.0" "$B/api/card/$r"; SENT=$((SENT + 1)) ;;
  1) c -H "Authorization: Bearer $k" "$B/api/dashboard/$r/items?x=1"; SENT=$((SENT + 1)) ;;
  2) c "$B/api/search?q=r$r&api_key=$k"; SENT=$((SENT + 1)) ;;
  esac
done
# keep-alive: one connection, several requests (curl reuses it)
c -H "X-API-Key: ${KEYS[0]}" "$B/api/card/1" "$B/api/card/2" "$B/api/denied" "$B/nothing" "$B/api/card/3"
SENT=$((SENT + 5))
c -X POST -H "X-API-Key: ${KEYS[1]}" -H 'Content-Type: application/json' \
  --data '{"parameters":[]}' "$B/api/card/5/query"
c -I -H "X-API-Key: ${KEYS[1]}" "$B/api/card/6"
c "$B/api/health" "$B/api/denied"
c -H "X-API-Key: ${KEYS[2]}" "$B/static/big.bin"
SENT=$((SENT + 5))
head -c 200000 /dev/zero > "$T/upload.bin"
c -X PUT -H "X-API-Key: ${KEYS[2]}" -H 'Expect: 100-continue' --data-binary @"$T/upload.bin" "$B/api/upload"
c -X POST -H "X-API-Key: ${KEYS[0]}" -H 'Transfer-Encoding: chunked' --data-binary @"$T/upload.bin" "$B/api/upload"
SENT=$((SENT + 4)) # each upload is also proxied to /sink: nginx logs both, over loopback
if [ "$HAVE6" = 1 ]; then
  c -g -H "X-API-Key: ${KEYS[0]}" "http://[::1]:$PORT/api/card/v6"
  SENT=$((SENT + 1))
fi
sleep 1.5
kw_stop_pid "$TD_PID"
kw_stop_pid "$NGX_PID"
expect_eq "nginx logged every request" "$(wc -l < "$T/ngx/access.log")" "$SENT"
check "tcpdump dropped nothing" grep -q '^0 packets dropped by kernel' "$T/tcpdump.err"

# ---------------------------------------------------------------- decode
"$PCAPDUMP" -s -p "$PORT" "$T/cap.pcap" > "$T/records.tsv" 2> "$T/stats.txt"
expect_eq "kw_pcapdump exit status" "$?" 0
"$PCAPDUMP" -k authorization -p "$PORT" "$T/cap.pcap" > "$T/records_auth.tsv" 2>/dev/null
stat_of() { sed -n "s/^$1=//p" "$T/stats.txt"; }
for s in decode_errors truncated gaps anomalies bound_drops non_http_flows \
         http.parse_errors http.unanswered http.orphan_responses http.incomplete; do
  expect_eq "counter $s" "$(stat_of "$s")" 0
done
expect_eq "records" "$(stat_of records)" "$SENT"
expect_eq "interim responses (100 Continue)" "$(stat_of http.interim)" 1

python3 - "$T/ngx/access.log" "$T/records.tsv" "$T/records_auth.tsv" > "$T/compare.txt" <<'EOF'
import collections, json, sys
ng = [json.loads(l) for l in open(sys.argv[1])]
kw = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
ka = [l.rstrip("\n").split("\t") for l in open(sys.argv[3])]
def v(x):
    return "" if x in ("-", "") else x
checks = {
    "calls per X-API-Key": (collections.Counter(v(n["key"]) for n in ng),
                            collections.Counter(v(r[5]) for r in kw)),
    "calls per Authorization": (collections.Counter(v(n["auth"]) for n in ng),
                                collections.Counter(v(r[5]) for r in ka)),
    "(method, uri, status)": (collections.Counter((n["method"], n["uri"], n["status"]) for n in ng),
                              collections.Counter((r[2], r[3], int(r[4])) for r in kw)),
    "client addresses": (collections.Counter(n["addr"] for n in ng),
                         collections.Counter(r[1] for r in kw)),
    # nginx counts a "100 Continue" it sent in $body_bytes_sent: not a body byte
    "(uri, response body bytes)": (
        collections.Counter((n["uri"], n["body"] - (25 if n["expect"] else 0)) for n in ng),
        collections.Counter((r[3], int(r[7])) for r in kw)),
}
for name, (want, got) in checks.items():
    if want == got:
        print("ok %s" % name)
    else:
        print("FAIL %s: nginx-only %s; decoder-only %s" % (name, dict(want - got), dict(got - want)))
big = [r for r in kw if r[3] == "/static/big.bin"]
print("ok 300 KB download" if big and int(big[0][7]) == 300000 else "FAIL 300 KB download: %s" % big)
EOF
while read -r verdict rest; do
  if [ "$verdict" = ok ]; then ok "decoder = nginx: $rest"; else fail "decoder vs nginx: $rest"; fi
done < "$T/compare.txt"

# a keyed request's key reaches the record (not just some header): one exact line
K0=${KEYS[0]}
check "the v4 client address and X-API-Key of a keep-alive request are in its record" \
  grep -qP "\t127\.0\.0\.1\tGET\t/api/card/2\t200\t\Q$K0\E\t" "$T/records.tsv"

# a damaged copy of the capture: the records before the damage, then a clear error
SIZE=$(stat -c %s "$T/cap.pcap")
head -c $((SIZE * 2 / 3)) "$T/cap.pcap" > "$T/cut.pcap"
"$PCAPDUMP" -p "$PORT" "$T/cut.pcap" > "$T/cut.tsv" 2> "$T/cut.err"
expect_eq "truncated capture: exit status" "$?" 1
check "truncated capture: the error names the file and the damage" \
  grep -q "cut.pcap: damaged after packet [0-9]*: truncated dump file" "$T/cut.err"
N_CUT=$(wc -l < "$T/cut.tsv")
check "truncated capture: records before the damage ($N_CUT)" test "$N_CUT" -gt 0 -a "$N_CUT" -le "$SENT"

kw_finish
