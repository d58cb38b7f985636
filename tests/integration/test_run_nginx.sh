#!/usr/bin/env bash
# test_run_nginx.sh — `keywatch run` following the access log of a real nginx under load.
#
# nginx on 127.0.0.1 writes its `keyed` access log; keywatch runs from before the first
# request (`keywatch run --format keyed LOG`); wrk (bench/wrk_keys.lua) sends requests with
# one of N random keys (5 % without a key), every request with a path of its own, first
# throttled, then as fast as it can.  When the load stops and keywatch has drained, it gets
# SIGTERM.  Asserted:
#   - SIGTERM stops it with exit status 0 and a `stopped` event, status shows it not running
#   - per key, calls stored (keys --json, by 7-char prefix) == lines of that key in nginx's
#     own log; anonymous calls too; no path stored twice, none missing, none invented
#   - status --json: lines == the log's lines, offset == its size, backlog 0, no gaps
#   - latency at low load: a single request is queryable with `calls --json --key` within
#     1 s (the design target is 100 ms; the measured time is printed)
. "$(dirname "$0")/lib.sh"

[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
for c in wrk curl; do
  command -v $c >/dev/null || { echo "$c is required (apt-get install $c)" >&2; exit 1; }
done

NK=6
kw_make_keys $NK "$T/keys.txt"
mapfile -t KEYS <"$T/keys.txt"
N=$T/ngx
LOG=$N/access.log
write_conf() {
  {
    kw_nginx_prologue "$N"
    cat <<EOF
  access_log $LOG keyed;
  server {
    listen 127.0.0.1:$NGX_PORT;
    location /api/ { return 200 '{"ok":true}'; }
    location / { return 404; }
  }
}
EOF
  } >"$N/nginx.conf"
}
mkdir -p "$N"
kw_nginx_up "$N" write_conf || { fail "nginx did not start"; kw_finish; }
ok "nginx on 127.0.0.1:$NGX_PORT"
URL=http://127.0.0.1:$NGX_PORT

export KEYWATCH_SECRET=test-run-nginx-secret-0123456789abcdef
DB=$T/kw/kw.db
mkdir -p "$T/kw"
kw_run_start run --db "$DB" run --format keyed "$LOG"
KW=$KW_RUN_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'event=started' "$T/out/run.err" 2>/dev/null && break
  kill -0 "$KW" 2>/dev/null || break
  sleep 0.1
done
check "keywatch run started (event=started on stderr)" grep -q 'event=started' "$T/out/run.err"

# ---------------------------------------------------------------- load
# 1) throttled: 4 connections, 2 ms between requests (a few thousand requests/s), 5 s
WRK_OPTS="-t2 -c4 -d5s" kw_wrk_start throttled "$URL" "$T/keys.txt" /api/t/ 2
kw_reap "$KW_WRK_PID"
# 2) as fast as wrk can drive nginx on this machine, 4 s
WRK_OPTS="-t2 -c16 -d4s" kw_wrk_start flat-out "$URL" "$T/keys.txt" /api/f/ 0
kw_reap "$KW_WRK_PID"
grep -h 'Requests/sec' "$T/out/throttled.wrk" "$T/out/flat-out.wrk" | sed 's/^/# wrk /'
check "keywatch still running after the load" kill -0 "$KW"

LINES=$(wc -l <"$LOG")
check "nginx logged the load (>= 5000 lines: $LINES)" test "$LINES" -ge 5000
check "keywatch drained the log within 30 s" kw_wait_calls "$DB" "$LINES" 30

"$KEYWATCH" --db "$DB" status --json >"$T/out/status.json" 2>/dev/null
if is_json "$T/out/status.json"; then
  S=$T/out/status.json
  expect_eq "status: one source" "$(json_get "$S" 'len(j["sources"])')" 1
  expect_eq "status: daemon running" "$(json_get "$S" 'j["daemon"]["running"]')" True
  expect_eq "status: daemon pid" "$(json_get "$S" 'j["daemon"]["pid"]')" "$KW"
  expect_eq "status: source kind" "$(json_get "$S" 'j["sources"][0]["kind"]')" file
  expect_eq "status: lines read" "$(json_get "$S" 'j["sources"][0]["lines"]')" "$LINES"
  expect_eq "status: offset is the log's size" "$(json_get "$S" 'j["sources"][0]["offset"]')" "$(stat -c %s "$LOG")"
  expect_eq "status: backlog" "$(json_get "$S" 'j["sources"][0]["backlog"]')" 0
  expect_eq "status: malformed" "$(json_get "$S" 'j["sources"][0]["malformed"]')" 0
  expect_eq "status: gaps" "$(json_get "$S" 'j["sources"][0]["gaps"]')" 0
else
  fail "status --json is not JSON: $(head -c 300 "$T/out/status.json")"
fi

# ---------------------------------------------------------------- latency at low load
# one request, then poll calls --json --key until the call is there (bounded: 3 s)
LAT_KEY=${KEYS[0]}
LATS=()
for r in 1 2 3; do
  sleep 0.3
  path=/api/latency/$r
  t0=$(date +%s%N)
  curl -s -o /dev/null --max-time 5 -H "X-API-Key: $LAT_KEY" "$URL$path"
  t1=$(date +%s%N)
  seen=""
  for ((i = 0; i < 300; i++)); do
    if "$KEYWATCH" --db "$DB" calls --json --limit 20 --key "${LAT_KEY:0:7}" 2>/dev/null |
      grep -q "\"path\": \"$path\""; then
      seen=$(date +%s%N)
      break
    fi
    [ $(((${seen:-$(date +%s%N)} - t0) / 1000000)) -gt 3000 ] && break
    sleep 0.005
  done
  if [ -n "$seen" ]; then
    LATS+=($(((seen - t1) / 1000000)))
  else
    LATS+=(9999)
  fi
done
t0=$(date +%s%N)
"$KEYWATCH" --db "$DB" calls --json --limit 20 --key "${LAT_KEY:0:7}" >/dev/null 2>&1
t1=$(date +%s%N)
echo "# request answered → call queryable (ms): ${LATS[*]}; one poll (a keywatch calls run) takes $(((t1 - t0) / 1000000)) ms"
for l in "${LATS[@]}"; do
  check "single request queryable within 1 s (${l} ms)" test "$l" -lt 1000
done

# ---------------------------------------------------------------- stop
kw_run_stop TERM
expect_eq "SIGTERM: exit status" "$KW_RUN_RC" 0
check "stderr has event=stopped" grep -q 'event=stopped' "$T/out/run.err"
check "stderr has no error event" bash -c "! grep -q 'level=error' '$T/out/run.err'"
"$KEYWATCH" --db "$DB" status --json >"$T/out/status2.json" 2>/dev/null
expect_eq "status after stop: daemon not running" "$(json_get "$T/out/status2.json" 'j["daemon"]["running"]' 2>/dev/null)" False

LINES=$(wc -l <"$LOG")
kw_check_calls "after SIGTERM" "$DB" "$LOG"
kw stats --db "$DB" stats --json
expect_eq "stats --json calls == nginx's log lines" "$(json_get "$KW_OUT" 'j["calls"]' 2>/dev/null)" "$LINES"
expect_eq "stats --json malformed" "$(json_get "$KW_OUT" 'j["malformed"]' 2>/dev/null)" 0
check "no raw key in keywatch's stderr" bash -c "! grep -qF -f '$T/keys.txt' '$T/out/run.err'"

kw_stop_pid "$NGX_PID"
kw_finish
