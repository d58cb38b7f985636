#!/usr/bin/env bash
# test_verify.sh — the audit hash chain: `keywatch verify` after edits made with sqlite3.
#
# The bundled sample is ingested in batches of 500 calls (10 links).  On copies of the
# database, the sqlite3 CLI changes a call, deletes one, swaps two, edits a user agent
# in its dictionary table, deletes a link, and inserts a call; `verify` must name the
# right batch (or the insertion) each time and exit 1, and exit 0 on the untouched copy.
. "$(dirname "$0")/lib.sh"

SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log
printf 'ingest:\n  batch_rows: 500\n' >"$T/kw.yaml"
kw ingest ingest -q --no-rules --config "$T/kw.yaml" --db "$T/kw.db" "$SAMPLE"
expect_eq "ingest exits 0" "$KW_RC" 0
expect_eq "one link per batch of 500" "$(sqlite3 "$T/kw.db" 'SELECT count(*) FROM chain')" 10

kw verify verify --db "$T/kw.db" --json
expect_eq "untouched: exit 0" "$KW_RC" 0
check "untouched: valid JSON, intact" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["intact"] is True and j["batches"] == 10 and j["calls"] == 5000, j' "$KW_OUT"

tamper() { # name sql expected-batch expected-reason-part
  cp "$T/kw.db" "$T/$1.db"
  sqlite3 "$T/$1.db" "$2"
  kw "$1" verify --db "$T/$1.db" --json
  expect_eq "$1: exit 1" "$KW_RC" 1
  check "$1: names batch $3 ($4)" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["intact"] is False, j
assert j["bad_batch"] == (None if sys.argv[2] == "none" else int(sys.argv[2])), j
assert sys.argv[3] in j["reason"], j["reason"]' "$KW_OUT" "$3" "$4"
}

tamper changed "UPDATE calls SET status = 599 WHERE id = 1234" 3 "changed"
tamper deleted "DELETE FROM calls WHERE id = 2600" 6 "missing"
B=$(sqlite3 "$T/kw.db" "SELECT min(id) FROM calls WHERE id > 4001 AND id <= 4500 AND path != (SELECT path FROM calls WHERE id = 4001)")
tamper swapped "UPDATE calls SET path = CASE id WHEN 4001 THEN (SELECT path FROM calls WHERE id = $B) ELSE (SELECT path FROM calls WHERE id = 4001) END WHERE id IN (4001, $B)" 9 "changed"
tamper agent "UPDATE agents SET value = 'innocent/1.0' WHERE id = (SELECT agent_id FROM calls WHERE id = 10)" 1 "changed"
tamper link_deleted "DELETE FROM chain WHERE batch = 4" 5 "does not follow"
tamper inserted "INSERT INTO calls(ts, endpoint_id, path, status, source_id) VALUES(0, 1, '/forged', 200, 1)" none "inserted"

# The text output names the batch too.
kw text verify --db "$T/changed.db"
check "text output: TAMPERED with the batch" grep -q "TAMPERED: batch 3" "$KW_OUT"

# The daemon's group commits extend the same chain, across a kill -9.
cp "$SAMPLE" "$T/live.log"
kw_run_start run run --db "$T/kw.db" --format keyed "$T/live.log"
for ((i = 0; i < 100; i++)); do
  n=$(sqlite3 "$T/kw.db" 'SELECT count(*) FROM calls' 2>/dev/null || echo 0)
  [ "$n" -ge 10000 ] && break
  sleep 0.1
done
kw_run_stop KILL
kw_run_start run2 run --db "$T/kw.db" --format keyed "$T/live.log"
head -200 "$SAMPLE" >>"$T/live.log"
for ((i = 0; i < 100; i++)); do
  n=$(sqlite3 "$T/kw.db" 'SELECT count(*) FROM calls' 2>/dev/null || echo 0)
  [ "$n" -ge 10200 ] && break
  sleep 0.1
done
kw_run_stop TERM
expect_eq "daemon: every call stored once" "$(sqlite3 "$T/kw.db" 'SELECT count(*) FROM calls')" 10200
kw verify2 verify --db "$T/kw.db"
expect_eq "daemon batches after a kill -9: chain intact" "$KW_RC" 0
check "and it says so" grep -q "^intact: .* 10200 calls" "$KW_OUT"
kw_finish
