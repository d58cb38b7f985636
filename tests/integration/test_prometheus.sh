#!/usr/bin/env bash
# test_prometheus.sh — a real Prometheus scrapes keywatch's metrics.
#
# Ingests the bundled sample, runs `keywatch serve` on 127.0.0.1 (GET /metrics), checks
# the document with promtool (tests/tools/kw_metrics_dump writes the same), and runs Debian's
# `prometheus` with a private configuration (scrape every 1 s, TSDB in the temp dir, its
# web API on a loopback port).  Then, through Prometheus's HTTP API:
#  - the scrape is healthy (up == 1) and keywatch_up == 1;
#  - every family with samples in the document is in Prometheus, and only those;
#  - calls: the sum equals the sample's line count (access.truth.json), per status class
#    it equals the statuses counted in the log itself, and the source label is the path;
#  - lines, malformed lines, keys (keys --json), alerts opened (alerts --json);
#  - every expression of the Grafana dashboard evaluates without error;
#  - after more calls are ingested (from a file whose name holds a quote, a backslash and a
#    newline) and an alert is resolved, the counters grow, the odd name arrives intact, and
#    the open alerts gauge goes down while the alerts counter does not.
# Every wait is bounded; every process is stopped at exit (lib.sh).
. "$(dirname "$0")/lib.sh"

cd "$T" || exit 2
unset KEYWATCH_CONFIG
export KEYWATCH_SECRET=0123456789abcdef0123456789abcdef-prometheus
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus)}
[ -x "$PROMETHEUS" ] || { echo "prometheus not found (apt-get install prometheus)" >&2; exit 1; }
DUMP=${KW_METRICS_DUMP:-$(dirname "$KEYWATCH")/kw_metrics_dump}
[ -x "$DUMP" ] || { echo "kw_metrics_dump not found at $DUMP (set KW_METRICS_DUMP)" >&2; exit 1; }
SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log
TRUTH=$KW_SOURCE_DIR/tests/fixtures/sample/access.truth.json
DASH=$KW_SOURCE_DIR/dashboards/grafana/keywatch.json
DB=$T/kw.db

# ================================================================ the document
kw ingest ingest --db "$DB" -q "$SAMPLE"
expect_eq "ingest of the sample exits 0" "$KW_RC" 0
"$DUMP" "$DB" >"$T/metrics.txt" 2>"$T/out/dump.err"
expect_eq "kw_metrics_dump exits 0" "$?" 0
if command -v promtool >/dev/null 2>&1; then
  check "promtool check metrics finds nothing to say" promtool check metrics <"$T/metrics.txt"
fi

# ================================================================ /metrics on loopback
# `keywatch serve` answers GET /metrics from the database at each scrape.
# start_on_port CMD...: pick a free PORT, start CMD (which reads $PORT; a function must
# exec, so that the pid kept is the server itself), wait until it listens (3 tries)
start_on_port() {
  for _ in 1 2 3; do
    PORT=$(kw_free_port)
    kw_spawn_bg "$@"
    if kw_wait_port "$PORT" 30 "$KW_SPAWNED"; then
      return 0
    fi
    kw_stop_pid "$KW_SPAWNED"
  done
  return 1
}

serve_metrics() { exec "$KEYWATCH" --db "$DB" serve --listen "127.0.0.1:$PORT" 2>>"$T/out/serve.err"; }
start_on_port serve_metrics || { fail "keywatch serve did not start: $(tail -3 "$T/out/serve.err")"; kw_finish; }
MPORT=$PORT
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$T/out/served.txt"
expect_eq "GET /metrics answers" "$?" 0
check "GET /metrics serves the document" grep -q '^keywatch_up 1$' "$T/out/served.txt"
check "GET /metrics: the families kw_metrics_dump writes" \
  diff <(grep '^# TYPE' "$T/metrics.txt") <(grep '^# TYPE' "$T/out/served.txt")

run_prometheus() {
  cat >"$T/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: keywatch
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
EOF
  exec "$PROMETHEUS" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$PORT" --log.level=warn 2>>"$T/out/prometheus.err"
}
start_on_port run_prometheus || {
  fail "prometheus did not start: $(tail -3 "$T/out/prometheus.err")"
  kw_finish
}
PROM=http://127.0.0.1:$PORT

# json_str S: S as a JSON (and PromQL) string literal
json_str() {
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1], ensure_ascii=False))' "$1"
}

# ---- queries: q EXPR prints one line per series, "<labels as JSON>\t<value>", sorted;
# qv EXPR prints the value of a one-series result (empty when none)
cat >"$T/q.py" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
try:
    j = json.load(urllib.request.urlopen(url, timeout=5))
except Exception as e:  # an HTTP 400 is a bad expression: say so, exit 1
    print("error: %s" % e, file=sys.stderr)
    sys.exit(1)
if j.get("status") != "success":
    print("error: %s" % j.get("error"), file=sys.stderr)
    sys.exit(1)
r = j["data"]["result"]
if j["data"]["resultType"] == "scalar":
    r = [{"metric": {}, "value": r}]
for s in sorted(r, key=lambda s: json.dumps(s["metric"], sort_keys=True)):
    m = {k: v for k, v in s["metric"].items() if k not in ("job", "instance")}
    print("%s\t%s" % (json.dumps(m, sort_keys=True), s["value"][1]))
EOF
q() { python3 "$T/q.py" "$PROM" "$1"; }
qv() { q "$1" 2>/dev/null | awk -F'\t' 'NR == 1 { print $2 }'; }

# wait_value EXPR WANT SECS: until qv EXPR prints WANT; 1 after SECS
wait_value() {
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -le "$deadline" ]; do
    [ "$(qv "$1")" = "$2" ] && return 0
    sleep 0.5
  done
  return 1
}

LINES=$(json_get "$TRUTH" 'j["lines"]')
check "Prometheus has scraped keywatch_calls_total within 60 s" \
  wait_value 'count(keywatch_calls_total) > bool 0' 1 60
expect_eq "the scrape is healthy (up)" "$(qv 'up{job="keywatch"}')" 1
expect_eq "keywatch_up" "$(qv keywatch_up)" 1
check "keywatch_build_info has a version label" \
  grep -q '"version": "[^"]' <(q keywatch_build_info)

# every family with samples in the document, and nothing else
awk '!/^#/ { sub(/[{ ].*/, ""); print }' "$T/metrics.txt" | sort -u >"$T/out/families.doc"
q 'count by (__name__) ({__name__=~"keywatch_.*"})' | cut -f1 |
  python3 -c 'import json, sys; [print(json.loads(l)["__name__"]) for l in sys.stdin]' |
  sort -u >"$T/out/families.prom"
NFAM=$(wc -l <"$T/out/families.doc")
check "Prometheus holds every family of the document, and only those ($NFAM)" \
  diff "$T/out/families.doc" "$T/out/families.prom"

# ================================================================ the numbers
expect_eq "sum of keywatch_calls_total = the sample's lines" \
  "$(qv 'sum(keywatch_calls_total)')" "$LINES"
expect_eq "sum of keywatch_lines_total = the sample's lines" "$(qv 'sum(keywatch_lines_total)')" \
  "$LINES"
expect_eq "keywatch_malformed_lines_total is 0" "$(qv 'sum(keywatch_malformed_lines_total)')" 0
expect_eq "the source label is the file's path" \
  "$(q 'sum by (source) (keywatch_lines_total)' | cut -f1)" "{\"source\": $(json_str "$SAMPLE")}"

# per status class: counted from the log itself (the status follows the quoted request)
python3 - "$SAMPLE" >"$T/out/classes.want" <<'EOF'
import collections, sys
n = collections.Counter()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    status = int(line.split('"')[2].split()[0])
    n["none" if status == 0 else "%dxx" % (status // 100) if 100 <= status < 600 else "other"] += 1
for c in ("1xx", "2xx", "3xx", "4xx", "5xx", "none"):
    print("%s\t%d" % (c, n[c]))
EOF
q 'sum by (status_class) (keywatch_calls_total)' |
  python3 -c 'import json, sys
for l in sys.stdin:
    k, v = l.rstrip("\n").split("\t")
    print("%s\t%s" % (json.loads(k)["status_class"], v))' | sort >"$T/out/classes.got"
check "calls by status class = the statuses in the log ($(tr '\t\n' '= ' <"$T/out/classes.want"))" \
  diff <(sort "$T/out/classes.want") "$T/out/classes.got"

"$KEYWATCH" --db "$DB" keys --json >"$T/out/keys.json" 2>/dev/null
expect_eq "keywatch_keys = keys with a prefix in keys --json" "$(qv keywatch_keys)" \
  "$(json_get "$T/out/keys.json" 'sum(1 for k in j if k["prefix"])')"
"$KEYWATCH" --db "$DB" alerts --json --limit 0 >"$T/out/alerts.json" 2>/dev/null
NALERTS=$(json_get "$T/out/alerts.json" 'len(j)')
check "the sample opens alerts (${NALERTS:-none})" test "${NALERTS:-0}" -ge 1
expect_eq "sum of keywatch_alerts_total = alerts --json" "$(qv 'sum(keywatch_alerts_total)')" \
  "$NALERTS"
OPEN_HIGH='[a["id"] for a in j if a["state"] == "open" and a["severity"] == "high"]'
HIGH_OPEN=$(json_get "$T/out/alerts.json" "len($OPEN_HIGH)")
expect_eq "keywatch_alerts_open{severity=high} = open high alerts" \
  "$(qv 'keywatch_alerts_open{severity="high"}')" "$HIGH_OPEN"
expect_eq "keywatch_outbox_backlog is 0 (no sinks)" "$(qv keywatch_outbox_backlog)" 0
check "keywatch_store_bytes is positive" test "$(qv 'keywatch_store_bytes > bool 0')" = 1

# ================================================================ the dashboard's queries
# shellcheck disable=SC2016 # $source is Grafana's, replaced here
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
ps = [p for r in d["panels"] for p in [r] + r.get("panels", [])]
for p in ps:
    for t in p.get("targets", []):
        print(t["expr"].replace("$source", ".*"))' "$DASH" >"$T/out/exprs.txt"
nbad=0
nexpr=0
while IFS= read -r e; do
  nexpr=$((nexpr + 1))
  if ! q "$e" >/dev/null 2>"$T/out/expr.err"; then
    nbad=$((nbad + 1))
    echo "# $e: $(cat "$T/out/expr.err")"
  fi
done <"$T/out/exprs.txt"
check "every dashboard expression evaluates in Prometheus ($nexpr, $nbad failed)" \
  test "$nexpr" -ge 10 -a "$nbad" -eq 0

# ================================================================ counters move
# ... for a source whose name (a path: attacker-influenced) holds a quote, a backslash and
# a newline: one badly escaped label would make Prometheus reject the whole scrape.
MORE=$(printf '%s/more "log" \\ of\nnames.log' "$T")
MORE_Q=$(json_str "$MORE")
{
  echo '10.9.9.9 - - [05/Nov/2025:00:00:01 +0000] "GET /api/health HTTP/1.1" 503 15 "-" "p" "-" 0.1'
  echo '10.9.9.9 - - [05/Nov/2025:00:00:02 +0000] "GET /api/x HTTP/1.1" 200 15 "-" "p" "-" 0.1'
  echo 'not a log line'
} >"$MORE"
kw more ingest --db "$DB" -q "$MORE"
expect_eq "a second ingest exits 0" "$KW_RC" 0
HIGH_ID=$(json_get "$T/out/alerts.json" "($OPEN_HIGH + [''])[0]")
if [ -n "$HIGH_ID" ]; then
  kw resolve --db "$DB" alerts resolve "$HIGH_ID" --by test
  expect_eq "alerts resolve exits 0" "$KW_RC" 0
fi
check "Prometheus sees the 2 new calls within 30 s" \
  wait_value 'sum(keywatch_calls_total)' $((LINES + 2)) 30
expect_eq "the new 5xx call is counted for the new source" \
  "$(qv "keywatch_calls_total{source=$MORE_Q,status_class=\"5xx\"}")" 1
expect_eq "the malformed line is counted" \
  "$(qv "keywatch_malformed_lines_total{source=$MORE_Q}")" 1
if [ -n "$HIGH_ID" ]; then
  check "keywatch_alerts_open{severity=high} goes down by one" \
    wait_value 'keywatch_alerts_open{severity="high"}' $((HIGH_OPEN - 1)) 30
  expect_eq "keywatch_alerts_total does not (a counter of alerts opened)" \
    "$(qv 'sum(keywatch_alerts_total)')" "$NALERTS"
fi
check "no counter went down in Prometheus's eyes (resets == 0)" \
  test "$(qv 'sum(resets(keywatch_calls_total[5m])) + sum(resets(keywatch_lines_total[5m]))')" = 0

kw_finish
