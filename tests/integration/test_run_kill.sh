#!/usr/bin/env bash
# test_run_kill.sh — `kill -9` of `keywatch run` at random moments under load.
#
# nginx on 127.0.0.1 writes its `keyed` log (and a reference copy nothing touches); wrk
# sends keyed requests, each with a path of its own, for ~16 s.  Meanwhile keywatch is
# killed with SIGKILL 7 times at random moments (0.3–2 s apart) and restarted each time
# after a random pause (0–0.7 s), with the same database.  Then:
#   - every restart came up (event=started) and the last one is running;
#   - once drained: per key, calls stored == nginx's count; no path stored twice, none
#     missing (the read position is committed with the calls: exactly once);
#   - status --json: gaps 0, backlog 0.
# Second round: killed under load, the log is rotated (logrotate create + USR1) while
# keywatch is down, then it is restarted: the rotated file is found by its identity and
# drained from the saved position; the check above is repeated.
# Third round: the same with logrotate `copytruncate` while keywatch is down: it resumes
# from the copy (event=recovered); only lines logrotate itself lost may be missing.
# Fourth round: killed under load, nginx keeps writing for ~1.5 s, then the file is rotated
# with `compress` (renamed, compressed, removed) before keywatch is back: its unread end is
# really lost, so a gap must be recorded (status gaps >= 1, event=gap) and the calls
# missing must all be lines of that file; nothing stored twice.
# Finally SIGTERM: exit status 0.
. "$(dirname "$0")/lib.sh"

[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
for c in wrk logrotate; do
  command -v $c >/dev/null || { echo "$c is required (apt-get install $c)" >&2; exit 1; }
done

kw_make_keys 5 "$T/keys.txt"
N=$T/ngx
mkdir -p "$N" "$T/logs" "$T/ref" "$T/lr" "$T/kw"
LOG=$T/logs/api.access.log
write_conf() {
  {
    kw_nginx_prologue "$N"
    cat <<EOF
  access_log $LOG keyed;
  access_log $T/ref/api.log keyed;
  server {
    listen 127.0.0.1:$NGX_PORT;
    location /api/ { return 200 '{"ok":true}'; }
    location / { return 404; }
  }
}
EOF
  } >"$N/nginx.conf"
}
kw_nginx_up "$N" write_conf || { fail "nginx did not start"; kw_finish; }
ok "nginx on 127.0.0.1:$NGX_PORT"
URL=http://127.0.0.1:$NGX_PORT

export KEYWATCH_SECRET=test-run-kill-secret-0123456789abcdef
DB=$T/kw/kw.db
STARTS=0
start_kw() {
  kw_run_start run --db "$DB" run --format keyed "$LOG"
  STARTS=$((STARTS + 1))
}
ms_sleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

start_kw
# ---------------------------------------------------------------- round 1: kill -9 × 7
WRK_OPTS="-t2 -c8 -d16s" kw_wrk_start kill "$URL" "$T/keys.txt" /api/k/ 1
KILLS=0
DEAD_BEFORE_KILL=0
for ((round = 0; round < 7; round++)); do
  ms_sleep $((300 + RANDOM % 1700))
  kill -0 "$KW_RUN_PID" 2>/dev/null || DEAD_BEFORE_KILL=$((DEAD_BEFORE_KILL + 1))
  kw_run_stop KILL
  [ "$KW_RUN_RC" = 137 ] && KILLS=$((KILLS + 1))
  ms_sleep $((RANDOM % 700))
  start_kw
done
expect_eq "keywatch was alive at each kill -9 (deaths of its own)" "$DEAD_BEFORE_KILL" 0
expect_eq "kill -9 ended it 7 times" "$KILLS" 7
kw_reap "$KW_WRK_PID"
grep -h 'Requests/sec' "$T/out/kill.wrk" | sed 's/^/# round 1: wrk /'
REF=$(kw_ref_count "$T/ref/api.log")
check "round 1: keywatch drained within 30 s" kw_wait_calls "$DB" "$REF" 30
expect_eq "every start logged event=started" "$(grep -c 'event=started' "$T/out/run.err")" "$STARTS"
check "the last keywatch is running" kill -0 "$KW_RUN_PID"
kw_check_calls "round 1 (7 × kill -9)" "$DB" "$T/ref/api.log"
# a restart resumes from the saved offset (no duplicate above proves it); its `opened`
# event must say so: an operator reads offset= to see where reading went on
expect_eq "restarts log the offset they resume from (event=opened … offset>0)" \
  "$(grep 'event=opened' "$T/out/run.err" | grep -c 'offset=[1-9]')" 7
"$KEYWATCH" --db "$DB" status --json >"$T/out/status1.json" 2>/dev/null
expect_eq "round 1: status gaps" "$(json_get "$T/out/status1.json" 'sum(s["gaps"] for s in j["sources"])' 2>/dev/null)" 0
expect_eq "round 1: status backlog" "$(json_get "$T/out/status1.json" 'sum(s["backlog"] for s in j["sources"])' 2>/dev/null)" 0

# ---------------------------------------------------------------- round 2: rotated while down
cat >"$T/lr/create.conf" <<EOF
$LOG {
  rotate 10
  create 0644
  nocompress
  sharedscripts
  postrotate
    kill -USR1 \$(cat $N/nginx.pid)
  endscript
}
EOF
WRK_OPTS="-t2 -c8 -d6s" kw_wrk_start kill2 "$URL" "$T/keys.txt" /api/r/ 1
ms_sleep $((1500 + RANDOM % 1000))
kw_run_stop KILL
expect_eq "round 2: kill -9" "$KW_RUN_RC" 137
check "round 2: logrotate -f (create + USR1) while keywatch is down" \
  logrotate -f -s "$T/lr/state" "$T/lr/create.conf"
sleep 1
start_kw
kw_reap "$KW_WRK_PID"
check "round 2: the log was rotated (api.access.log.1)" test -s "$LOG.1"
REF=$(kw_ref_count "$T/ref/api.log")
check "round 2: keywatch drained within 30 s" kw_wait_calls "$DB" "$REF" 30
kw_check_calls "round 2 (rotated while down)" "$DB" "$T/ref/api.log"
"$KEYWATCH" --db "$DB" status --json >"$T/out/status2.json" 2>/dev/null
expect_eq "round 2: status gaps" "$(json_get "$T/out/status2.json" 'sum(s["gaps"] for s in j["sources"])' 2>/dev/null)" 0

# ---------------------------------------------------------------- round 3: copytruncate while down
cat >"$T/lr/copytruncate.conf" <<EOF
$LOG {
  rotate 10
  copytruncate
  nocompress
}
EOF
WRK_OPTS="-t2 -c8 -d6s" kw_wrk_start kill3 "$URL" "$T/keys.txt" /api/c/ 1
ms_sleep $((1500 + RANDOM % 1000))
kw_run_stop KILL
expect_eq "round 3: kill -9" "$KW_RUN_RC" 137
check "round 3: logrotate -f (copytruncate) while keywatch is down" \
  logrotate -f -s "$T/lr/state" "$T/lr/copytruncate.conf"
sleep 1
start_kw
kw_reap "$KW_WRK_PID"
# lines written between logrotate's copy and its truncate are in no file: may be missing
kw_paths_missing "$T/ref/api.log" /api/c/ "$LOG"* >"$T/allow3.txt"
echo "# round 3: $(wc -l <"$T/allow3.txt") lines lost by copytruncate itself"
REF=$(kw_ref_count "$T/ref/api.log")
check "round 3: keywatch drained within 30 s" kw_wait_calls "$DB" "$((REF - $(wc -l <"$T/allow3.txt")))" 30
KW_ALLOW_MISSING=$T/allow3.txt kw_check_calls "round 3 (copytruncate while down)" "$DB" "$T/ref/api.log"
check "round 3: stderr shows it resumed from the copy (event=recovered)" \
  grep -q 'event=recovered' "$T/out/run.err"
"$KEYWATCH" --db "$DB" status --json >"$T/out/status3.json" 2>/dev/null
expect_eq "round 3: status gaps" "$(json_get "$T/out/status3.json" 'sum(s["gaps"] for s in j["sources"])' 2>/dev/null)" 0

# ---------------------------------------------------------------- round 4: data really lost
# Killed under load; nginx goes on writing the file for ~1.5 s; then it is rotated with
# `compress` (no delaycompress): the file keywatch was reading is renamed, compressed and
# removed before keywatch is back.  Its unread end is gone: a gap must be recorded and
# counted, and the calls missing must all be lines of that file (now only in .1.gz).
for ((i = 0; i < 100; i++)); do # rotated files closed (quiet for rotate_wait_ms, 5 s)
  [ "$(kw_status_sum "$DB" files)" = 1 ] && break
  sleep 0.1
done
expect_eq "round 4: before it, keywatch follows one file (rotated ones closed)" "$(kw_status_sum "$DB" files)" 1
cat >"$T/lr/compress.conf" <<EOF
$LOG {
  rotate 10
  create 0644
  compress
  sharedscripts
  postrotate
    kill -USR1 \$(cat $N/nginx.pid)
  endscript
}
EOF
rm -f "$LOG".[0-9]* # earlier rotations (read already): logrotate would overwrite .1 anyway
WRK_OPTS="-t2 -c8 -d3s" kw_wrk_start kill4 "$URL" "$T/keys.txt" /api/g/ 1
ms_sleep $((1000 + RANDOM % 500))
kw_run_stop KILL
expect_eq "round 4: kill -9" "$KW_RUN_RC" 137
kw_reap "$KW_WRK_PID" # nginx writes on for the rest of the 3 s; the load ends before
# logrotate, so that gzip reads a file nginx no longer writes
check "round 4: logrotate -f (create, compress, USR1) while keywatch is down" \
  logrotate -f -s "$T/lr/state" "$T/lr/compress.conf"
check "round 4: the rotated file is compressed (api.access.log.1.gz, no .1)" \
  bash -c "test -s '$LOG.1.gz' && test ! -e '$LOG.1'"
start_kw
WRK_OPTS="-t2 -c8 -d2s" kw_wrk_start kill4b "$URL" "$T/keys.txt" /api/h/ 1
kw_reap "$KW_WRK_PID"
{ kw_paths_of "$LOG.1.gz"; cat "$T/allow3.txt"; } >"$T/allow4.txt" # + round 3's
REF=$(kw_ref_count "$T/ref/api.log")
kw_wait_calls "$DB" "$REF" 15
STORED=$(kw_calls_total "$DB")
echo "# round 4: nginx $REF, stored $STORED: $((REF - ${STORED:-0})) lines missing (with the removed file, and round 3's $(wc -l <"$T/allow3.txt"))"
check "round 4: calls were really lost (stored < nginx's count)" test "${STORED:-0}" -lt "$REF"
KW_ALLOW_MISSING=$T/allow4.txt kw_check_calls "round 4 (lost: only lines of the removed file)" "$DB" "$T/ref/api.log"
sleep 1.2 # status is written every second
"$KEYWATCH" --db "$DB" status --json >"$T/out/status4.json" 2>/dev/null
GAPS=$(json_get "$T/out/status4.json" 'sum(s["gaps"] for s in j["sources"])' 2>/dev/null)
check "round 4: status counts the gap (gaps >= 1: ${GAPS:-?})" test "${GAPS:-0}" -ge 1
check "round 4: stderr has event=gap" grep -q 'event=gap' "$T/out/run.err"

kw_run_stop TERM
expect_eq "SIGTERM: exit status" "$KW_RUN_RC" 0
grep -oE 'event=(opened|rotated|closed|truncated|recovered|gap|error|started)' "$T/out/run.err" |
  sort | uniq -c | sed 's/^/# stderr /'
kw_stop_pid "$NGX_PID"
kw_finish
