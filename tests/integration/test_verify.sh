#!/usr/bin/env bash
# test_verify.sh — the audit hash chain: `keywatch verify` after edits made with sqlite3.
#
# The bundled sample is ingested in batches of 500 calls (10 links).  On copies of the
# database, the sqlite3 CLI changes a call, deletes one, swaps two, edits a user agent
# in its dictionary table, deletes a link, and inserts a call; `verify` must name the
# right batch (or the insertion) each time and exit 1, and exit 0 on the untouched copy.
#
# Retention: `keywatch prune` removes the batches older than a cutoff and moves the
# chain's anchor; verify stays intact and reports the anchor, and names the deletion of
# a batch after the anchor, or an anchor moved by hand.  A prune stops at a tampered
# batch (exit 1) and leaves it for verify to name.  `keywatch run` with retention.calls
# prunes by itself, and the chain goes on from the anchor.
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

# ---- retention: prune moves the anchor forward, never breaks the chain
cp "$T/kw.db" "$T/ret.db"
# The sample spans 2025-11-03 and -04: prune what is older than 2025-11-04T00:00Z.
CUT_US=$(python3 -c 'import datetime as d; print(int(d.datetime(2025, 11, 4, tzinfo=d.timezone.utc).timestamp()) * 1000000)')
AGE_H=$(python3 -c 'import time, sys; print(int((time.time() * 1e6 - int(sys.argv[1])) // 3600e6))' "$CUT_US")
# batches whose every call is older than the cutoff (hour rounding moves it back < 1 h)
CUT_US=$(python3 -c 'import time, sys; print(int(time.time() * 1e6) - int(sys.argv[1]) * 3600000000)' "$AGE_H")
WANT_B=$(sqlite3 "$T/ret.db" "SELECT count(*) FROM chain c WHERE (SELECT max(ts) FROM calls WHERE id BETWEEN c.first_call AND c.last_call) < $CUT_US")
WANT_C=$(sqlite3 "$T/ret.db" "SELECT coalesce(sum(calls), 0) FROM chain WHERE batch <= $WANT_B")
HEAD=$(sqlite3 "$T/ret.db" "SELECT hex(hash) FROM chain ORDER BY batch DESC LIMIT 1" | tr 'A-F' 'a-f')
check "retention: some batches are old enough ($WANT_B)" test "$WANT_B" -ge 2 -a "$WANT_B" -le 8

kw prune_dry prune --db "$T/ret.db" --older-than "${AGE_H}h" --dry-run
expect_eq "prune --dry-run: exit 0" "$KW_RC" 0
WANT_CS=$(python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$WANT_C")
check "prune --dry-run: says what it would remove" grep -q "would remove $WANT_CS calls in $WANT_B batches" "$KW_OUT"
expect_eq "prune --dry-run: nothing removed" "$(sqlite3 "$T/ret.db" 'SELECT count(*) FROM calls')" 5000

kw prune prune --db "$T/ret.db" --older-than "${AGE_H}h" --json
expect_eq "prune: exit 0" "$KW_RC" 0
check "prune --json: the batches and calls removed, the new anchor" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j == {"batches": int(sys.argv[2]), "calls": int(sys.argv[3]), "anchor_batch": int(sys.argv[2]),
             "dry_run": False, "stopped_at": None, "reason": None}, j' "$KW_OUT" "$WANT_B" "$WANT_C"
expect_eq "prune: the old calls are gone" "$(sqlite3 "$T/ret.db" "SELECT count(*) FROM calls WHERE ts < $CUT_US AND id <= (SELECT last_call FROM chain_anchor)")" 0
expect_eq "prune: per-key totals are kept" "$(sqlite3 "$T/ret.db" 'SELECT sum(calls) FROM keys')" "$(sqlite3 "$T/kw.db" 'SELECT sum(calls) FROM keys')"
kw verify_ret verify --db "$T/ret.db" --json
expect_eq "after prune: verify exit 0" "$KW_RC" 0
check "after prune: intact, from the anchor, same head" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
b, c = int(sys.argv[2]), int(sys.argv[3])
assert j["intact"] and j["batches"] == 10 - b and j["calls"] == 5000 - c, j
assert j["anchor"]["batch"] == b and j["anchor"]["pruned_calls"] == c, j
assert j["head"] == sys.argv[4], (j["head"], sys.argv[4])' "$KW_OUT" "$WANT_B" "$WANT_C" "$HEAD"
kw verify_ret_text verify --db "$T/ret.db"
check "after prune: the text output names the anchor" grep -q "^anchor: batch $WANT_B ($WANT_CS older calls pruned" "$KW_OUT"

# Deleting the oldest remaining batch (calls and link) after the prune.
NEXT=$((WANT_B + 1))
cp "$T/ret.db" "$T/ret_del.db"
sqlite3 "$T/ret_del.db" "DELETE FROM calls WHERE id BETWEEN (SELECT first_call FROM chain WHERE batch = $NEXT) AND (SELECT last_call FROM chain WHERE batch = $NEXT); DELETE FROM chain WHERE batch = $NEXT"
kw verify_ret_del verify --db "$T/ret_del.db" --json
expect_eq "batch deleted after the anchor: exit 1" "$KW_RC" 1
check "batch deleted after the anchor: named" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert not j["intact"] and j["bad_batch"] == int(sys.argv[2]) + 2 and "anchor" in j["reason"], j' "$KW_OUT" "$WANT_B"
# ... and the anchor moved over it by hand.
sqlite3 "$T/ret_del.db" "UPDATE chain_anchor SET batch = $NEXT, hash = randomblob(32)"
kw verify_ret_anchor verify --db "$T/ret_del.db" --json
expect_eq "anchor moved by hand: exit 1" "$KW_RC" 1
check "anchor moved by hand: said" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert not j["intact"] and "anchor is not the one the last prune recorded" in j["reason"], j' "$KW_OUT"

# A prune stops at a tampered batch: what came before it goes, the evidence stays.
cp "$T/kw.db" "$T/ret_bad.db"
sqlite3 "$T/ret_bad.db" "UPDATE calls SET status = 599 WHERE id = 1234" # batch 3
kw prune_bad prune --db "$T/ret_bad.db" --older-than "${AGE_H}h"
expect_eq "prune over a tampered batch: exit 1" "$KW_RC" 1
check "prune over a tampered batch: stopped at batch 3" grep -q "STOPPED at batch 3" "$KW_OUT"
expect_eq "prune over a tampered batch: batches 1-2 removed" "$(sqlite3 "$T/ret_bad.db" 'SELECT min(batch) FROM chain')" 3
kw verify_bad verify --db "$T/ret_bad.db" --json
check "prune over a tampered batch: verify still names batch 3" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["bad_batch"] == 3 and "changed" in j["reason"], j' "$KW_OUT"

# Retention in the daemon.  A database of 60,000 calls older than 30 days (the sample 12
# times, in batches of 500): `keywatch run` with retention.calls 30d prunes all but the
# newest batch (the chain's head) within seconds, in chunks of 50,000 calls one after the
# other; new lines are stored after the anchor, and no call is lost or counted twice.
printf 'ingest:\n  batch_rows: 500\nretention:\n  calls: 30d\n' >"$T/ret.yaml"
for i in $(seq 12); do cat "$SAMPLE"; done >"$T/old.log"
kw ret_seed ingest -q --no-rules --config "$T/ret.yaml" --db "$T/ret_run.db" --format keyed "$T/old.log"
expect_eq "retention seed: 60,000 calls in 120 batches" "$(sqlite3 "$T/ret_run.db" 'SELECT count(*) || " " || (SELECT count(*) FROM chain) FROM calls')" "60000 120"
: >"$T/ret.log"
kw_run_start ret_run run --config "$T/ret.yaml" --db "$T/ret_run.db" --format keyed "$T/ret.log"
stored() { sqlite3 "$T/ret_run.db" 'SELECT (SELECT calls FROM chain_anchor) + (SELECT count(*) FROM calls)' 2>/dev/null || true; }
for ((i = 0; i < 150; i++)); do
  a=$(sqlite3 "$T/ret_run.db" 'SELECT calls FROM chain_anchor' 2>/dev/null || true)
  [ "${a:-0}" -ge 59500 ] && break
  sleep 0.1
done
expect_eq "run with retention: all but the newest batch pruned" "${a:-0}" 59500
expect_eq "run with retention: pruned + kept = every call" "$(stored)" 60000
tail -100 "$SAMPLE" >>"$T/ret.log"
for ((i = 0; i < 100; i++)); do
  [ "$(stored)" = 60100 ] && break
  sleep 0.1
done
expect_eq "run with retention: new lines are stored after the prune" "$(stored)" 60100
expect_eq "run with retention: call ids go on after the pruned ones" "$(sqlite3 "$T/ret_run.db" 'SELECT max(id) FROM calls')" 60100
kw_run_stop TERM
expect_eq "run with retention: exit 0" "$KW_RUN_RC" 0
expect_eq "run with retention: two chunks, one after the other (50,000 + 9,500)" \
  "$(grep -o 'event=pruned batches=[0-9]* calls=[0-9]*' "$T/out/ret_run.err" | tr '\n' ' ')" \
  "event=pruned batches=100 calls=50000 event=pruned batches=19 calls=9500 "
kw verify_run_ret verify --db "$T/ret_run.db" --json
expect_eq "run with retention: verify exit 0" "$KW_RC" 0
check "run with retention: intact from the anchor" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["intact"] and j["anchor"]["pruned_calls"] == 59500, j
assert j["anchor"]["pruned_calls"] + j["calls"] == 60100, j' "$KW_OUT"

# A tampered batch in the daemon's way: the prune stops before it, says so, and raises a
# critical audit.tampered alert through the sinks.
cp "$T/kw.db" "$T/tam.db"
sqlite3 "$T/tam.db" "UPDATE calls SET status = 599 WHERE id = 1234" # batch 3
printf 'retention:\n  calls: 30d\nsinks:\n  - {type: file, path: %s}\n' "$T/tam.jsonl" >"$T/tam.yaml"
: >"$T/tam.log"
kw_run_start tam_run run --config "$T/tam.yaml" --db "$T/tam.db" --format keyed "$T/tam.log"
for ((i = 0; i < 100; i++)); do
  [ -s "$T/tam.jsonl" ] && break
  sleep 0.1
done
kw_run_stop TERM
expect_eq "tampered: batches 1-2 pruned, 3 kept" "$(sqlite3 "$T/tam.db" 'SELECT min(batch) FROM chain')" 3
check "tampered: the daemon says why it stopped" grep -q 'event=prune_stopped batch=3 why="its calls do not match its link"' "$T/out/tam_run.err"
check "tampered: a critical audit.tampered alert reached the sink" python3 -c '
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
assert len(a) == 1 and a[0]["rule"] == "audit.tampered" and a[0]["severity"] == "critical", a
assert "batch 3" in a[0]["summary"], a' "$T/tam.jsonl"

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
