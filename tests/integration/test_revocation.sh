#!/usr/bin/env bash
# test_revocation.sh — automatic revocation end to end, against a Metabase-like key store.
#
# The key-store emulator (tests/tools/keystore_emu.py --product metabase) is both the
# admin API (/api/api-key) and the business API, which authenticates X-API-Key against its
# live key list; real nginx on 127.0.0.1 proxies to it and writes the `keyed` access log
# that `keywatch run` follows.  A rule (match: DELETE /api/card/…, action: revoke) fires on
# an abusive request; the responder deletes the key through the admin API.  Asserted:
#   - the abusive key gets 401 from then on, the other keys keep working; the time from
#     the abusive request to the first 401 is measured (median of RUNS runs, printed;
#     the target is 1 s)
#   - a protected key is not revoked (suppressed: protected), nor is the admin key itself
#   - the store down (connection refused) when the decision is taken: the revocation is
#     retried, survives a keywatch restart, and happens once the store is back
#   - the budget (max_per_hour): beyond it a key is not revoked and a critical
#     "revocation budget exhausted" alert is delivered
#   - a store failing past give_up_after: the revocation fails, with a critical alert
#   - dry run (the default): decisions are recorded as dry_run, nothing is sent
#   - `keywatch revoke` (manual, through the daemon) and `revoke --dry-run`
#   - the inventory: `keywatch inventory` lists the store's keys with their names and
#     groups, a key never used in traffic included; seen keys get the store's names
#   - `keywatch revocations [--json]` and `revocations show` tell the story;
#     `keywatch shadow` over the same log lists what would have been revoked
#   - no raw key and no admin credential in keywatch's database, logs or outputs
. "$(dirname "$0")/lib.sh"

[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
EMU=$KW_SOURCE_DIR/tests/tools/keystore_emu.py
RUNS=${KW_RESPONDER_RUNS:-3} # bench/revoke_bench.sh asks for more
BUDGET=$((RUNS + 2))          # max_per_hour: the timed runs, the store-down one, one more

# ---------------------------------------------------------------- the key store
# Keys: [0] keywatch's admin key (Administrators), then analysts' keys.
NK=$((10 + 2 * RUNS))
kw_make_keys $NK "$T/keys.txt"
mapfile -t K <"$T/keys.txt"
ADMIN=${K[0]}
PROTECTED=${K[1]} GOOD=${K[2]} MANUAL=${K[3]} DRYKEY=${K[4]}
DOWNKEY=${K[5]} BUDGET_OK=${K[6]} BUDGET_OVER=${K[7]} FAILKEY=${K[8]}
UNUSED=${K[9]}                       # listed by the store, never used
ABUSE=("${K[@]:10:RUNS}")            # the timed runs
REF=("${K[@]:$((10 + RUNS)):RUNS}")  # the reference: revoked by hand at the admin API
mkdir -p "$T/emu"
python3 - "$T/emu/state.json" "$T/keys.txt" <<'EOF'
import json, sys
keys = open(sys.argv[2]).read().split()
state = {"session": "emu-session-not-used",
         "groups": [{"id": 1, "name": "All Users", "magic_group_type": "all-internal-users"},
                    {"id": 2, "name": "Administrators", "magic_group_type": "admin"},
                    {"id": 3, "name": "Analysts"}],
         "keys": [{"id": i + 1, "name": "admin-keywatch" if i == 0 else "analyst-%d" % i,
                   "group_id": 2 if i == 0 else 3, "key": k} for i, k in enumerate(keys)],
         "next_id": len(keys) + 1}
json.dump(state, open(sys.argv[1], "w"))
EOF
EMU_PORT=$(kw_free_port)
emu_start() {
  kw_spawn_bg python3 "$EMU" --product metabase --state "$T/emu/state.json" \
    --port "$EMU_PORT" --log "$T/emu/requests.jsonl"
  EMU_PID=$KW_SPAWNED
  kw_wait_port "$EMU_PORT" 10 "$EMU_PID"
}
emu_start || { fail "key-store emulator did not start"; kw_finish; }
ok "key-store emulator (metabase) on 127.0.0.1:$EMU_PORT"

# ---------------------------------------------------------------- nginx in front
N=$T/ngx
LOG=$N/access.log
write_conf() {
  {
    kw_nginx_prologue "$N"
    cat <<EOF
  access_log $LOG keyed;
  server {
    listen 127.0.0.1:$NGX_PORT;
    location /api/ { proxy_pass http://127.0.0.1:$EMU_PORT; }
    location / { return 404; }
  }
}
EOF
  } >"$N/nginx.conf"
}
mkdir -p "$N"
kw_nginx_up "$N" write_conf || { fail "nginx did not start"; kw_finish; }
ok "nginx on 127.0.0.1:$NGX_PORT in front of the emulator"
URL=http://127.0.0.1:$NGX_PORT

status_of() { # KEY [METHOD] [PATH]: the HTTP status nginx answers
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "${2:-GET}" -H "X-API-Key: $1" \
    "$URL${3:-/api/card/1}"
}

# ---------------------------------------------------------------- keywatch
export KEYWATCH_SECRET=test-responder-secret-0123456789abcdef
export KW_TEST_MB_ADMIN=$ADMIN
mkdir -p "$T/kw"
cat >"$T/rules.yaml" <<'YAML'
rules:
  - id: card-delete
    type: match
    description: an analyst key deleting cards
    action: revoke
    severity: critical
    conditions:
      - {field: method, op: equals, value: DELETE}
      - {field: path, op: prefix, value: /api/card/}
  - id: revoked-key-used
    type: revoked_key_use
    severity: critical
YAML
write_config() { # FILE DRY_RUN GIVE_UP MAX_PER_HOUR
  cat >"$1" <<YAML
db: $T/kw/kw.db
sources:
  - {name: nginx, path: $LOG, format: keyed}
rules: [$T/rules.yaml]
sinks:
  - {name: alerts, type: file, path: $T/kw/alerts.jsonl}
responder:
  dry_run: $2
  min_severity: high
  max_per_hour: $4
  max_per_day: 1000
  give_up_after: $3
  inventory_interval: 1s
  retry_initial: 100ms
  retry_max: 500ms
  protect: ["${PROTECTED:0:7}"]
  stores:
    - name: metabase
      type: metabase
      url: http://127.0.0.1:$EMU_PORT
      credential: {env: KW_TEST_MB_ADMIN}
      timeout: 2s
YAML
}
write_config "$T/live.yaml" false 1h $BUDGET
write_config "$T/giveup.yaml" false 2s 100 # the live budget is spent by then
write_config "$T/dry.yaml" true 1h 100

kw_started() { # wait for event=started in the run's stderr since line $1
  local i
  for ((i = 0; i < 50; i++)); do
    tail -n +"$1" "$T/out/run.err" 2>/dev/null | grep -q 'event=started' && return 0
    kill -0 "$KW_RUN_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
kw_up() { # CONFIG
  local from
  touch "$T/out/run.err"
  from=$(($(wc -l <"$T/out/run.err") + 1))
  kw_run_start run --config "$1" run
  kw_started "$from"
}
rev_json() { "$KEYWATCH" --config "$T/live.yaml" revocations --json --limit 0 >"$T/out/rev.json" 2>>"$T/out/rev.err"; }
rev_state() { # PREFIX: state of the newest revocation of that key
  rev_json
  json_get "$T/out/rev.json" "next((r['state'] for r in j if r['key_prefix'] == '${1:0:7}'), 'none')"
}
wait_state() { # PREFIX STATE SECS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [ "$(rev_state "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

: >"$LOG"
kw_up "$T/live.yaml" || { fail "keywatch run did not start: $(tail -3 "$T/out/run.err")"; kw_finish; }
ok "keywatch run started with the responder (live mode)"
expect_eq "a good key works before" "$(status_of "$GOOD")" 200
expect_eq "the key revoked by hand later works before" "$(status_of "$MANUAL")" 200

# ---------------------------------------------------------------- timed runs
# One abusive request (DELETE /api/card/N), then GETs with the same key until the store
# says 401; the time from sending the DELETE to that answer is the reaction time.
measure() { # KEY → prints milliseconds (or "none")
  python3 - "$URL" "$1" <<'EOF'
import http.client, sys, time, urllib.parse
url, key = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(url)
def req(method, path):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    c.request(method, path, headers={"X-API-Key": key})
    r = c.getresponse(); r.read(); c.close()
    return r.status
t0 = time.monotonic()
first = req("DELETE", "/api/card/7")
while time.monotonic() - t0 < 10:
    if req("GET", "/api/card/1") == 401:
        print("%.0f" % ((time.monotonic() - t0) * 1000)); break
    time.sleep(0.005)
else:
    print("none")
EOF
}
times=()
for ((r = 0; r < RUNS; r++)); do
  key=${ABUSE[$r]}
  expect_eq "run $r: the key works before" "$(status_of "$key")" 200
  ms=$(measure "$key")
  if [ "$ms" = none ]; then
    fail "run $r: the abusive key still worked 10 s after the abusive request"
  else
    ok "run $r: the abusive key got 401 ${ms} ms after the abusive request"
    times+=("$ms")
  fi
  expect_eq "run $r: another key still works" "$(status_of "$GOOD")" 200
done
# The reference: the same key store revoking a key when asked directly (DELETE
# /api/api-key/:id with the admin key), timed the same way up to the first 401.
measure_ref() { # KEY ID → milliseconds
  python3 - "$URL" "$1" "http://127.0.0.1:$EMU_PORT/api/api-key/$2" "$ADMIN" <<'EOF'
import http.client, sys, time, urllib.parse, urllib.request
url, key, admin_url, admin = sys.argv[1:5]
u = urllib.parse.urlsplit(url)
def get():
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    c.request("GET", "/api/card/1", headers={"X-API-Key": key})
    r = c.getresponse(); r.read(); c.close()
    return r.status
t0 = time.monotonic()
urllib.request.urlopen(urllib.request.Request(admin_url, method="DELETE",
                                              headers={"X-API-Key": admin})).read()
while time.monotonic() - t0 < 10 and get() != 401:
    time.sleep(0.005)
print("%.0f" % ((time.monotonic() - t0) * 1000))
EOF
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
refs=()
for ((r = 0; r < RUNS; r++)); do
  refs+=("$(measure_ref "${REF[$r]}" $((11 + RUNS + r)))")
done
if [ "${#times[@]}" -gt 0 ]; then
  MEDIAN=$(median "${times[@]}")
  REFMED=$(median "${refs[@]}")
  echo "# reaction time (abusive request -> store answers 401): ${times[*]} ms; median ${MEDIAN} ms"
  echo "# reference (admin DELETE sent by hand -> 401): ${refs[*]} ms; median ${REFMED} ms"
  echo "# keywatch adds $((MEDIAN - REFMED)) ms over revoking by hand at the same store ($RUNS runs)"
  check "median reaction time ${MEDIAN} ms is under 1000 ms" test "$MEDIAN" -lt 1000
fi
check "the revoked key is deleted at the store" \
  python3 -c 'import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_emu/state" % sys.argv[1]))
sys.exit(0 if any(d["key"] == sys.argv[2] for d in s.get("deleted", [])) else 1)' "$EMU_PORT" "${ABUSE[0]}"
expect_eq "revocation of run 0: done" "$(rev_state "${ABUSE[0]}")" done
expect_eq "the revocation names its rule" \
  "$(json_get "$T/out/rev.json" "next(r['decided_by'] for r in j if r['key_prefix'] == '${ABUSE[0]:0:7}')")" \
  rule:card-delete
ID0=$(json_get "$T/out/rev.json" "next(r['id'] for r in j if r['key_prefix'] == '${ABUSE[0]:0:7}')")
kw show --config "$T/live.yaml" revocations show "$ID0" --json
if is_json "$KW_OUT"; then
  expect_eq "show: the store's calls are audited (lookup, delete)" \
    "$(json_get "$KW_OUT" "[c['request'].split()[0] + ' ' + str(c['status']) for c in j['calls']]")" \
    '["GET 200", "DELETE 204"]'
else
  fail "revocations show --json is not JSON: $(head -c 300 "$KW_OUT")"
fi

# ---------------------------------------------------------------- inventory
sleep 1.2 # one more sync (every second here) links the keys seen since the first one
kw inv --config "$T/live.yaml" inventory --json
if is_json "$KW_OUT"; then
  expect_eq "inventory: every key the store listed" "$(json_get "$KW_OUT" 'len(j)')" $NK
  expect_eq "inventory: the keys revoked since are marked gone" \
    "$(json_get "$KW_OUT" 'sum(1 for i in j if i["gone"])')" $((2 * RUNS))
  expect_eq "inventory: a key never used shows 0 calls, with its name and group" \
    "$(json_get "$KW_OUT" "[(i['name'], i['group'], i['calls']) for i in j if i['key_prefix'] == '${UNUSED:0:7}']")" \
    '[["analyst-9", "Analysts", 0]]'
  check "inventory: a key in use shows its calls" \
    test "$(json_get "$KW_OUT" "next(i['calls'] for i in j if i['key_prefix'] == '${GOOD:0:7}')")" -ge 2
else
  fail "inventory --json is not JSON: $(head -c 300 "$KW_OUT")"
fi
kw inv-unused --config "$T/live.yaml" inventory --unused
check "inventory --unused lists the unused key" grep -q "${UNUSED:0:7}" "$KW_OUT"
check "inventory --unused leaves out the keys in use" bash -c "! grep -q '${GOOD:0:7}' '$KW_OUT'"
"$KEYWATCH" --config "$T/live.yaml" keys --json >"$T/out/keys.json"
expect_eq "keys: a seen key is named from the store" \
  "$(json_get "$T/out/keys.json" "next(k['name'] for k in j if k['prefix'] == '${GOOD:0:7}')")" analyst-2

# ---------------------------------------------------------------- protected, own key
expect_eq "protected key: abusive request answered" "$(status_of "$PROTECTED" DELETE /api/card/9)" 200
check "protected key: suppressed (protected)" wait_state "$PROTECTED" suppressed 5
expect_eq "protected key: still works" "$(status_of "$PROTECTED")" 200
expect_eq "admin key: abusive request answered" "$(status_of "$ADMIN" DELETE /api/card/9)" 200
check "admin key: suppressed" wait_state "$ADMIN" suppressed 5
check "admin key: suppressed as keywatch's own admin key" \
  grep -q "own admin key" <(json_get "$T/out/rev.json" "[r['result'] for r in j if r['key_prefix'] == '${ADMIN:0:7}']")
expect_eq "admin key: still works" "$(status_of "$ADMIN")" 200

# ---------------------------------------------------------------- store down, restart
kw_stop_pid "$EMU_PID"
expect_eq "store down: nginx answers 502" "$(status_of "$DOWNKEY" DELETE /api/card/3)" 502
for ((i = 0; i < 50; i++)); do
  rev_json
  a=$(json_get "$T/out/rev.json" "next((r['attempts'] for r in j if r['key_prefix'] == '${DOWNKEY:0:7}'), 0)")
  [ "$a" -ge 2 ] && break
  sleep 0.1
done
expect_eq "store down: the revocation is queued" "$(rev_state "$DOWNKEY")" queued
check "store down: attempts are retried ($a)" test "$a" -ge 2
kw_run_stop TERM
expect_eq "keywatch stops cleanly with a revocation pending" "$KW_RUN_RC" 0
emu_start || fail "emulator did not restart"
expect_eq "store back, keywatch not yet: the key still works" "$(status_of "$DOWNKEY")" 200
kw_up "$T/live.yaml" || fail "keywatch did not restart"
check "after the restart the pending revocation is carried out" wait_state "$DOWNKEY" done 10
expect_eq "store down: the key is revoked in the end" "$(status_of "$DOWNKEY")" 401

# ---------------------------------------------------------------- budget
# RUNS timed runs + the store-down one so far; max_per_hour is RUNS + 2.
status_of "$BUDGET_OK" DELETE /api/card/4 >/dev/null
check "budget: revocation $BUDGET in the hour is carried out" wait_state "$BUDGET_OK" done 5
status_of "$BUDGET_OVER" DELETE /api/card/4 >/dev/null
check "budget: revocation $((BUDGET + 1)) is suppressed" wait_state "$BUDGET_OVER" suppressed 5
expect_eq "budget: that key still works" "$(status_of "$BUDGET_OVER")" 200
for ((i = 0; i < 50; i++)); do
  grep -q '"rule": *"responder.budget-exhausted"' "$T/kw/alerts.jsonl" 2>/dev/null && break
  sleep 0.1
done
check "budget: a 'revocation budget exhausted' alert was delivered" \
  grep -q '"rule": *"responder.budget-exhausted"' "$T/kw/alerts.jsonl"
check "budget: that alert is critical" \
  grep -q '"rule": *"responder.budget-exhausted".*"severity": *"critical"' "$T/kw/alerts.jsonl"

# ---------------------------------------------------------------- manual revoke
kw manual --config "$T/live.yaml" revoke "${MANUAL:0:7}" --reason "left the company" --by tester
expect_eq "revoke (manual, through the daemon) exits 0" "$KW_RC" 0
check "revoke prints the outcome" grep -q "revocation [0-9]*: done" "$KW_OUT"
expect_eq "manual: the key gets 401" "$(status_of "$MANUAL")" 401
rev_json
expect_eq "manual: decided by the user" \
  "$(json_get "$T/out/rev.json" "next(r['decided_by'] for r in j if r['key_prefix'] == '${MANUAL:0:7}')")" \
  manual:tester
kw manual-dry --config "$T/live.yaml" revoke "${GOOD:0:7}" --dry-run --json
expect_eq "revoke --dry-run exits 0" "$KW_RC" 0
if is_json "$KW_OUT"; then
  expect_eq "revoke --dry-run: state dry_run" "$(json_get "$KW_OUT" 'j["state"]')" dry_run
  expect_eq "revoke --dry-run: no call made" "$(json_get "$KW_OUT" 'len(j["calls"])')" 0
else
  fail "revoke --dry-run --json is not JSON"
fi
expect_eq "revoke --dry-run: the key still works" "$(status_of "$GOOD")" 200
kw ambiguous --config "$T/live.yaml" revoke mb_
expect_eq "revoke with an ambiguous prefix: usage error" "$KW_RC" 2
kw rawkey --config "$T/live.yaml" revoke "$GOOD"
expect_eq "revoke refuses a raw key" "$KW_RC" 2
check "... and does not echo it" bash -c "! grep -qF -- '$GOOD' '$KW_ERR'"

# ---------------------------------------------------------------- give up
kw_run_stop TERM
curl -s -X POST --max-time 5 "http://127.0.0.1:$EMU_PORT/_emu/fail" \
  -d '{"mode": "503", "seconds": 30, "path_prefix": "/api/api-key"}' >/dev/null
kw_up "$T/giveup.yaml" || fail "keywatch (give-up config) did not start"
status_of "$FAILKEY" DELETE /api/card/5 >/dev/null
check "store answering 503: the revocation fails after give_up_after (2s)" wait_state "$FAILKEY" failed 10
for ((i = 0; i < 30; i++)); do
  grep -q '"rule": *"responder.revocation-failed"' "$T/kw/alerts.jsonl" 2>/dev/null && break
  sleep 0.1
done
check "give up: a critical 'revocation failed' alert was delivered" \
  grep -q '"rule": *"responder.revocation-failed".*"severity": *"critical"' "$T/kw/alerts.jsonl"
curl -s -X POST --max-time 5 "http://127.0.0.1:$EMU_PORT/_emu/fail" -d '{"mode": "none"}' >/dev/null
kw_run_stop TERM

# ---------------------------------------------------------------- dry run (the default)
kw_up "$T/dry.yaml" || fail "keywatch (dry run) did not start"
status_of "$DRYKEY" DELETE /api/card/6 >/dev/null
check "dry run: the decision is recorded as dry_run" wait_state "$DRYKEY" dry_run 5
expect_eq "dry run: the key still works" "$(status_of "$DRYKEY")" 200
kw_run_stop TERM
expect_eq "keywatch stopped" "$KW_RUN_RC" 0

# ---------------------------------------------------------------- listing, shadow
kw list --config "$T/live.yaml" revocations
expect_eq "revocations exits 0" "$KW_RC" 0
for s in done suppressed failed dry_run; do
  check "revocations lists a $s one" grep -q " $s " "$KW_OUT"
done
kw shadow --config "$T/live.yaml" shadow --json "$LOG"
expect_eq "shadow exits 0" "$KW_RC" 0
if is_json "$KW_OUT"; then
  expect_eq "shadow: every abusive request is a decision" \
    "$(json_get "$KW_OUT" 'len(j)')" "$(grep -c 'DELETE /api/card/' "$LOG")"
  expect_eq "shadow: revoked at most max_per_hour in the hour" \
    "$(json_get "$KW_OUT" 'sum(1 for r in j if r["verdict"] == "revoke")')" $BUDGET
  check "shadow: the protected key is held back" \
    test "$(json_get "$KW_OUT" "next(r['why'] for r in j if r['key_prefix'] == '${PROTECTED:0:7}')" | cut -c1-9)" = protected
else
  fail "shadow --json is not JSON: $(head -c 300 "$KW_OUT")"
fi
kw shadow-text --config "$T/live.yaml" shadow "$LOG"
check "shadow: a summary line" grep -q "would have been revoked" "$KW_OUT"

# ---------------------------------------------------------------- secrets
python3 - "$T/keys.txt" "$T/kw" "$T/out" <<'EOF'
import os, sys
keys = open(sys.argv[1]).read().split()
leaks = []
for d in sys.argv[2:]:
    for root, _, files in os.walk(d):
        for f in files:
            data = open(os.path.join(root, f), "rb").read()
            for k in keys:
                if k.encode() in data or k[3:].encode() in data:
                    leaks.append((f, k[:7]))
print("ok - no raw key or admin credential in the database, logs or outputs"
      if not leaks else "FAIL - leaks: %s" % leaks[:5])
sys.exit(1 if leaks else 0)
EOF
if [ $? -eq 0 ]; then ok "secret scan"; else fail "secret scan"; fi

kw_finish
