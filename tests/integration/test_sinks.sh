#!/usr/bin/env bash
# test_sinks.sh — alerts delivered to sinks the way a user configures them.
#
# The bundled sample is ingested with the default rules and a config with three sinks:
# a file, a webhook (tests/tools/http_receiver.py on 127.0.0.1, a token header from the
# environment, an HMAC signature) and syslog over UDP (tests/tools/syslog_receiver.py).
# Asserted: every alert reaches every sink once, as valid JSON; the signature verifies;
# the token arrives and is not in keywatch's outputs; with the webhook receiver down, the
# deliveries stay queued and a later ingest (receiver up) delivers them, once.
. "$(dirname "$0")/lib.sh"

TOOLS=$KW_SOURCE_DIR/tests/tools
SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log
export KW_TEST_TOKEN="Bearer test-token-$RANDOM$RANDOM"
export KW_TEST_HMAC="hmac-secret-$RANDOM$RANDOM"

start_http() { # port out
  kw_spawn_bg python3 "$TOOLS/http_receiver.py" --port "$1" --out "$2"
  HTTP_PID=$KW_SPAWNED
  kw_wait_port "$1" 10 "$HTTP_PID" || fail "webhook receiver starts"
}

HPORT=$(kw_free_port)
SPORT=$(kw_free_port)
kw_spawn_bg python3 "$TOOLS/syslog_receiver.py" --proto udp --port "$SPORT" --out "$T/syslog.out"
SYSLOG_PID=$KW_SPAWNED
sleep 0.5
start_http "$HPORT" "$T/http.out"

cat >"$T/kw.yaml" <<YAML
sinks:
  - name: file
    type: file
    path: $T/alerts.jsonl
  - name: hook
    type: webhook
    url: http://127.0.0.1:$HPORT/hooks/keywatch
    headers:
      - {name: Authorization, env: KW_TEST_TOKEN}
    hmac_secret_env: KW_TEST_HMAC
    timeout_ms: 3000
  - name: siem
    type: syslog
    address: udp://127.0.0.1:$SPORT
YAML

kw check check "$T/kw.yaml"
expect_eq "the config with sinks is valid" "$KW_RC" 0
kw ingest ingest --config "$T/kw.yaml" --db "$T/a.db" --json "$SAMPLE"
expect_eq "ingest exits 0" "$KW_RC" 0
alerts=$(json_get "$KW_OUT" 'j["alerts"]')
check "the sample raises alerts ($alerts)" test "${alerts:-0}" -ge 1
sleep 0.5

n_file=$(wc -l <"$T/alerts.jsonl")
expect_eq "file sink: one line per alert" "$n_file" "$alerts"
check "file sink: every line is JSON" python3 -c '
import json, sys
for line in open(sys.argv[1]): json.loads(line)' "$T/alerts.jsonl"
expect_eq "file sink: mode 0640" "$(stat -c %a "$T/alerts.jsonl")" 640

n_http=$(wc -l <"$T/http.out")
expect_eq "webhook: one POST per alert" "$n_http" "$alerts"
check "webhook: token header from the environment, HMAC verifies, body is the alert" python3 -c '
import hashlib, hmac, json, os, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["method"] == "POST" and r["path"] == "/hooks/keywatch", r["path"]
    assert r["headers"]["authorization"] == os.environ["KW_TEST_TOKEN"]
    want = "sha256=" + hmac.new(os.environ["KW_TEST_HMAC"].encode(), bytes.fromhex(r["body_hex"]), hashlib.sha256).hexdigest()
    assert r["headers"]["x-keywatch-signature"] == want, (r["headers"].get("x-keywatch-signature"), want)
    a = json.loads(r["body"])
    assert {"id", "rule", "severity", "key_prefix", "summary", "details"} <= set(a)' "$T/http.out"

n_syslog=$(grep -c . "$T/syslog.out" || true)
expect_eq "syslog: one message per alert" "$n_syslog" "$alerts"
check "syslog: RFC 5424, facility local0, the alert JSON as MSG" python3 -c '
import json, re, sys
for line in open(sys.argv[1]):
    msg = bytes.fromhex(json.loads(line)["hex"]).decode()
    m = re.match(r"<(\d+)>1 \S+ \S+ keywatch \d+ ALERT - (\{.*\})$", msg)
    assert m, msg[:80]
    assert int(m.group(1)) // 8 == 16, m.group(1)
    json.loads(m.group(2))' "$T/syslog.out"

leak=0
for f in "$T"/out/* "$T"/alerts.jsonl "$T"/a.db*; do
  grep -aqF "${KW_TEST_TOKEN#Bearer }" "$f" && { leak=1; echo "# token in $f"; }
  grep -aqF "$KW_TEST_HMAC" "$f" && { leak=1; echo "# hmac secret in $f"; }
done
expect_eq "no sink credential in keywatch's outputs or database" "$leak" 0

# The webhook receiver is down: deliveries stay queued, none lost.
kw_stop_pid "$HTTP_PID"
rm -f "$T/alerts.jsonl"
kw ingest2 ingest --config "$T/kw.yaml" --db "$T/b.db" --json "$SAMPLE"
expect_eq "ingest with the webhook down still exits 0" "$KW_RC" 0
check "it says deliveries are still pending" grep -q "still pending" "$KW_ERR"
pending=$(sqlite3 "$T/b.db" "SELECT count(*) FROM outbox WHERE sink = 'hook' AND state = 'pending'")
expect_eq "the webhook's deliveries are queued" "$pending" "$alerts"
expect_eq "the file sink still got every alert" "$(wc -l <"$T/alerts.jsonl")" "$alerts"

start_http "$HPORT" "$T/http2.out"
: >"$T/empty.log"
kw ingest3 ingest --config "$T/kw.yaml" --db "$T/b.db" "$T/empty.log"
sleep 0.5
expect_eq "the queued alerts arrive once the receiver is back" "$(wc -l <"$T/http2.out")" "$alerts"
left=$(sqlite3 "$T/b.db" "SELECT count(*) FROM outbox WHERE state = 'pending'")
expect_eq "nothing left pending" "$left" 0
kw ingest4 ingest --config "$T/kw.yaml" --db "$T/b.db" "$T/empty.log"
sleep 0.3
expect_eq "delivered alerts are not sent again" "$(wc -l <"$T/http2.out")" "$alerts"
kw_finish
