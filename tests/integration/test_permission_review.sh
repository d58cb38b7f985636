#!/usr/bin/env bash
# test_permission_review.sh — the least-privilege review end to end, with key stores' groups and
# permissions from the key-store emulator (Metabase and SeaTable products).
#
# Traffic over the last 40 days is written as an nginx access log (a log_format with
# X-API-Key and Authorization) and ingested; `keywatch inventory --sync` fetches the keys,
# groups and permissions from the emulators.  Asserted on `keywatch review --format json`:
#   - an Administrators key used only for reads: over_privileged, recommendation
#     "group Analysts"; an Editors key used only for reads: the same; an Editors key that
#     writes: keep; an Analysts key that deletes cards: outside_grant (with the count of
#     calls that succeeded), recommendation "group Editors"
#   - a key the store lists but that was never used: unused, "delete"; keywatch's own admin
#     key: never told to be deleted
#   - a SeaTable rw token that only reads: over_privileged, "permission r"; an rw token that
#     writes: keep
#   - a key silent for 40 days that woke up: dormant_woke
#   - every format parses with a real parser (CSV: Python's csv, JSON: json, Markdown:
#     table rows, HTML: headless Chromium with no error, no script run, no request) and
#     hostile strings from the store and the traffic come out as text
#   - the review is stored: the next one shows new keys, new and resolved findings
#   - scheduled: `keywatch run` with review.schedule runs one on SIGUSR1, writes the
#     reports to review.output_dir and raises review.* alerts through the sinks
. "$(dirname "$0")/lib.sh"

EMU=$KW_SOURCE_DIR/tests/tools/keystore_emu.py
CHECK_HTML=$KW_SOURCE_DIR/tests/browser/check_html.js
export KEYWATCH_SECRET=test-review-secret-0123456789abcdef0123

kw_make_keys 9 "$T/mbkeys.txt"
mapfile -t M <"$T/mbkeys.txt"
KW_ADMIN=${M[0]} ADMIN_READER=${M[1]} EDIT_READER=${M[2]} EDIT_WRITER=${M[3]}
ANALYST=${M[4]} ANALYST_DELETER=${M[5]} UNUSED=${M[6]} DORMANT=${M[7]} LATECOMER=${M[8]}
ST_RO=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
ST_RW_READS=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
ST_RW_WRITES=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
HOSTILE_NAME='<script>alert(1)</script> "=cmd|x" | <img src=x onerror=alert(2)>'
mkdir -p "$T/emu"
python3 - "$T/emu" "$T/mbkeys.txt" "$ST_RO" "$ST_RW_READS" "$ST_RW_WRITES" "$HOSTILE_NAME" <<'EOF'
import json, sys
d, keys = sys.argv[1], open(sys.argv[2]).read().split()
ro, rw_reads, rw_writes, hostile = sys.argv[3:7]
groups = [2, 2, 4, 4, 3, 3, 3, 3, 3]
names = ["keywatch", "etl-admin", "report-editor", "content-editor", "analyst",
         "analyst-deleter", hostile, "quarterly", "latecomer"]
json.dump({"session": "unused-session",
           "groups": [{"id": 1, "name": "All Users", "magic_group_type": "all-internal-users"},
                      {"id": 2, "name": "Administrators", "magic_group_type": "admin"},
                      {"id": 3, "name": "Analysts"}, {"id": 4, "name": "Editors"}],
           "keys": [{"id": i + 1, "name": names[i], "group_id": groups[i], "key": k,
                     "created_at": "2026-10-01T00:00:00Z"} for i, k in enumerate(keys)],
           "next_id": 20}, open(d + "/mb.json", "w"))
json.dump({"account_token": "st-account-token-0123456789", "admin_token": "st-admin",
           "bases": [{"workspace_id": 1, "base_name": "CRM",
                      "dtable_uuid": "0123456789abcdef0123456789abcdef",
                      "tokens": [{"app_name": "dash-ro", "api_token": ro, "permission": "r"},
                                 {"app_name": "sync-rw", "api_token": rw_reads, "permission": "rw"},
                                 {"app_name": "import-rw", "api_token": rw_writes,
                                  "permission": "rw"}]}]}, open(d + "/st.json", "w"))
EOF
MB_PORT=$(kw_free_port)
kw_spawn_bg python3 "$EMU" --product metabase --state "$T/emu/mb.json" --port "$MB_PORT"
kw_wait_port "$MB_PORT" 10 "$KW_SPAWNED" || { fail "metabase emulator did not start"; kw_finish; }
ST_PORT=$(kw_free_port)
kw_spawn_bg python3 "$EMU" --product seatable --state "$T/emu/st.json" --port "$ST_PORT"
kw_wait_port "$ST_PORT" 10 "$KW_SPAWNED" || { fail "seatable emulator did not start"; kw_finish; }
ok "emulators: metabase on $MB_PORT, seatable on $ST_PORT"

export KW_TEST_MB_ADMIN=$KW_ADMIN KW_TEST_ST_ACCOUNT=st-account-token-0123456789
cat >"$T/grants.yaml" <<'YAML'
grants:
  - {groups: [Analysts], scopes: [metabase.read]}
  - {groups: [Editors], scopes: [metabase.read, metabase.write]}
YAML
write_config() { # FILE [EXTRA]
  cat >"$1" <<YAML
db: $T/kw/kw.db
ingest:
  log_format: '\$remote_addr - - [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_user_agent" "\$http_x_api_key" "\$http_authorization"'
rules: [builtin:default, builtin:metabase-scopes, builtin:seatable-scopes, $T/grants.yaml]
sinks:
  - {name: alerts, type: file, path: $T/kw/alerts.jsonl}
review:
  period: 30d
  max_age: 365d
  output_dir: $T/reports
  formats: [html, md, csv, json]
  schedule: "0 0 1 1 *"
responder:
  stores:
    - {name: metabase, type: metabase, url: "http://127.0.0.1:$MB_PORT", credential: {env: KW_TEST_MB_ADMIN}}
    - name: seatable
      type: seatable
      url: http://127.0.0.1:$ST_PORT
      prefixes: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", a, b, c, d, e, f]
      credential: {env: KW_TEST_ST_ACCOUNT}
      bases: [{workspace_id: 1, base_name: CRM}]
YAML
}
mkdir -p "$T/kw"
write_config "$T/kw.yaml"

# ---------------------------------------------------------------- traffic
gen_log() { # OUT KEY... (python writes the log lines; see the calls below)
  python3 - "$@" <<'EOF'
import sys, time
out, args = sys.argv[1], sys.argv[2:]
now = time.time()
def line(days_ago, method, path, status, key="", auth=""):
    t = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now - days_ago * 86400))
    return '127.0.0.1 - - [%s] "%s %s HTTP/1.1" %d 100 "ua/1" "%s" "%s"\n' % (
        t, method, path, status, key, auth)
lines = []
spec = iter(args)
for kind, key in zip(spec, spec):
    if kind == "reads":          # GETs of cards and dashboards over the last days
        for d in range(1, 6):
            lines.append(line(d, "GET", "/api/card/%d" % d, 200, key))
            lines.append(line(d, "GET", "/api/dashboard/%d" % d, 200, key))
    elif kind == "writes":
        lines.append(line(2, "GET", "/api/card/1", 200, key))
        lines.append(line(2, "PUT", "/api/card/1", 200, key))
        lines.append(line(1, "POST", "/api/card", 200, key))
    elif kind == "deletes":      # an Analysts key deleting: 3 calls, 2 succeed
        lines.append(line(3, "GET", "/api/card/3", 200, key))
        lines.append(line(2, "DELETE", "/api/card/3", 200, key))
        lines.append(line(2, "DELETE", "/api/card/4", 200, key))
        lines.append(line(1, "DELETE", "/api/card/5", 403, key))
    elif kind == "hostile":      # a path that templates into a hostile endpoint
        lines.append(line(1, "DELETE", "/api/card/<script>alert(3)</script>", 404, key))
    elif kind == "dormant":      # 40 days ago, then yesterday
        lines.append(line(40, "GET", "/api/card/1", 200, key))
        lines.append(line(1, "GET", "/api/card/1", 200, key))
    elif kind == "st-token":     # SeaTable: the API token asks for a base token
        for d in range(1, 4):
            lines.append(line(d, "GET", "/api/v2.1/dtable/app-access-token/", 200, "", "Token " + key))
    elif kind == "st-upload":
        lines.append(line(1, "GET", "/api/v2.1/dtable/app-upload-link/", 200, "", "Token " + key))
open(out, "w").writelines(sorted(lines, key=lambda l: l.split("[")[1]))
EOF
}
gen_log "$T/traffic1.log" reads "$ADMIN_READER" reads "$EDIT_READER" writes "$EDIT_WRITER" \
  reads "$ANALYST" deletes "$ANALYST_DELETER" hostile "$ANALYST_DELETER" dormant "$DORMANT" \
  st-token "$ST_RO" st-token "$ST_RW_READS" st-token "$ST_RW_WRITES" st-upload "$ST_RW_WRITES"
kw ingest --config "$T/kw.yaml" ingest -q "$T/traffic1.log"
expect_eq "ingest of 40 days of traffic exits 0" "$KW_RC" 0
kw sync --config "$T/kw.yaml" inventory --sync --json
expect_eq "inventory --sync exits 0" "$KW_RC" 0
is_json "$KW_OUT" && expect_eq "inventory: 9 Metabase keys and 3 SeaTable tokens" \
  "$(json_get "$KW_OUT" 'len(j)')" 12

# ---------------------------------------------------------------- the review
kw review --config "$T/kw.yaml" review --format json
expect_eq "review exits 0" "$KW_RC" 0
R=$T/out/review.out
is_json "$R" || { fail "review --format json is not JSON: $(head -c 300 "$R")"; kw_finish; }
ok "review --format json parses"
row() { # PREFIX EXPR — EXPR over the key's row k
  json_get "$R" "next(($2) for k in j['keys'] if k['key_prefix'] == '${1:0:7}')"
}
findings() { row "$1" "sorted(f['finding'] for f in k['findings'])"; }
expect_eq "admin key used for reads: its group" "$(row "$ADMIN_READER" "k['group']")" Administrators
expect_eq "admin key used for reads: over_privileged" "$(findings "$ADMIN_READER")" '["over_privileged"]'
expect_eq "admin key used for reads: move to group Analysts" \
  "$(row "$ADMIN_READER" "k['recommendation']")" "group Analysts"
expect_eq "admin key used for reads: exercised metabase.read only" \
  "$(row "$ADMIN_READER" "[u['scope'] for u in k['used']]")" '["metabase.read"]'
check "admin key used for reads: metabase.admin among its unused scopes" \
  test "$(row "$ADMIN_READER" "'metabase.admin' in k['unused']")" = True
expect_eq "editor key used for reads: over_privileged" "$(findings "$EDIT_READER")" '["over_privileged"]'
expect_eq "editor key used for reads: group Analysts" "$(row "$EDIT_READER" "k['recommendation']")" "group Analysts"
expect_eq "editor key that writes: no finding" "$(findings "$EDIT_WRITER")" '[]'
expect_eq "editor key that writes: keep" "$(row "$EDIT_WRITER" "k['recommendation']")" keep
expect_eq "analyst key that reads: keep" "$(row "$ANALYST" "k['recommendation']")" keep
expect_eq "analyst key that deletes: outside_grant" "$(findings "$ANALYST_DELETER")" '["outside_grant"]'
expect_eq "analyst key that deletes: 4 calls outside, 2 succeeded" \
  "$(row "$ANALYST_DELETER" "[k['outside_grant']['calls'], k['outside_grant']['succeeded']]")" '[4, 2]'
expect_eq "analyst key that deletes: group Editors" \
  "$(row "$ANALYST_DELETER" "k['recommendation']")" "group Editors"
expect_eq "a key never used: unused" "$(findings "$UNUSED")" '["unused"]'
expect_eq "a key never used: delete" "$(row "$UNUSED" "k['recommendation']")" delete
expect_eq "a key never used: its calls" "$(row "$UNUSED" "k['calls']")" 0
check "keywatch's own admin key is never to be deleted" \
  test "$(row "$KW_ADMIN" "k['recommendation']")" != delete
expect_eq "a key silent for 40 days then used: dormant_woke" "$(findings "$DORMANT")" '["dormant_woke"]'
expect_eq "SeaTable rw token that only reads: permission rw" "$(row "$ST_RW_READS" "k['permission']")" rw
expect_eq "SeaTable rw token that only reads: over_privileged" "$(findings "$ST_RW_READS")" '["over_privileged"]'
expect_eq "SeaTable rw token that only reads: permission r" \
  "$(row "$ST_RW_READS" "k['recommendation']")" "permission r"
expect_eq "SeaTable rw token that writes: keep" "$(row "$ST_RW_WRITES" "k['recommendation']")" keep
expect_eq "SeaTable r token: keep" "$(row "$ST_RO" "k['recommendation']")" keep
expect_eq "the hostile key name comes back intact" "$(row "$UNUSED" "k['name']")" "$HOSTILE_NAME"
expect_eq "the first review has nothing to compare with" "$(json_get "$R" "j['changes']")" null

# ---------------------------------------------------------------- formats
for f in csv md html table; do
  kw "fmt-$f" --config "$T/kw.yaml" review --no-save --format $f --output "$T/review.$f"
  expect_eq "review --format $f exits 0" "$KW_RC" 0
  expect_eq "review --format $f: the report is 0640" "$(stat -c %a "$T/review.$f")" 640
done
check "CSV: parses, one row per key, formulas neutralised, hostile name intact" python3 - "$T/review.csv" "$HOSTILE_NAME" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
head, body = rows[0], rows[1:]
assert len(body) == 12, len(body)
assert all(len(r) == len(head) for r in body)
assert not any(c[:1] in "=+-@" for r in body for c in r if c), "a cell starts with = + - @"
assert any(sys.argv[2] in c for r in body for c in r), "hostile name missing"
EOF
check "Markdown: every table row has its header's cell count, no raw tag" python3 - "$T/review.md" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
assert "<script" not in text and "<img" not in text, "a raw tag"
cells = lambda l: len(re.findall(r"(?<!\\)\|", l))
table = None
for l in text.splitlines():
    if l.startswith("|"):
        if table is None: table = cells(l)
        assert cells(l) == table, l
    else:
        table = None
EOF
check "table: no escape byte reaches the terminal" bash -c "! grep -q $'\x1b' '$T/review.table'"
if [ -x /usr/bin/chromium ] && [ -d "$KW_SOURCE_DIR/tests/browser/node_modules" ]; then
  html_ok() { # the verdict (JSON) goes to the test output, next to the screenshot
    node "$CHECK_HTML" "$T/review.html" --expect "<script>alert(1)</script>" \
      --screenshot "$T/out/review.png" >"$T/out/html-check.json"
  }
  check "HTML: headless Chromium opens it with no error, no script, no request" html_ok
else
  fail "HTML: Chromium or tests/browser/node_modules missing (run scripts/install-deps.sh)"
fi

# ---------------------------------------------------------------- the next review
gen_log "$T/traffic2.log" reads "$UNUSED" reads "$LATECOMER"
kw ingest2 --config "$T/kw.yaml" ingest -q "$T/traffic2.log"
kw review2 --config "$T/kw.yaml" review --format json
R=$T/out/review2.out
if is_json "$R"; then
  check "second review: compared with the first" test "$(json_get "$R" "j['previous'] is not None")" = True
  expect_eq "second review: the latecomer is a new key" \
    "$(json_get "$R" "'${LATECOMER:0:7}' in j['changes']['new_keys']")" True
  expect_eq "second review: the unused key's finding is resolved" \
    "$(json_get "$R" "[c['finding'] for c in j['changes']['resolved'] if c['key_prefix'] == '${UNUSED:0:7}']")" \
    '["unused"]'
  check "second review: findings still open are counted" test "$(json_get "$R" "j['changes']['still_open']")" -ge 5
else
  fail "second review is not JSON"
fi

# ---------------------------------------------------------------- scheduled
kw_run_start run --config "$T/kw.yaml" run "$T/traffic2.log"
for ((i = 0; i < 50; i++)); do grep -q 'event=started' "$T/out/run.err" 2>/dev/null && break; sleep 0.1; done
kill -USR1 "$KW_RUN_PID"
for ((i = 0; i < 100; i++)); do
  [ -n "$(ls "$T/reports"/review-*.json 2>/dev/null)" ] &&
    grep -q '"rule": *"review.over_privileged"' "$T/kw/alerts.jsonl" 2>/dev/null && break
  sleep 0.1
done
check "scheduled: the reports were written (html, md, csv, json)" \
  test "$(ls "$T/reports"/review-*.{html,md,csv,json} 2>/dev/null | wc -l)" -eq 4
check "scheduled: findings became alerts through the sinks" \
  grep -q '"rule": *"review.over_privileged"' "$T/kw/alerts.jsonl"
check "scheduled: the event is logged" grep -q 'event=review_done' "$T/out/run.err"
kw_run_stop TERM
expect_eq "keywatch run stops cleanly" "$KW_RUN_RC" 0

# ---------------------------------------------------------------- secrets
python3 - "$T/mbkeys.txt" "$ST_RO $ST_RW_READS $ST_RW_WRITES st-account-token-0123456789" \
  "$T/kw" "$T/out" "$T/reports" <<'EOF'
import os, sys
needles = open(sys.argv[1]).read().split() + sys.argv[2].split()
leaks = []
for d in sys.argv[3:]:
    for root, _, files in os.walk(d):
        for f in files:
            if f.endswith((".log",)):
                continue
            data = open(os.path.join(root, f), "rb").read()
            leaks += [(f, n[:7]) for n in needles if n.encode() in data]
print(leaks[:5]) if leaks else None
sys.exit(1 if leaks else 0)
EOF
if [ $? -eq 0 ]; then ok "no raw key or credential in the database, reports or outputs"; else
  fail "a raw key or credential leaked"; fi

kw_finish
