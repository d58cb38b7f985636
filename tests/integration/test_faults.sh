#!/usr/bin/env bash
# test_faults.sh — the daemon under storage faults: it stops cleanly and loses nothing.
#
#  - disk full (RLIMIT_FSIZE, SIGXFSZ ignored: writes fail with EFBIG): `keywatch run`
#    reports the failed commit and exits 1; restarted without the limit, every line of
#    the log is stored exactly once and the hash chain is intact;
#  - a concurrent writer holding SQLite's write lock longer than the busy timeout: the
#    same — exit 1, then exactly once after a restart;
#  - a corrupt database file: a clear error and exit 1, no crash;
#  - core dumps are off for keywatch (RLIMIT_CORE 0), so no raw key reaches one.
. "$(dirname "$0")/lib.sh"

SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log
for i in 1 2 3 4 5 6; do cat "$SAMPLE"; done >"$T/big.log" # 30,000 lines
LINES=$(wc -l <"$T/big.log")

count() { sqlite3 "$1" 'SELECT count(*) FROM calls'; }
wait_count() { # db n secs
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [ "$(count "$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
wait_exit() { # pid secs: 0 when it ended by itself
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# ---- disk full
: >"$T/full.log"
kw init ingest -q --no-rules --db "$T/full.db" "$T/full.log" # the database exists
(
  trap '' XFSZ
  ulimit -f 1024 # KiB: the database cannot grow past 1 MiB
  exec "$KEYWATCH" run --db "$T/full.db" --format keyed "$T/full.log" 2>"$T/out/full.err"
) &
FULL_PID=$!
KW_PIDS+=("$FULL_PID")
sleep 0.5
cp "$T/big.log" "$T/full.log"
if wait_exit "$FULL_PID" 30; then
  wait "$FULL_PID"
  rc=$?
  ok "disk full: the daemon stopped by itself"
else
  rc=none
  fail "disk full: the daemon did not stop within 30 s"
  kill -KILL "$FULL_PID"
fi
expect_eq "disk full: exit status 1" "$rc" 1
check "disk full: it says why" grep -qE "event=stopping .*(disk|full|large|I/O|database)" "$T/out/full.err"
stored=$(count "$T/full.db")
check "disk full: the failed batch was not acknowledged ($stored of $LINES stored)" test "$stored" -lt "$LINES"
kw_run_start full2 run --db "$T/full.db" --format keyed "$T/full.log"
wait_count "$T/full.db" "$LINES" 60
kw_run_stop TERM
expect_eq "disk full, restarted: every line exactly once" "$(count "$T/full.db")" "$LINES"
kw v1 verify --db "$T/full.db"
expect_eq "disk full, restarted: hash chain intact" "$KW_RC" 0

# ---- a writer holding the lock past the busy timeout (5 s)
: >"$T/busy.log"
kw_run_start busy run --db "$T/busy.db" --format keyed "$T/busy.log"
BUSY_PID=$KW_RUN_PID
wait_count "$T/busy.db" 0 5
python3 - "$T/busy.db" "$T/busy.locked" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(8)
c.execute("ROLLBACK")
PY
LOCK_PID=$!
for ((i = 0; i < 50; i++)); do [ -f "$T/busy.locked" ] && break; sleep 0.1; done
head -3000 "$SAMPLE" >>"$T/busy.log"
if wait_exit "$BUSY_PID" 20; then
  wait "$BUSY_PID"
  rc=$?
else
  rc=none
fi
KW_RUN_PID=""
expect_eq "locked database: the daemon stops with status 1" "$rc" 1
check "locked database: it says the database is locked" grep -qi "locked\|busy" "$T/out/busy.err"
wait "$LOCK_PID"
kw_run_start busy2 run --db "$T/busy.db" --format keyed "$T/busy.log"
wait_count "$T/busy.db" 3000 30
kw_run_stop TERM
expect_eq "locked database, restarted: every line exactly once" "$(count "$T/busy.db")" 3000

# ---- a corrupt database
head -c 4096 /dev/urandom >"$T/corrupt.db"
kw corrupt_keys keys --db "$T/corrupt.db"
expect_eq "corrupt database: keys exits 1" "$KW_RC" 1
check "corrupt database: a clear message" grep -qi "not a keywatch database\|not a database\|not usable" "$KW_ERR"
kw corrupt_ingest ingest -q --db "$T/corrupt.db" "$SAMPLE"
expect_eq "corrupt database: ingest exits 1" "$KW_RC" 1
check "corrupt database: ingest names the file" grep -q "corrupt.db" "$KW_ERR"

# ---- no core dumps
kw_run_start core run --db "$T/core.db" --format keyed "$T/busy.log"
sleep 0.5
check "core dumps are off for the daemon" grep -qE "Max core file size +0 +0" "/proc/$KW_RUN_PID/limits"
kw_run_stop TERM
kw_finish
