#!/usr/bin/env bash
# test_run_syslog.sh — `keywatch run` receiving a real nginx's access log as syslog.
#
# 1. UDP: nginx sends its `keyed` log with `access_log syslog:server=127.0.0.1:PORT,tag=nginx
#    keyed;` (and writes the same lines to a reference file) to
#    `keywatch run --syslog udp://127.0.0.1:PORT --format keyed`.
#    - low rate (wrk, ~400 requests/s): status drops == 0 and every call stored exactly
#      once, per key equal to nginx's file;
#    - as fast as wrk can go (2 s): UDP may drop, but only what is reported: calls stored
#      + drops reported == nginx's count, and nothing stored twice or invented.
#    SIGTERM: exit status 0.
# 2. TCP and reload, with a config (sources: a tcp syslog listener and a file written by
#    nginx):
#    - util-linux `logger --tcp --octet-count` sends keyed lines, RFC 5424 and RFC 3164
#      headers; a Python client sends newline-framed messages cut at arbitrary byte
#      boundaries: every line stored once;
#    - SIGHUP after adding a second file source (whose file nginx has been writing since
#      the start) to the config: the new source starts and reads its file from the
#      beginning, the first keeps its position (nothing stored twice), the TCP listener
#      keeps working; per key equal to nginx's files plus the lines sent over TCP.
. "$(dirname "$0")/lib.sh"

[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
for c in wrk logger; do
  command -v $c >/dev/null || { echo "$c is required (apt-get install wrk bsdutils)" >&2; exit 1; }
done

kw_make_keys 4 "$T/keys.txt"
N=$T/ngx
mkdir -p "$N" "$T/logs" "$T/ref" "$T/kw1" "$T/kw2" "$T/tcp"
UPORT=$(python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
write_conf() {
  {
    kw_nginx_prologue "$N"
    cat <<EOF
  server {
    listen 127.0.0.1:$NGX_PORT;
    location /u/ {
      access_log syslog:server=127.0.0.1:$UPORT,tag=nginx keyed;
      access_log $T/ref/udp.log keyed;
      return 200 '{"ok":true}';
    }
    location /a/ { access_log $T/logs/a.log keyed; access_log $T/ref/a.log keyed; return 200 '{"ok":true}'; }
    location /b/ { access_log $T/logs/b.log keyed; access_log $T/ref/b.log keyed; return 200 '{"ok":true}'; }
    location / { access_log off; return 404; }
  }
}
EOF
  } >"$N/nginx.conf"
}
kw_nginx_up "$N" write_conf || { fail "nginx did not start"; kw_finish; }
ok "nginx on 127.0.0.1:$NGX_PORT, syslog to udp 127.0.0.1:$UPORT"
URL=http://127.0.0.1:$NGX_PORT
export KEYWATCH_SECRET=test-run-syslog-secret-0123456789abcdef

wait_event() { # FILE EVENT COUNT SECS: until FILE has COUNT lines with event=EVENT
  local i
  for ((i = 0; i < $4 * 10; i++)); do
    [ "$(grep -c "event=$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- 1. UDP from nginx
DB1=$T/kw1/kw.db
kw_run_start udp --db "$DB1" run --syslog "udp://127.0.0.1:$UPORT" --format keyed
check "udp: keywatch started" wait_event "$T/out/udp.err" started 1 5
WRK_OPTS="-t1 -c2 -d5s" kw_wrk_start udp-low "$URL" "$T/keys.txt" /u/low/ 5
kw_reap "$KW_WRK_PID"
REF=$(kw_ref_count "$T/ref/udp.log")
check "udp: nginx logged the low-rate load (>= 500 lines: $REF)" test "$REF" -ge 500
check "udp: keywatch stored them within 20 s" kw_wait_calls "$DB1" "$REF" 20
sleep 1.2 # status is written every second
"$KEYWATCH" --db "$DB1" status --json >"$T/out/udp-status.json" 2>/dev/null
S=$T/out/udp-status.json
expect_eq "udp: status kind" "$(json_get "$S" 'j["sources"][0]["kind"]' 2>/dev/null)" syslog
expect_eq "udp: status drops at low rate" "$(json_get "$S" 'j["sources"][0]["drops"]' 2>/dev/null)" 0
expect_eq "udp: status lines" "$(json_get "$S" 'j["sources"][0]["lines"]' 2>/dev/null)" "$REF"
kw_check_calls "udp low rate" "$DB1" "$T/ref/udp.log"

WRK_OPTS="-t1 -c8 -d2s" kw_wrk_start udp-high "$URL" "$T/keys.txt" /u/high/ 0
kw_reap "$KW_WRK_PID"
grep -h 'Requests/sec' "$T/out/udp-low.wrk" "$T/out/udp-high.wrk" | sed 's/^/# udp: wrk /'
REF=$(kw_ref_count "$T/ref/udp.log")
kw_wait_calls "$DB1" "$REF" 20
sleep 1.2
CALLS=$(kw_calls_total "$DB1")
DROPS=$(kw_status_sum "$DB1" drops)
echo "# udp at full rate: nginx $REF, stored $CALLS, drops reported $DROPS"
expect_eq "udp full rate: calls stored + drops reported == nginx's count" "$((CALLS + DROPS))" "$REF"
"$KEYWATCH" --db "$DB1" calls --json --limit 0 >"$T/out/udp-calls.json" 2>/dev/null
expect_eq "udp full rate: no call stored twice" \
  "$(json_get "$T/out/udp-calls.json" 'len(j) - len(set(c["path"] for c in j))' 2>/dev/null)" 0
kw_run_stop TERM
expect_eq "udp: SIGTERM exit status" "$KW_RUN_RC" 0

# ---------------------------------------------------------------- 2. TCP + reload
TPORT=$(kw_free_port)
DB2=$T/kw2/kw.db
write_kw_conf() { # with_b
  cat >"$T/kw2/keywatch.yaml" <<EOF
db: $DB2
ingest:
  format: keyed
sources:
  - name: tcp
    type: syslog
    listen: tcp://127.0.0.1:$TPORT
  - name: file-a
    type: file
    path: $T/logs/a.log
EOF
  [ "$1" = 1 ] && cat >>"$T/kw2/keywatch.yaml" <<EOF
  - name: file-b
    type: file
    path: $T/logs/b.log
EOF
  cat >>"$T/kw2/keywatch.yaml" <<EOF
run:
  commit_ms: 50
EOF
}
write_kw_conf 0
kw_run_start tcp run --config "$T/kw2/keywatch.yaml"
check "tcp: keywatch --config started" wait_event "$T/out/tcp.err" started 1 5
check "tcp: listening on 127.0.0.1:$TPORT" kw_wait_port "$TPORT" 5 "$KW_RUN_PID"

WRK_OPTS="-t1 -c4 -d3s" kw_wrk_start a1 "$URL" "$T/keys.txt" /a/1/ 2
WRK_A=$KW_WRK_PID
WRK_OPTS="-t1 -c4 -d3s" kw_wrk_start b1 "$URL" "$T/keys.txt" /b/1/ 2
kw_reap "$WRK_A" "$KW_WRK_PID"

# keyed lines for TCP (the reference is the file itself): NAME COUNT
make_lines() {
  python3 - "$T/keys.txt" "$1" "$2" >"$T/tcp/$1.log" <<'EOF'
import random, sys, time
keys = open(sys.argv[1]).read().split()
name, n = sys.argv[2], int(sys.argv[3])
now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
for i in range(n):
    k = "-" if i % 10 == 0 else random.choice(keys)
    print('127.0.0.1 - - [%s] "GET /tcp/%s/%d HTTP/1.1" 200 11 "-" "syslog-test/1.0" "%s" 0.001'
          % (now, name, i, k))
EOF
}
make_lines logger5424 300
make_lines logger3164 300
check "logger --tcp --octet-count (RFC 5424) exits 0" \
  logger --tcp --octet-count --rfc5424 -n 127.0.0.1 -P "$TPORT" -t nginx -f "$T/tcp/logger5424.log"
check "logger --tcp --octet-count (RFC 3164) exits 0" \
  logger --tcp --octet-count --rfc3164 -n 127.0.0.1 -P "$TPORT" -t nginx -f "$T/tcp/logger3164.log"
make_lines newline 400
# newline framing, RFC 3164 and RFC 5424 headers alternating, written in random-size pieces
send_newline() { # FILE
  python3 - "$TPORT" "$1" <<'EOF'
import random, socket, sys, time
lines = open(sys.argv[2]).read().splitlines()
ts3164 = time.strftime("%b %e %H:%M:%S")
ts5424 = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
buf = b""
for i, l in enumerate(lines):
    if i % 2:
        buf += ("<190>%s web1 nginx: %s\n" % (ts3164, l)).encode()
    else:
        buf += ("<190>1 %s web1 nginx - - - %s\n" % (ts5424, l)).encode()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
i = 0
while i < len(buf):
    n = random.randint(1, 700)
    s.sendall(buf[i:i + n]); i += n
    if random.random() < 0.1:
        time.sleep(0.002)
s.shutdown(socket.SHUT_WR)
s.settimeout(5)
try:
    s.recv(1)
except OSError:
    pass
s.close()
EOF
}
check "newline-framed client sent its lines" send_newline "$T/tcp/newline.log"
REF=$(kw_ref_count "$T/ref/a.log" "$T"/tcp/*.log)
check "tcp: keywatch stored them within 20 s" kw_wait_calls "$DB2" "$REF" 20
kw_check_calls "before reload (tcp + file-a)" "$DB2" "$T/ref/a.log" "$T"/tcp/*.log

# reload with a second file source
write_kw_conf 1
kill -HUP "$KW_RUN_PID"
check "SIGHUP: event=reloaded" wait_event "$T/out/tcp.err" reloaded 1 5
check "SIGHUP: the new source started" \
  bash -c "grep 'event=source_started' '$T/out/tcp.err' | grep -q 'b.log'"
WRK_OPTS="-t1 -c4 -d3s" kw_wrk_start a2 "$URL" "$T/keys.txt" /a/2/ 2
WRK_A=$KW_WRK_PID
WRK_OPTS="-t1 -c4 -d3s" kw_wrk_start b2 "$URL" "$T/keys.txt" /b/2/ 2
make_lines after-reload 200
check "logger after the reload exits 0" \
  logger --tcp --octet-count -n 127.0.0.1 -P "$TPORT" -t nginx -f "$T/tcp/after-reload.log"
kw_reap "$WRK_A" "$KW_WRK_PID"
REF=$(kw_ref_count "$T/ref/a.log" "$T/ref/b.log" "$T"/tcp/*.log)
check "after reload: keywatch drained within 20 s" kw_wait_calls "$DB2" "$REF" 20
kw_check_calls "after reload (tcp + file-a + new file-b)" "$DB2" "$T/ref/a.log" "$T/ref/b.log" "$T"/tcp/*.log
sleep 1.2
"$KEYWATCH" --db "$DB2" status --json >"$T/out/tcp-status.json" 2>/dev/null
# status names a source by what it reads (file path, "syslog tcp://…"), not by its config name
expect_eq "status: three sources after the reload" \
  "$(json_get "$T/out/tcp-status.json" 'sorted(s["name"].rsplit("/", 1)[-1] for s in j["sources"])' 2>/dev/null)" \
  "[\"127.0.0.1:$TPORT\", \"a.log\", \"b.log\"]"
expect_eq "status: tcp source lines" \
  "$(json_get "$T/out/tcp-status.json" '[s["lines"] for s in j["sources"] if s["kind"] == "syslog"][0]' 2>/dev/null)" \
  "$(kw_ref_count "$T"/tcp/*.log)"
expect_eq "status: file-b read from its beginning (lines == nginx's b.log)" \
  "$(json_get "$T/out/tcp-status.json" '[s["lines"] for s in j["sources"] if s["name"].endswith("/b.log")][0]' 2>/dev/null)" \
  "$(kw_ref_count "$T/ref/b.log")"
expect_eq "status: file-a lines == nginx's a.log (not read twice)" \
  "$(json_get "$T/out/tcp-status.json" '[s["lines"] for s in j["sources"] if s["name"].endswith("/a.log")][0]' 2>/dev/null)" \
  "$(kw_ref_count "$T/ref/a.log")"
kw_run_stop TERM
expect_eq "tcp: SIGTERM exit status" "$KW_RUN_RC" 0
check "no error event on stderr" bash -c "! grep -q 'level=error' '$T/out/udp.err' '$T/out/tcp.err'"
kw_stop_pid "$NGX_PID"
kw_finish
