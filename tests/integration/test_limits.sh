#!/usr/bin/env bash
# test_limits.sh — resource bounds are enforced and counted where users look: `keywatch
# status` (text and --json), /api/v1/status and /metrics, and the daemon's log.
#
#  - a 70 KiB line in a log is skipped, counted as malformed and as a hit of line_bytes,
#    by `ingest` and by `run` (which also logs event=limit_hit);
#  - a capture whose request carries 22 wanted headers (tests/fixtures/pcap/gen_pcaps.py
#    many_keys.pcap): 6 hits of capture_headers;
#  - alert deliveries beyond retention.outbox_max_pending while two webhooks are down:
#    the oldest are given up (state overflow) and counted as outbox_pending; the alerts
#    stay;
#  - the daemon's HTTP server answers a 20 KiB request head with 431: http_request_size;
#    after a HUP it listens on the configuration's new address with its new tokens.
. "$(dirname "$0")/lib.sh"

SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log

# A log with one line over the 64 KiB bound between 200 good ones.
{
  head -100 "$SAMPLE"
  python3 -c 'print("10.0.0.9 - - [03/Nov/2025:00:00:00 +0000] \"GET /" + "a" * 70000 + " HTTP/1.1\" 200 1 \"-\" \"x\" \"-\" 0.001")'
  sed -n 101,200p "$SAMPLE"
} >"$T/long.log"

limit_of() { # status-json-file name: hits of that bound, or 0
  python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(sum(l["hits"] for l in j["limits"] if l["limit"] == sys.argv[2]))' "$1" "$2"
}

# ---- ingest
kw ingest ingest -q --no-rules --db "$T/a.db" --format keyed "$T/long.log"
expect_eq "ingest: the 200 good lines are stored" "$(sqlite3 "$T/a.db" 'SELECT count(*) FROM calls')" 200
kw status status --db "$T/a.db" --json
expect_eq "ingest: status --json counts the overlong line" "$(limit_of "$KW_OUT" line_bytes)" 1
check "ingest: status --json has a last_hit time" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert [l for l in j["limits"] if l["limit"] == "line_bytes"][0]["last_hit"].startswith("20"), j' "$KW_OUT"
kw status_text status --db "$T/a.db"
check "ingest: status shows the bound in its table" grep -qE "^line_bytes +1 " "$KW_OUT"

# ---- capture: too many key-bearing headers in one request
python3 "$KW_SOURCE_DIR/tests/fixtures/pcap/gen_pcaps.py" "$T/pcaps"
kw pcap ingest -q --no-rules --db "$T/a.db" "$T/pcaps/many_keys.pcap"
expect_eq "capture: ingest exits 0" "$KW_RC" 0
kw status2 status --db "$T/a.db" --json
expect_eq "capture: 6 wanted headers past the 16 slots" "$(limit_of "$KW_OUT" capture_headers)" 6
expect_eq "capture: line_bytes unchanged" "$(limit_of "$KW_OUT" line_bytes)" 1

# ---- the outbox bound: the webhook is down (nothing listens on its port)
DEAD=$(kw_free_port)
cat >"$T/ob.yaml" <<YAML
sinks:
  - name: hook
    type: webhook
    url: http://127.0.0.1:$DEAD/hook
    timeout_ms: 500
  - name: hook2
    type: webhook
    url: http://127.0.0.1:$DEAD/hook2
    timeout_ms: 500
retention:
  outbox_max_pending: 1
YAML
kw outbox ingest --config "$T/ob.yaml" --db "$T/ob.db" --json "$SAMPLE"
expect_eq "outbox: ingest exits 0" "$KW_RC" 0
alerts=$(json_get "$KW_OUT" 'j["alerts"]')
check "outbox: the sample raises alerts ($alerts), 2 deliveries each" test "${alerts:-0}" -ge 1
expect_eq "outbox: 1 delivery stays pending" "$(sqlite3 "$T/ob.db" "SELECT count(*) FROM outbox WHERE state = 'pending'")" 1
expect_eq "outbox: the oldest were given up" "$(sqlite3 "$T/ob.db" "SELECT count(*) FROM outbox WHERE state = 'overflow' AND id < (SELECT min(id) FROM outbox WHERE state = 'pending')")" $((2 * alerts - 1))
expect_eq "outbox: every alert is kept" "$(sqlite3 "$T/ob.db" 'SELECT count(*) FROM alerts')" "$alerts"
kw status3 status --db "$T/ob.db" --json
expect_eq "outbox: counted as outbox_pending" "$(limit_of "$KW_OUT" outbox_pending)" $((2 * alerts - 1))
check "outbox: the reason is recorded" test "$(sqlite3 "$T/ob.db" "SELECT DISTINCT last_error FROM outbox WHERE state = 'overflow'")" = "not delivered: more than 1 deliveries were pending"

# ---- the daemon: a long line, an oversized request head
PORT=$(kw_free_port)
printf 'http:\n  listen: 127.0.0.1:%s\n' "$PORT" >"$T/run.yaml"
: >"$T/live.log"
kw_run_start run run --config "$T/run.yaml" --db "$T/b.db" --format keyed "$T/live.log"
kw_wait_port "$PORT" 10 "$KW_RUN_PID" || fail "run: the API listens"
cp "$T/long.log" "$T/live.log"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$PORT/api/v1/status")
expect_eq "run: a 20 KiB request head is refused" "$code" 431
for ((i = 0; i < 50; i++)); do # the daemon records bounds every status interval (1 s)
  curl -s "http://127.0.0.1:$PORT/api/v1/status" >"$T/api_status.json"
  [ "$(limit_of "$T/api_status.json" line_bytes 2>/dev/null)" = 1 ] &&
    [ "$(limit_of "$T/api_status.json" http_request_size 2>/dev/null)" = 1 ] && break
  sleep 0.2
done
expect_eq "run: /api/v1/status counts the overlong line" "$(limit_of "$T/api_status.json" line_bytes)" 1
expect_eq "run: /api/v1/status counts the 431" "$(limit_of "$T/api_status.json" http_request_size)" 1
expect_eq "run: the good lines are stored" "$(sqlite3 "$T/b.db" 'SELECT count(*) FROM calls')" 200
curl -s "http://127.0.0.1:$PORT/metrics" >"$T/metrics.txt"
check "run: /metrics has keywatch_limit_hits_total for line_bytes" grep -qx 'keywatch_limit_hits_total{limit="line_bytes"} 1' "$T/metrics.txt"
check "run: /metrics has keywatch_limit_hits_total for http_request_size" grep -qx 'keywatch_limit_hits_total{limit="http_request_size"} 1' "$T/metrics.txt"
# A reload moves the server to the new address, with the new tokens; counts go on.
PORT2=$(kw_free_port)
KW_TEST_TOKEN=reloaded-token-0123456789abcdef
(umask 077 && echo "$KW_TEST_TOKEN" >"$T/token")
printf 'http:\n  listen: 127.0.0.1:%s\n  tokens: [{name: t, role: viewer, secret: {file: %s}}]\n' "$PORT2" "$T/token" >"$T/run.yaml"
kill -HUP "$KW_RUN_PID"
kw_wait_port "$PORT2" 10 "$KW_RUN_PID" || fail "reload: the server listens on the new port"
check "reload: the old port is closed" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null"
expect_eq "reload: the new tokens are in force" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/api/v1/status")" 401
curl -s -H "Authorization: Bearer $KW_TEST_TOKEN" "http://127.0.0.1:$PORT2/api/v1/status" >"$T/api_status2.json"
expect_eq "reload: the counts go on" "$(limit_of "$T/api_status2.json" http_request_size)" 1
kw_run_stop TERM
expect_eq "run: exit 0" "$KW_RUN_RC" 0
check "run: the daemon logged the bound" grep -q "event=limit_hit limit=line_bytes hits=1" "$T/out/run.err"
check "run: the daemon logged the new address" grep -q "event=http_listening address=127.0.0.1:$PORT2" "$T/out/run.err"
kw_finish
