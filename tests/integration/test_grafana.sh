#!/usr/bin/env bash
# test_grafana.sh — the Grafana dashboard (dashboards/grafana/keywatch.json) against the
# metrics keywatch really writes.
#
# Ingests the bundled sample, writes the /metrics document of that database with
# tests/tools/kw_metrics_dump (what GET /metrics answers), and checks the dashboard:
#  - it is JSON, schemaVersion 39, with a Prometheus data-source variable DS_PROMETHEUS
#    that every panel and every query uses (${DS_PROMETHEUS});
#  - panels have unique ids, fit the 24-column grid and do not overlap;
#  - every expression (panel targets and the variable queries) parses into functions,
#    keywords and metric names, and every metric name is a family of the document (its
#    # TYPE line); and every family of the document is shown by some panel.
# kw_metrics_dump is found next to $KEYWATCH (CMake builds it there) or in $KW_METRICS_DUMP.
. "$(dirname "$0")/lib.sh"

cd "$T" || exit 2
unset KEYWATCH_CONFIG
export KEYWATCH_SECRET=0123456789abcdef0123456789abcdef-grafana
DUMP=${KW_METRICS_DUMP:-$(dirname "$KEYWATCH")/kw_metrics_dump}
[ -x "$DUMP" ] || { echo "kw_metrics_dump not found at $DUMP (set KW_METRICS_DUMP)" >&2; exit 1; }
DASH=$KW_SOURCE_DIR/dashboards/grafana/keywatch.json
SAMPLE=$KW_SOURCE_DIR/tests/fixtures/sample/access.log

kw ingest ingest --db "$T/kw.db" -q "$SAMPLE"
expect_eq "ingest of the sample exits 0" "$KW_RC" 0
"$DUMP" "$T/kw.db" >"$T/metrics.txt" 2>"$T/out/dump.err"
expect_eq "kw_metrics_dump exits 0" "$?" 0
check "the document declares families" grep -q '^# TYPE keywatch_calls_total counter$' \
  "$T/metrics.txt"
check "the dashboard is JSON" is_json "$DASH"

python3 - "$DASH" "$T/metrics.txt" >"$T/out/check.out" 2>&1 <<'EOF'
import json, re, sys

dash = json.load(open(sys.argv[1], encoding="utf-8"))
families = {}
for line in open(sys.argv[2], encoding="utf-8"):
    m = re.match(r"# TYPE (\S+) (\S+)$", line.rstrip("\n"))
    if m:
        families[m.group(1)] = m.group(2)

def say(ok, msg):
    print(("PASS " if ok else "FAIL ") + msg)

# PromQL functions and aggregation operators the dashboard may call, and the keywords.
FUNCS = {"sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev",
         "count_values", "group", "rate", "irate", "increase", "delta", "idelta", "deriv",
         "time", "timestamp", "clamp_min", "clamp_max", "abs", "vector", "scalar",
         "label_values", "avg_over_time", "max_over_time", "min_over_time",
         "sum_over_time", "last_over_time", "histogram_quantile", "absent", "changes",
         "resets", "round", "sort", "sort_desc"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset"}

def metric_names(expr):
    """Metric names of a PromQL expression; raises ValueError on an unknown function."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)       # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                     # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                    # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    # Grafana's label_values(metric, label): only the first argument is a metric
    e = re.sub(r"\blabel_values\s*\(([^,)]*),[^)]*\)", r"label_values(\1)", e)
    names = []
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        tok, rest = m.group(0), e[m.end():].lstrip()
        if tok in KEYWORDS:
            continue
        if rest.startswith("(") or (tok in FUNCS and re.match(r"(by|without)\b", rest)):
            if tok not in FUNCS:
                raise ValueError("unknown function %s" % tok)
        else:
            names.append(tok)
    return names

say(dash.get("schemaVersion") == 39, "schemaVersion is 39 (%r)" % dash.get("schemaVersion"))
tvars = dash.get("templating", {}).get("list", [])
dsvar = [v for v in tvars if v.get("name") == "DS_PROMETHEUS"]
say(len(dsvar) == 1 and dsvar[0].get("type") == "datasource"
    and dsvar[0].get("query") == "prometheus",
    "a Prometheus data-source variable DS_PROMETHEUS")
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

panels = []
for p in dash.get("panels", []):
    panels.append(p)
    panels.extend(p.get("panels", []))     # panels of collapsed rows
graphs = [p for p in panels if p.get("type") != "row"]
say(len(graphs) >= 10, "%d panels" % len(graphs))
ids = [p.get("id") for p in panels]
say(len(ids) == len(set(ids)) and None not in ids, "panel ids are unique")

cells, overlap, outside = {}, [], []
for p in panels:
    g = p.get("gridPos", {})
    x, y, w, h = g.get("x", -1), g.get("y", -1), g.get("w", 0), g.get("h", 0)
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > 24:
        outside.append(p.get("title"))
    for cx in range(max(x, 0), min(x + w, 24)):
        for cy in range(max(y, 0), y + h):
            if (cx, cy) in cells and cells[(cx, cy)] != p.get("title"):
                overlap.append((cells[(cx, cy)], p.get("title")))
            cells[(cx, cy)] = p.get("title")
say(not outside, "every panel fits the 24-column grid (%s)" % outside)
say(not overlap, "no two panels overlap (%s)" % sorted(set(overlap))[:3])

exprs = []   # (where, expr)
bad_ds = []
for p in graphs:
    if p.get("datasource") != DS:
        bad_ds.append(p.get("title"))
    if not p.get("targets"):
        bad_ds.append("%s: no targets" % p.get("title"))
    for t in p.get("targets", []):
        if t.get("datasource", DS) != DS:
            bad_ds.append("%s/%s" % (p.get("title"), t.get("refId")))
        exprs.append((p.get("title"), t.get("expr", "")))
for v in tvars:
    if v.get("type") == "query":
        if v.get("datasource") != DS:
            bad_ds.append("variable " + v.get("name", "?"))
        q = v.get("query")
        exprs.append(("variable " + v.get("name", "?"),
                      q.get("query", "") if isinstance(q, dict) else q or ""))
say(not bad_ds, "every panel and query uses ${DS_PROMETHEUS} (%s)" % bad_ds)

used, unknown, broken = set(), [], []
for where, e in exprs:
    try:
        names = metric_names(e)
    except ValueError as err:
        broken.append("%s: %s" % (where, err))
        continue
    if not names:
        broken.append("%s: no metric in %r" % (where, e))
    for n in names:
        used.add(n)
        if n not in families:
            unknown.append("%s: %s" % (where, n))
say(len(families) >= 15, "the document declares %d families" % len(families))
say(not broken, "every expression parses and names a metric (%s)" % broken)
say(not unknown, "every metric of every expression (%d exprs, %d metrics) is written by"
    " keywatch (%s)" % (len(exprs), len(used), unknown))
unshown = sorted(set(families) - used)
say(not unshown, "every family keywatch writes is on the dashboard (missing: %s)" % unshown)
EOF
rc=$?
n=0
while IFS= read -r line; do
  case $line in
  PASS\ *) ok "dashboard: ${line#PASS }"; n=$((n + 1)) ;;
  FAIL\ *) fail "dashboard: ${line#FAIL }"; n=$((n + 1)) ;;
  *) echo "# $line" ;;
  esac
done <"$T/out/check.out"
if [ "$rc" -ne 0 ] || [ "$n" -eq 0 ]; then
  fail "dashboard checker exited $rc after $n assertions"
fi

kw_finish
