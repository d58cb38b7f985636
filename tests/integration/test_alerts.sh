#!/usr/bin/env bash
# test_alerts.sh — rules and alerts as a user meets them: ingest, alerts, explain, check.
#
#  - ingest the bundled sample (tests/fixtures/sample/access.log, 5,000 lines from
#    bench/gen_access_log.py, ground truth in access.truth.json) with the default pack:
#    `alerts --json` is valid and documented; the incidents the sample is big enough to
#    show raise an alert of the right type for the right key within the incident; no
#    alert for a key without an incident; filters;
#  - the same log ingested in two runs (day by day) gives the same alerts as one run:
#    baselines survive between runs;
#  - `alerts show ID` with sample calls, `ack --note`, `--state`, `resolve`, unknown IDs;
#  - `explain --rule`, `explain --json`, and that explain writes nothing;
#  - a custom pack (`rules: [builtin:default, FILE]`) with a match rule on a hostile user
#    agent: JSON output valid and exact, table output without raw control bytes;
#  - a broken pack: `check` and `ingest` exit 2 naming FILE:LINE and the field;
#  - `ingest --no-rules` stores no alert; no raw key in any output.
. "$(dirname "$0")/lib.sh"

cd "$T" || exit 2
unset KEYWATCH_SECRET KEYWATCH_CONFIG
umask 022

SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log
TRUTH=$KW_SOURCE_DIR/tests/fixtures/sample/access.truth.json
FIX=$KW_SOURCE_DIR/tests/fixtures/rules

# pycheck LABEL PYTHON ARGS...: runs PYTHON (reads sys.argv[1:]); its "PASS msg" and
# "FAIL msg" lines become assertions, other lines are shown as comments.  A script that
# crashes or asserts nothing is a failure.
pycheck() {
  local label=$1 code=$2 line n=0 rc
  shift 2
  python3 -c "$code" "$@" >"$T/out/py.out" 2>&1
  rc=$?
  while IFS= read -r line; do
    case $line in
    PASS\ *) ok "$label: ${line#PASS }"; n=$((n + 1)) ;;
    FAIL\ *) fail "$label: ${line#FAIL }"; n=$((n + 1)) ;;
    *) echo "# $line" ;;
    esac
  done <"$T/out/py.out"
  if [ "$rc" -ne 0 ] || [ "$n" -eq 0 ]; then
    fail "$label: checker exited $rc after $n assertions"
  fi
}

# ================================================================ ingest with the default pack
kw ingest --db "$T/a.db" ingest --json "$SAMPLE"
expect_eq "ingest of the sample exits 0" "$KW_RC" 0
check "ingest --json is JSON" is_json "$KW_OUT"
NALERTS=$(json_get "$KW_OUT" 'j["alerts"]')
check "ingest counts alerts (${NALERTS:-none})" test "${NALERTS:-0}" -ge 1

kw list --db "$T/a.db" alerts --json --limit 0
expect_eq "alerts --json exits 0" "$KW_RC" 0
check "alerts --json is valid JSON" is_json "$KW_OUT"
cp "$KW_OUT" "$T/alerts.json"

pycheck "alerts --json" '
import json, re, sys
alerts = json.load(open(sys.argv[1]))
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
say(isinstance(alerts, list) and len(alerts) > 0, "an array of %d alerts" % len(alerts))
fields = ["id", "rule", "type", "severity", "state", "key_prefix", "fingerprint",
          "first_seen", "last_seen", "count", "summary", "details"]
missing = [(a.get("id"), f) for a in alerts for f in fields if f not in a]
say(not missing, "every alert has the documented fields (missing: %s)" % missing[:5])
rfc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
bad = [a["id"] for a in alerts if not rfc.match(a["first_seen"]) or not rfc.match(a["last_seen"])]
say(not bad, "first_seen/last_seen are RFC 3339 UTC (bad: %s)" % bad)
# event time: the calls of the sample are of 2025-11-03..04, not of today
bad = [a["id"] for a in alerts if not ("2025-11-03" <= a["first_seen"][:10] <= "2025-11-04"
                                       and a["first_seen"] <= a["last_seen"])]
say(not bad, "times are the event times of the calls (bad: %s)" % bad)
say(all(a["severity"] in ("info", "low", "medium", "high", "critical") for a in alerts),
    "severities are named")
say(all(a["state"] == "open" for a in alerts), "new alerts are open")
say(all(isinstance(a["count"], int) and a["count"] >= 1 for a in alerts), "counts >= 1")
say(all(isinstance(a["details"], dict) for a in alerts), "details are JSON objects")
say(all(re.match(r"^[0-9a-f]{32}$", a["fingerprint"] or "") for a in alerts),
    "fingerprints are 32 hex digits")
say(all(a["summary"] for a in alerts), "every alert has a summary")
ids = [a["id"] for a in alerts]
say(len(set(ids)) == len(ids), "ids are unique")
' "$T/alerts.json"

# Every incident of the truth file that the sample is big enough to show must raise an
# alert of the right type for its key, within the incident.  With 5,000 lines some are
# below the default pack's thresholds (rules/default.yaml: rate-spike floor 60 calls,
# enumeration 200 ids, off-hours 10 calls, first-admin-call needs 50 calls of history):
# those are printed, not asserted.
pycheck "detection" '
import json, sys
alerts = json.load(open(sys.argv[1]))
truth = json.load(open(sys.argv[2]))
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
kinds = {"rate_spike": ["rate_spike"], "new_ips": ["ip_fanout", "new_source"],
         "auth_fail_burst": ["auth_failures"], "sequential_ids": ["enumeration"],
         "off_hours": ["off_hours"], "first_admin": ["new_endpoint"]}
def showable(i):
    t, d = i["type"], i.get("details", {})
    if t == "rate_spike": return i["lines"] >= 60
    if t == "new_ips": return len(d.get("new_ips", [])) > 10
    if t == "auth_fail_burst": return d.get("per_burst", 0) >= 10
    if t == "sequential_ids": return d["ids"][1] - d["ids"][0] + 1 >= 200
    if t == "off_hours": return i["lines"] >= 10
    if t == "first_admin": return i["key_background_lines"] >= 50
    return True
def ts(s): # "2025-11-04T14:58:49.000Z" -> comparable with the truth epochs
    import datetime
    return datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
incident_keys = set()
nshow = 0
for i in truth["incidents"]:
    prefix = i["api_key"][:7]
    incident_keys.add(prefix)
    lo = min(w["start_epoch"] for w in i["windows"])
    hi = max(w["end_epoch"] for w in i["windows"]) + 60
    hits = [a for a in alerts if a["key_prefix"] == prefix and a["type"] in kinds[i["type"]]
            and ts(a["first_seen"]) <= hi and ts(a["last_seen"]) >= lo]
    print("incident %d %-15s key %s: %s%s" % (i["id"], i["type"], prefix,
          ", ".join("alert %d %s (%s)" % (a["id"], a["rule"], a["first_seen"]) for a in hits) or "no alert",
          "" if showable(i) else " (too small in this sample)"))
    if showable(i):
        nshow += 1
        say(bool(hits), "incident %d (%s) raises %s for %s within %s..%s" % (
            i["id"], i["type"], "/".join(kinds[i["type"]]), prefix, i["start"], i["end"]))
say(nshow >= 2, "the sample shows at least 2 incidents (%d)" % nshow)
others = [a for a in alerts if a["key_prefix"] not in incident_keys]
for a in others:
    print("alert %d %s for %s: %s" % (a["id"], a["rule"], a["key_prefix"], a["summary"]))
say(not others, "no alert for a key without an incident (%d)" % len(others))
' "$T/alerts.json" "$TRUTH"

# ---- filters
FAN_ID=$(json_get "$T/alerts.json" '[a["id"] for a in j if a["type"] == "ip_fanout"][0]')
AUTH_ID=$(json_get "$T/alerts.json" '[a["id"] for a in j if a["type"] == "auth_failures"][0]')
AUTH_KEY=$(json_get "$T/alerts.json" '[a["key_prefix"] for a in j if a["type"] == "auth_failures"][0]')
kw f-rule --db "$T/a.db" alerts --json --rule auth-failure-burst
expect_eq "alerts --rule: only that rule" \
  "$(json_get "$KW_OUT" 'sorted(set(a["rule"] for a in j))')" '["auth-failure-burst"]'
kw f-key --db "$T/a.db" alerts --json --key "$AUTH_KEY"
expect_eq "alerts --key PREFIX: only that key" \
  "$(json_get "$KW_OUT" 'sorted(set(a["key_prefix"] for a in j))')" "[\"$AUTH_KEY\"]"
kw f-sev --db "$T/a.db" alerts --json --severity high
expect_eq "alerts --severity high: no medium alert" \
  "$(json_get "$KW_OUT" 'sorted(set(a["severity"] for a in j) - {"high", "critical"})')" '[]'
kw f-since --db "$T/a.db" alerts --json --since 2025-11-04T12:00:00Z
expect_eq "alerts --since (event time): the afternoon's fan-out only" \
  "$(json_get "$KW_OUT" '[a["id"] for a in j]')" "[$FAN_ID]"

# ---- table
kw table --db "$T/a.db" alerts
expect_eq "alerts (table) exits 0" "$KW_RC" 0
check "alerts table has a header" grep -q "^ID *SEVERITY *STATE *RULE" "$KW_OUT"
check "alerts table lists the fan-out alert" grep -Eq "^$FAN_ID +high +open +leaked-key-fanout" "$KW_OUT"

# ================================================================ baselines across runs
# The same log in two runs (the first day, then the second) gives the alerts of one run.
python3 - "$SAMPLE" "$T/day1.log" "$T/day2.log" <<'EOF'
import sys
src, d1, d2 = sys.argv[1:]
with open(src) as f, open(d1, "w") as a, open(d2, "w") as b:
    for line in f:
        (a if "[03/Nov/2025:" in line else b).write(line)
EOF
mkdir -p "$T/split"
kw split1 --db "$T/split/s.db" ingest -q "$T/day1.log"
kw split2 --db "$T/split/s.db" ingest -q "$T/day2.log"
expect_eq "ingest day 1, then day 2: exit 0" "$KW_RC" 0
kw split-list --db "$T/split/s.db" alerts --json --limit 0
pycheck "two runs" '
import json, sys
one = json.load(open(sys.argv[1])); two = json.load(open(sys.argv[2]))
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
key = lambda a: (a["rule"], a["key_prefix"], a["first_seen"], a["last_seen"], a["count"])
a, b = sorted(map(key, one)), sorted(map(key, two))
say(a == b, "day-by-day ingest gives the alerts of one ingest (one run: %s; two runs: %s)" % (a, b))
' "$T/alerts.json" "$KW_OUT"

# ================================================================ show, ack, resolve
kw show --db "$T/a.db" alerts show "$FAN_ID"
expect_eq "alerts show ID exits 0" "$KW_RC" 0
check "alerts show names the rule" grep -q "leaked-key-fanout" "$KW_OUT"
check "alerts show has a samples section" grep -q "samples" "$KW_OUT"
NS=$(grep -Ec '^  2025-11-04T[0-9:.]+Z +[0-9.]+ +(GET|POST|PUT|DELETE) +/' "$KW_OUT")
check "alerts show lists sample calls (time, address, method, path: $NS)" test "$NS" -ge 1
kw show-json --db "$T/a.db" alerts show "$FAN_ID" --json
check "alerts show --json is valid JSON" is_json "$KW_OUT"
pycheck "alerts show --json" '
import json, sys
a = json.load(open(sys.argv[1]))
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
say(a["id"] == int(sys.argv[2]) and a["type"] == "ip_fanout", "the alert asked for")
s = a.get("samples", [])
say(1 <= len(s) <= 20, "1..20 sample calls (%d)" % len(s))
say(all(x["time"][:10] == "2025-11-04" and x["path"].startswith("/") and x["client"] for x in s),
    "samples carry event time, client and path")
# the fan-out: its samples come from several addresses
say(len(set(x["client"] for x in s)) > 1, "samples from %d addresses" % len(set(x["client"] for x in s)))
' "$KW_OUT" "$FAN_ID"

kw ack --db "$T/a.db" alerts ack "$AUTH_ID" --note "looking into it" --by alice
expect_eq "alerts ack ID --note exits 0" "$KW_RC" 0
kw acked --db "$T/a.db" alerts --state acknowledged --json
expect_eq "--state acknowledged lists it" "$(json_get "$KW_OUT" '[a["id"] for a in j]')" "[$AUTH_ID]"
expect_eq "ack records who" "$(json_get "$KW_OUT" 'j[0].get("state_by")')" "alice"
expect_eq "ack records the note" "$(json_get "$KW_OUT" 'j[0].get("note")')" "looking into it"
check "ack records when (RFC 3339)" grep -Eq '"state_at": "[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$KW_OUT"
kw open-after-ack --db "$T/a.db" alerts --state open --json
check "an acknowledged alert is no longer open" \
  test "$(json_get "$KW_OUT" "[a['id'] for a in j if a['id'] == $AUTH_ID]")" = "[]"
kw show-acked --db "$T/a.db" alerts show "$AUTH_ID"
check "alerts show: acknowledged by alice with the note" \
  grep -q "acknowledged by alice at .*: looking into it" "$KW_OUT"

kw resolve --db "$T/a.db" alerts resolve "$AUTH_ID"
expect_eq "alerts resolve ID exits 0" "$KW_RC" 0
kw resolved --db "$T/a.db" alerts --state resolved --json
expect_eq "--state resolved lists it" "$(json_get "$KW_OUT" '[a["id"] for a in j]')" "[$AUTH_ID]"
expect_eq "resolve keeps the earlier note" "$(json_get "$KW_OUT" 'j[0].get("note")')" "looking into it"

for verb in show ack resolve; do
  kw "unknown-$verb" --db "$T/a.db" alerts "$verb" 999999
  expect_eq "alerts $verb of an unknown ID exits 1" "$KW_RC" 1
  check "alerts $verb of an unknown ID says so" grep -q "no alert 999999" "$KW_ERR"
done
kw bad-id --db "$T/a.db" alerts ack abc
expect_eq "alerts ack abc (not an ID) exits 2" "$KW_RC" 2
kw no-id --db "$T/a.db" alerts show
expect_eq "alerts show without an ID exits 2" "$KW_RC" 2
kw bad-state --db "$T/a.db" alerts --state closed
expect_eq "alerts --state closed exits 2" "$KW_RC" 2

# ================================================================ explain
mkdir -p "$T/ex"
(cd "$T/ex" && "$KEYWATCH" --db "$T/ex/never.db" explain --rule rate-spike "$SAMPLE" \
  >"$T/out/explain.out" 2>"$T/out/explain.err")
expect_eq "explain --rule rate-spike exits 0" "$?" 0
check "explain prints a header" grep -q "^RULE *KEY/ADDRESS *RESULT" "$T/out/explain.out"
NR=$(grep -c "^rate-spike " "$T/out/explain.out")
check "explain --rule rate-spike prints per-key rows ($NR)" test "$NR" -ge 1
check "explain --rule rate-spike prints only that rule" \
  test "$(grep -Ec '^[a-z]' "$T/out/explain.out")" -eq "$NR"
check "explain ends with the engine's size" grep -Eq "^[0-9]+ keys tracked, [0-9]+ bytes of state" "$T/out/explain.out"
RS_KEY=$(python3 -c 'import json,sys; print([i["api_key"][:7] for i in json.load(open(sys.argv[1]))["incidents"] if i["type"]=="rate_spike"][0])' "$TRUTH")
check "explain shows how close the spiking key ($RS_KEY) came: observed / threshold" \
  grep -Eq "^rate-spike +$RS_KEY +did not fire +[0-9.]+ / [0-9.]+ \([0-9]+%\)" "$T/out/explain.out"
check "explain writes no database" test ! -e "$T/ex/never.db"
check "explain writes no secret" test ! -e "$T/ex/keywatch.secret"

kw explain-fan explain --rule leaked-key-fanout "$SAMPLE"
FAN_KEY=$(json_get "$T/alerts.json" '[a["key_prefix"] for a in j if a["type"] == "ip_fanout"][0]')
check "explain: the fan-out key fired" grep -Eq "^leaked-key-fanout +$FAN_KEY +fired [0-9]+ +first 2025-11-04T" "$KW_OUT"

kw explain-json explain --json "$SAMPLE"
expect_eq "explain --json exits 0" "$KW_RC" 0
check "explain --json is valid JSON" is_json "$KW_OUT"
pycheck "explain --json" '
import json, sys
rows = json.load(open(sys.argv[1]))
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
say(isinstance(rows, list) and len(rows) >= 2, "an array of %d rows" % len(rows))
need = {"rule", "type", "subject", "fired", "first_fired", "closest", "note"}
say(all(need <= set(r) for r in rows), "rows have rule, type, subject, fired, first_fired, closest, note")
say(all({"observed", "threshold", "ratio", "at"} <= set(r["closest"]) for r in rows), "closest has observed, threshold, ratio, at")
fired = {(r["rule"], r["subject"]) for r in rows if r["fired"] > 0}
alerts = {(a["rule"], a["key_prefix"]) for a in json.load(open(sys.argv[2]))}
say(fired == alerts, "explain fires exactly where ingest raised alerts (%s vs %s)" % (sorted(fired), sorted(alerts)))
say(all((r["first_fired"] is None) == (r["fired"] == 0) for r in rows), "first_fired set iff fired")
' "$KW_OUT" "$T/alerts.json"

kw explain-key explain --key "$FAN_KEY" "$SAMPLE"
check "explain --key: only that key" \
  test "$(grep -E '^[a-z]' "$KW_OUT" | grep -v '^RULE' | grep -vc " $FAN_KEY ")" -eq 0
kw explain-bad explain --rule rate-spike "$T/does-not-exist.log"
expect_eq "explain of a missing file exits 1" "$KW_RC" 1

# ================================================================ hostile user agent
# An nginx-escaped user agent (\x22 quote, \x1B ESC, \x0A newline) carrying <script>,
# short enough for the sample table to show it whole.
HOSTILE_KEY="mb_HstL$(head -c 30 /dev/urandom | base64 -w0 | tr -d '/+=' | head -c 36)="
python3 - "$T/hostile.log" "$HOSTILE_KEY" <<'EOF'
import sys
path, key = sys.argv[1], sys.argv[2]
ua = r"\x1B[31m<script>\x0Aline2\x1B[0m \x22q\x22 alert(1)</script>"
with open(path, "w") as f:
    for i in range(3):
        f.write('192.0.2.9 - - [04/Nov/2025:12:00:%02d +0000] "GET /api/card/%d HTTP/1.1" 200 512 "-" "%s" "%s" 0.004\n'
                % (i, i + 1, ua, key))
    f.write('192.0.2.9 - - [04/Nov/2025:12:01:00 +0000] "GET /api/card/9 HTTP/1.1" 200 512 "-" "curl/8" "%s" 0.004\n' % key)
EOF
cat >"$T/hostile.yaml" <<EOF
rules: [builtin:default, $FIX/hostile.yaml]
EOF
kw check-hostile check "$T/hostile.yaml"
expect_eq "check of a config with a custom pack exits 0" "$KW_RC" 0
check "check counts the custom pack's rules" grep -q "from 2 packs" "$KW_OUT"
mkdir -p "$T/h"
kw ingest-hostile --db "$T/h/h.db" --config "$T/hostile.yaml" ingest -q "$T/hostile.log"
expect_eq "ingest with the custom pack exits 0" "$KW_RC" 0
kw h-json --db "$T/h/h.db" alerts --json
check "alerts --json with a hostile user agent is valid JSON" is_json "$KW_OUT"
cp "$KW_OUT" "$T/h-alerts.json"
pycheck "hostile agent" '
import json, sys
alerts = json.load(open(sys.argv[1]))
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
ua = "\x1b[31m<script>\nline2\x1b[0m \"q\" alert(1)</script>"
m = [a for a in alerts if a["rule"] == "script-in-agent"]
say(len(m) == 1, "the match rule raised one alert (%d)" % len(m))
if m:
    a = m[0]
    say(a["severity"] == "high" and a["type"] == "match", "with the pack severity and type")
    say(a["key_prefix"] == sys.argv[2][:7], "for the key (%s)" % a["key_prefix"])
    say(a["details"].get("user_agent") == ua, "details.user_agent is the decoded agent, exactly")
    say(a["details"].get("rule_source", "").endswith("hostile.yaml:4"), "details name the rule source FILE:LINE (%s)" % a["details"].get("rule_source"))
    say(a["count"] == 1, "three calls within a minute: one alert, count %d (throttled)" % a["count"])
raw = open(sys.argv[1], "rb").read()
say(b"\x1b" not in raw and b"<script>" in raw, "JSON output: no raw ESC byte; <script> kept as text")
' "$T/h-alerts.json" "$HOSTILE_KEY"
H_ID=$(json_get "$T/h-alerts.json" '[a["id"] for a in j if a["rule"] == "script-in-agent"][0]')
kw h-table --db "$T/h/h.db" alerts
kw h-show --db "$T/h/h.db" alerts show "$H_ID"
kw h-show-json --db "$T/h/h.db" alerts show "$H_ID" --json
check "alerts show --json with a hostile agent is valid JSON" is_json "$KW_OUT"
expect_eq "alerts show --json: the sample's user agent decodes exactly" \
  "$(json_get "$KW_OUT" 'j["samples"][0]["user_agent"] == "\x1b[31m<script>\nline2\x1b[0m \"q\" alert(1)</script>"')" True
for f in h-table h-show; do
  check "$f: no raw ESC byte in table output" python3 -c 'import sys; sys.exit(b"\x1b" in open(sys.argv[1], "rb").read())' "$T/out/$f.out"
done
check "alerts show: the ESC is shown as a visible \\x1B" grep -qF '\x1B[31m<script>' "$T/out/h-show.out"
check "alerts show: the newline is shown as a visible \\x0A" grep -qF '<script>\x0Aline2' "$T/out/h-show.out"
check "alerts show: no line starts with the agent's second line" \
  python3 -c 'import sys; sys.exit(any(l.startswith("line2") for l in open(sys.argv[1], errors="replace")))' "$T/out/h-show.out"

# ================================================================ a broken pack
cat >"$T/broken.yaml" <<EOF
rules: [$FIX/broken.yaml]
EOF
kw check-broken check "$T/broken.yaml"
expect_eq "check of a config with a broken pack exits 2" "$KW_RC" 2
check "check names the pack FILE:LINE and the field" \
  grep -qF "$FIX/broken.yaml:8: rules.1.window:" "$KW_ERR"
check "check says what is wrong" grep -q "'10x'" "$KW_ERR"
mkdir -p "$T/b"
kw ingest-broken --db "$T/b/b.db" --config "$T/broken.yaml" ingest "$SAMPLE"
expect_eq "ingest with a broken pack exits 2" "$KW_RC" 2
check "ingest names the pack FILE:LINE and the field" \
  grep -qF "$FIX/broken.yaml:8: rules.1.window:" "$KW_ERR"
cat >"$T/missing.yaml" <<EOF
rules: [$T/no-such-pack.yaml]
EOF
kw check-missing check "$T/missing.yaml"
expect_eq "check of a config naming a missing pack exits 2" "$KW_RC" 2
check "check names the missing pack" grep -qF "$T/no-such-pack.yaml" "$KW_ERR"

# ================================================================ --no-rules
mkdir -p "$T/n"
kw norules --db "$T/n/n.db" ingest -q --no-rules "$SAMPLE"
expect_eq "ingest --no-rules exits 0" "$KW_RC" 0
kw norules-list --db "$T/n/n.db" alerts --json
expect_eq "ingest --no-rules stores no alert" "$(json_get "$KW_OUT" 'len(j)')" 0
kw norules-table --db "$T/n/n.db" alerts
check "alerts on a database without alerts says so" grep -q "no matching alerts" "$KW_OUT"

# ================================================================ no raw key anywhere
# Every output of this script (alerts, show, explain, check, errors) against every key of
# the inputs: a key must never appear beyond its display prefix.
pycheck "raw keys" '
import glob, re, sys
keys = set()
for f in sys.argv[1:3]:
    keys |= set(re.findall(r"mb_[A-Za-z0-9+/]{20,}=*", open(f, errors="replace").read()))
keys.add(sys.argv[3])
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
outs = glob.glob(sys.argv[4] + "/*.out") + glob.glob(sys.argv[4] + "/*.err")
leaks = []
for o in outs:
    data = open(o, errors="replace").read()
    for k in keys:
        if k[:12] in data:
            leaks.append((o.rsplit("/", 1)[-1], k[:7]))
say(len(keys) > 50, "%d raw keys looked for" % len(keys))
say(len(outs) > 30, "in %d outputs" % len(outs))
say(not leaks, "no output holds more than a key display prefix (%s)" % leaks[:5])
' "$SAMPLE" "$T/hostile.log" "$HOSTILE_KEY" "$T/out"

# action: revoke — a new alert records a revocation decision for the responder (which
# `ingest` does not run: test_revocation.sh covers carrying them out).
cat >"$T/revoke.yaml" <<'YAML'
rules:
  - id: admin-key-listing
    type: match
    action: revoke
    severity: high
    conditions:
      - {field: path, op: prefix, value: /api/user}
YAML
printf 'rules: [%s]\n' "$T/revoke.yaml" >"$T/revoke-config.yaml"
kw revoke ingest -q --config "$T/revoke-config.yaml" --db "$T/revoke.db" "$SAMPLE"
expect_eq "ingest with a revoke rule exits 0" "$KW_RC" 0
n_alerts=$(sqlite3 "$T/revoke.db" "SELECT count(*) FROM alerts WHERE action = 'revoke'")
n_dec=$(sqlite3 "$T/revoke.db" "SELECT count(*) FROM revocations WHERE origin = 'rule'
  AND state = 'decided' AND decided_by = 'rule:admin-key-listing'")
check "the revoke rule fired ($n_alerts alerts)" test "$n_alerts" -ge 1
expect_eq "one recorded revocation decision per alert" "$n_dec" "$n_alerts"

kw_finish
