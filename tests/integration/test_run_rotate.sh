#!/usr/bin/env bash
# test_run_rotate.sh — `keywatch run` through real log rotation under load.
#
# One nginx on 127.0.0.1 and one keywatch (config file: a single-file source and a glob
# source) while wrk sends keyed requests, each with a path of its own.  Every location also
# logs to a reference file under ref/ that nothing rotates: the ground truth of what nginx
# wrote.  Phases, each checked against nginx's logs once the load stopped and keywatch
# drained:
#   A  Debian logrotate (own config and state file, -f) with `create`, `compress`,
#      `delaycompress` and postrotate `kill -USR1 nginx` (what `nginx -s reopen` sends),
#      4 rotations 2 s apart under load: no loss, no duplicate, exactly as nginx's log;
#      the rotated files (.1, .N.gz) hold every line too.
#   B  logrotate `copytruncate`, 3 rotations under load: no duplicate; no loss except the
#      lines logrotate itself loses (written between its copy and its truncate, so in no
#      file: those may be missing, nothing else).
#   C  glob source `glob/*.access.log`: a.access.log is deleted and re-created (rm, then
#      nginx reopens) under load, and b.access.log appears only after keywatch started
#      (nginx reload with a new location): everything of both files stored exactly once.
# Also: SIGTERM exits 0; status --json shows no gap; stderr shows the rotations.
. "$(dirname "$0")/lib.sh"

[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
for c in wrk logrotate zcat; do
  command -v $c >/dev/null || { echo "$c is required (apt-get install $c)" >&2; exit 1; }
done

kw_make_keys 5 "$T/keys.txt"
N=$T/ngx
mkdir -p "$N" "$T/logs" "$T/glob" "$T/ref" "$T/lr" "$T/kw"
WITH_B=0
write_conf() {
  local b=""
  [ "$WITH_B" = 1 ] && b="location /g/b/ { access_log $T/glob/b.access.log keyed; access_log $T/ref/b.log keyed; return 200 '{\"ok\":true}'; }"
  {
    kw_nginx_prologue "$N"
    cat <<EOF
  server {
    listen 127.0.0.1:$NGX_PORT;
    location /api/ { access_log $T/logs/api.access.log keyed; access_log $T/ref/api.log keyed; return 200 '{"ok":true}'; }
    location /g/a/ { access_log $T/glob/a.access.log keyed; access_log $T/ref/a.log keyed; return 200 '{"ok":true}'; }
    $b
    location / { access_log off; return 404; }
  }
}
EOF
  } >"$N/nginx.conf"
}
kw_nginx_up "$N" write_conf || { fail "nginx did not start"; kw_finish; }
ok "nginx on 127.0.0.1:$NGX_PORT"
URL=http://127.0.0.1:$NGX_PORT

export KEYWATCH_SECRET=test-run-rotate-secret-0123456789abcdef
DB=$T/kw/kw.db
cat >"$T/kw/keywatch.yaml" <<EOF
db: $DB
ingest:
  format: keyed
sources:
  - name: main
    type: file
    path: $T/logs/api.access.log
  - name: glob
    type: file
    path: $T/glob/*.access.log
run:
  commit_ms: 50
  poll_ms: 250
EOF
kw_run_start run run --config "$T/kw/keywatch.yaml"
KW=$KW_RUN_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'event=started' "$T/out/run.err" 2>/dev/null && break
  kill -0 "$KW" 2>/dev/null || break
  sleep 0.1
done
check "keywatch run --config started" grep -q 'event=started' "$T/out/run.err"

# the whole reference so far, for kw_wait_calls
ref_total() { kw_ref_count "$T"/ref/*.log; }
logrotate_n() { # CONF TIMES GAP_S: run logrotate -f TIMES times, GAP_S apart
  local conf=$1 n=$2 gap=$3 i rc=0
  for ((i = 0; i < n; i++)); do
    sleep "$gap"
    logrotate -f -s "$T/lr/state" "$conf" >>"$T/out/logrotate.out" 2>&1 || rc=1
  done
  return $rc
}

# ---------------------------------------------------------------- A: create + reopen
cat >"$T/lr/create.conf" <<EOF
$T/logs/api.access.log {
  rotate 30
  missingok
  create 0644
  compress
  delaycompress
  sharedscripts
  postrotate
    kill -USR1 \$(cat $N/nginx.pid)
  endscript
}
EOF
WRK_OPTS="-t2 -c8 -d11s" kw_wrk_start A "$URL" "$T/keys.txt" /api/a/ 1
check "A: logrotate (create, compress, delaycompress, postrotate USR1) 4 times under load" \
  logrotate_n "$T/lr/create.conf" 4 2
kw_reap "$KW_WRK_PID"
grep -h 'Requests/sec' "$T/out/A.wrk" | sed 's/^/# A: wrk /'
check "A: rotated files exist (.1 and .N.gz)" \
  bash -c "ls '$T/logs/api.access.log.1' '$T/logs/api.access.log.2.gz' >/dev/null 2>&1"
# every line nginx wrote is in one of the files (create rotation loses nothing)
expect_eq "A: lines over all rotated files == nginx's reference log" \
  "$(kw_ref_count "$T"/logs/api.access.log*)" "$(kw_ref_count "$T/ref/api.log")"
check "A: keywatch drained within 30 s" kw_wait_calls "$DB" "$(ref_total)" 30
kw_check_calls "A (create)" "$DB" "$T"/ref/*.log
check "A: stderr shows rotations (event=rotated)" grep -q 'event=rotated' "$T/out/run.err"

# ---------------------------------------------------------------- B: copytruncate
cat >"$T/lr/copytruncate.conf" <<EOF
$T/logs/api.access.log {
  rotate 30
  missingok
  copytruncate
  nocompress
}
EOF
WRK_OPTS="-t2 -c8 -d8s" kw_wrk_start B "$URL" "$T/keys.txt" /api/b/ 1
check "B: logrotate (copytruncate) 3 times under load" logrotate_n "$T/lr/copytruncate.conf" 3 2
kw_reap "$KW_WRK_PID"
grep -h 'Requests/sec' "$T/out/B.wrk" | sed 's/^/# B: wrk /'
# lines nginx wrote between logrotate's copy and its truncate are in no file: may be missing
kw_paths_missing "$T/ref/api.log" /api/b/ "$T"/logs/api.access.log* >"$T/allow-missing.txt"
echo "# B: $(wc -l <"$T/allow-missing.txt") lines lost by copytruncate itself (in nginx's reference log, in no rotated file)"
check "B: keywatch drained within 30 s" kw_wait_calls "$DB" "$(($(ref_total) - $(wc -l <"$T/allow-missing.txt")))" 30
KW_ALLOW_MISSING=$T/allow-missing.txt kw_check_calls "B (copytruncate)" "$DB" "$T"/ref/*.log
check "B: stderr shows truncations (event=truncated)" grep -q 'event=truncated' "$T/out/run.err"

# ---------------------------------------------------------------- C: glob, delete, late file
WRK_OPTS="-t1 -c4 -d8s" kw_wrk_start C-a "$URL" "$T/keys.txt" /g/a/ 1
WRK_A=$KW_WRK_PID
sleep 2
rm -f "$T/glob/a.access.log"
sleep 0.5
kill -USR1 "$(cat "$N/nginx.pid")" # nginx re-creates a.access.log
sleep 1.5
check "C: a.access.log re-created by nginx" test -e "$T/glob/a.access.log"
check "C: b.access.log does not exist yet" test ! -e "$T/glob/b.access.log"
WITH_B=1
write_conf
kill -HUP "$(cat "$N/nginx.pid")" # reload: the new location logs to b.access.log
for ((i = 0; i < 50; i++)); do [ -e "$T/glob/b.access.log" ] && break; sleep 0.1; done
check "C: b.access.log appeared after nginx reload" test -e "$T/glob/b.access.log"
WRK_OPTS="-t1 -c4 -d4s" kw_wrk_start C-b "$URL" "$T/keys.txt" /g/b/ 1
kw_reap "$KW_WRK_PID" "$WRK_A"
grep -h 'Requests/sec' "$T/out/C-a.wrk" "$T/out/C-b.wrk" | sed 's/^/# C: wrk /'
expect_eq "C: nginx answered /g/b/ (reference has lines)" "$(($(kw_ref_count "$T/ref/b.log") > 1000))" 1
check "C: keywatch drained within 30 s" kw_wait_calls "$DB" "$(($(ref_total) - $(wc -l <"$T/allow-missing.txt")))" 30
KW_ALLOW_MISSING=$T/allow-missing.txt kw_check_calls "C (glob, delete, late file)" "$DB" "$T"/ref/*.log

"$KEYWATCH" --db "$DB" status --json >"$T/out/status.json" 2>/dev/null
expect_eq "status: gaps over all sources" "$(json_get "$T/out/status.json" 'sum(s["gaps"] for s in j["sources"])' 2>/dev/null)" 0
expect_eq "status: backlog over all sources" "$(json_get "$T/out/status.json" 'sum(s["backlog"] for s in j["sources"])' 2>/dev/null)" 0
check "status: the late file glob/b.access.log is followed" \
  grep -q "b.access.log" "$T/out/status.json"

kw_run_stop TERM
expect_eq "SIGTERM: exit status" "$KW_RUN_RC" 0
check "stderr has no error event" bash -c "! grep -q 'level=error' '$T/out/run.err'"
grep -oE 'event=(opened|rotated|closed|truncated|recovered|gap|error)' "$T/out/run.err" | sort | uniq -c |
  sed 's/^/# stderr /'
kw_stop_pid "$NGX_PID"
kw_finish
