#!/usr/bin/env bash
# test_secrets.sh — no raw key anywhere keywatch writes, after a full run.
#
# Random Metabase-style keys travel in every carrier a log can hold: the X-API-Key
# header, Authorization (Bearer, Token, Basic), ?api_key= and ?token= in the query, and
# a path segment.  `keywatch run` follows the log with three sinks (file, webhook, syslog),
# the dashboard/API listening, and a scheduled review run on SIGUSR1; the traffic makes
# the default rules fire (fan-out, auth failures).  Then every API answer (keys, key
# pages, calls, alerts, reviews, status, metrics), every CLI output (keys, calls, alerts,
# review in all five formats, status, verify) and every file under the run's directory —
# the database with its WAL, the daemon's log, the sinks' output, the reports — is
# scanned for each key: whole, without its "mb_" prefix, any 12 characters of it past
# the 7 the display prefix shows, URL-encoded, and inside a Basic credential.
# The display prefix (7 characters) is the only part that may appear.
. "$(dirname "$0")/lib.sh"

TOOLS=$KW_SOURCE_DIR/tests/tools
kw_make_keys 6 "$T/keys.txt"
mapfile -t KEYS <"$T/keys.txt"
mkdir -p "$T/run" "$T/reports" "$T/cli" "$T/api"

# ---- the log: each key in every carrier; K0 from 15 addresses (fan-out), K1 refused
# 12 times in a row (auth-failure burst)
python3 - "$T/keys.txt" >"$T/run/access.log" <<'EOF'
import base64, sys, time, urllib.parse
keys = open(sys.argv[1]).read().split()
now = time.time() - 600
lines = []
def line(t, ip, req, status, key="-", auth="-"):
    ts = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
    lines.append('%s - - [%s] "%s HTTP/1.1" %d 120 "-" "curl/8.0" "%s" "%s" 0.004'
                 % (ip, ts, req, status, key, auth))
t = now
for i, k in enumerate(keys):
    q = urllib.parse.quote(k, safe="")
    basic = base64.b64encode((k + ":").encode()).decode()
    for n in range(3):
        t += 1
        line(t, "10.1.%d.%d" % (i, n), "GET /api/card/%d" % n, 200, key=k)
        line(t, "10.1.%d.%d" % (i, n), "GET /api/card/%d" % n, 200, auth="Bearer " + k)
        line(t, "10.1.%d.%d" % (i, n), "GET /api/dashboard/%d" % n, 200, auth="Token " + k)
        line(t, "10.1.%d.%d" % (i, n), "GET /api/user/current", 200, auth="Basic " + basic)
        line(t, "10.1.%d.%d" % (i, n), "GET /api/card?api_key=%s&f=all" % q, 200)
        line(t, "10.1.%d.%d" % (i, n), "GET /api/session?token=%s" % q, 200, key=k)
        line(t, "10.1.%d.%d" % (i, n), "GET /api/keys/%s/usage" % q, 200, key=k)
for n in range(15):
    t += 1
    line(t, "172.16.0.%d" % (n + 1), "GET /api/database", 200, key=keys[0])
for n in range(12):
    t += 1
    line(t, "10.9.9.9", "POST /api/card", 401, key=keys[1])
print("\n".join(lines))
EOF
LINES=$(wc -l <"$T/run/access.log")

HPORT=$(kw_free_port)
SPORT=$(kw_free_port)
APORT=$(kw_free_port)
kw_spawn_bg python3 "$TOOLS/http_receiver.py" --port "$HPORT" --out "$T/run/webhook.jsonl"
kw_spawn_bg python3 "$TOOLS/syslog_receiver.py" --proto udp --port "$SPORT" --out "$T/run/syslog.out"
kw_wait_port "$HPORT" 10 || fail "the webhook receiver listens"
cat >"$T/kw.yaml" <<YAML
db: $T/run/kw.db
ingest:
  log_format: '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" "\$http_x_api_key" "\$http_authorization" \$request_time'
sources:
  - path: $T/run/access.log
sinks:
  - {name: file, type: file, path: $T/run/alerts.jsonl}
  - {name: hook, type: webhook, url: "http://127.0.0.1:$HPORT/hook"}
  - {name: siem, type: syslog, address: "udp://127.0.0.1:$SPORT"}
http:
  listen: 127.0.0.1:$APORT
review:
  schedule: "0 0 1 1 *"
  output_dir: $T/reports
  formats: [html, md, csv, json]
YAML
kw check check "$T/kw.yaml"
expect_eq "the configuration is valid" "$KW_RC" 0

kw_run_start run run --config "$T/kw.yaml"
kw_wait_port "$APORT" 10 "$KW_RUN_PID" || fail "the API listens"
for ((i = 0; i < 100; i++)); do
  [ "$(sqlite3 "$T/run/kw.db" 'SELECT count(*) FROM calls' 2>/dev/null || echo 0)" -ge "$LINES" ] && break
  sleep 0.1
done
expect_eq "every line stored" "$(sqlite3 "$T/run/kw.db" 'SELECT count(*) FROM calls')" "$LINES"
expect_eq "every key seen, in every carrier, as one key each" \
  "$(sqlite3 "$T/run/kw.db" 'SELECT count(*) FROM keys')" "${#KEYS[@]}"
kill -USR1 "$KW_RUN_PID"
for ((i = 0; i < 100; i++)); do
  [ -n "$(ls "$T/reports"/*.json 2>/dev/null)" ] && [ -s "$T/run/alerts.jsonl" ] && break
  sleep 0.1
done
check "the scheduled review wrote its reports" test -n "$(ls "$T/reports"/*.html 2>/dev/null)"
alerts=$(sqlite3 "$T/run/kw.db" "SELECT count(*) FROM alerts WHERE rule IN ('leaked-key-fanout', 'auth-failure-burst')")
check "the traffic made the fan-out and auth-failure rules fire ($alerts)" test "$alerts" -ge 2

# Every API answer.
api() { curl -s "http://127.0.0.1:$APORT$1" >"$T/api/$2"; }
api /api/v1/keys keys.json
api /api/v1/alerts alerts.json
api "/api/v1/calls?limit=500" calls.json
api /api/v1/reviews reviews.json
api /api/v1/review review.json
api /api/v1/status status.json
api /api/v1/revocations revocations.json
api /metrics metrics.txt
api / index.html
for f in "$T"/api/*.json; do
  check "the API answers $(basename "$f") with JSON, not an error" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert "error" not in j, j' "$f"
done
python3 -c '
import json, sys
for k in json.load(open(sys.argv[1]))["items"]:
    print(k["fingerprint"])' "$T/api/keys.json" >"$T/fps.txt"
expect_eq "the key list has every key" "$(wc -l <"$T/fps.txt")" "${#KEYS[@]}"
while read -r fp; do
  api "/api/v1/keys/$fp" "key-$fp.json"
  api "/api/v1/calls?key=$fp&limit=500" "calls-$fp.json"
done <"$T/fps.txt"
check "every key page answered" test "$(grep -l '"calls_per_hour"\|"endpoints"' "$T"/api/key-*.json | wc -l)" = "${#KEYS[@]}"
sleep 1.5 # the alerts reach the webhook and syslog receivers
kw_run_stop TERM
expect_eq "run: exit 0" "$KW_RUN_RC" 0
check "the webhook got the alerts" test -s "$T/run/webhook.jsonl"
check "the syslog receiver got the alerts" test -s "$T/run/syslog.out"

# Every CLI output.
cli() { local name=$1; shift; "$KEYWATCH" --config "$T/kw.yaml" "$@" >"$T/cli/$name" 2>&1 || true; }
cli keys.txt keys
cli keys.json keys --json
cli calls.txt calls --limit 0
cli calls.json calls --limit 0 --json
cli alerts.txt alerts
cli alerts.json alerts --json
for id in $(sqlite3 "$T/run/kw.db" 'SELECT id FROM alerts'); do cli "alert-$id.txt" alerts show "$id"; done
for f in table md csv json html; do cli "review.$f" review --format "$f"; done
cli status.json status --json
cli verify.json verify --json
cli revocations.txt revocations
cli stats.txt stats
check "the CLI's calls list every call" test "$(wc -l <"$T/cli/calls.txt")" -gt "$LINES"

# The scan: everything under run/, reports/, api/, cli/ and the logs of this test.
python3 - "$T/keys.txt" "$T/run" "$T/reports" "$T/api" "$T/cli" "$T/out" <<'EOF'
import base64, os, sys, urllib.parse
keys = open(sys.argv[1]).read().split()
needles = []
for k in keys:
    forms = {k, k[3:], urllib.parse.quote(k, safe=""), base64.b64encode((k + ":").encode()).decode()}
    forms |= {k[i:i + 12] for i in range(7, len(k) - 11)}  # past the display prefix
    needles += [(k[:7], f.encode()) for f in forms]
leaks, files = [], 0
for d in sys.argv[2:]:
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            if p.endswith("access.log"):
                continue  # the input itself
            data = open(p, "rb").read()
            files += 1
            leaks += [(p, key) for key, f in needles if f in data]
print("# %d files scanned for %d keys (%d forms)" % (files, len(keys), len(needles)))
for p, key in sorted(set(leaks))[:10]:
    print("# leak: %s in %s" % (key, p))
sys.exit(1 if leaks or files < 20 else 0)
EOF
if [ $? -eq 0 ]; then ok "no raw key in the database, logs, sinks, API answers, metrics, reports or CLI output"; else
  fail "a raw key leaked"; fi
check "the database is 0600" test "$(stat -c %a "$T/run/kw.db")" = 600
check "the reports are 0640" bash -c "for f in '$T/reports'/*; do [ \"\$(stat -c %a \"\$f\")\" = 640 ] || exit 1; done"
kw_finish
