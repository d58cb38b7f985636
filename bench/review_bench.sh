#!/usr/bin/env bash
# bench/review_bench.sh — `keywatch review` over 30 days of rollups for many keys.
#
# usage: bench/review_bench.sh [--keys N] [--days D] [--endpoints E] [--runs R]
#        (defaults: 10000 keys, 30 days, 5 endpoints per key per day, 3 runs)
# env:   KEYWATCH   the binary (default: build/keywatch, built if missing)
#
# Builds a database with keywatch's schema (a one-line ingest creates it), then fills it
# with Python's sqlite3: N keys (Metabase-style prefixes) in three key-store groups
# (inventory rows), 200 endpoint templates, and per key and day E endpoints' rollups
# (key_endpoint_days: N × D × E rows).  Times, median of R runs:
#   reference  sqlite3 summing the same rollups per key and endpoint (the floor: reading them)
#   review     keywatch review --format json --no-save (the Metabase catalogue, group grants)
#   review+    keywatch review --format json (also compared with, and stored as, the last)
# Target (issue 7): under 5 s for 10,000 keys over 30 days.
set -euo pipefail
KEYS=10000 DAYS=30 EPS=5 RUNS=3
while [ $# -gt 0 ]; do
  case $1 in
  --keys) KEYS=$2; shift 2 ;;
  --days) DAYS=$2; shift 2 ;;
  --endpoints) EPS=$2; shift 2 ;;
  --runs) RUNS=$2; shift 2 ;;
  -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "review_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
for v in "$KEYS" "$DAYS" "$EPS" "$RUNS"; do
  case $v in '' | *[!0-9]* | 0) echo "review_bench.sh: options need a number > 0" >&2; exit 2 ;; esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${KEYWATCH:-}" ]; then
  KEYWATCH=$ROOT/build/keywatch
  [ -x "$KEYWATCH" ] || { cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$ROOT/build" -j2 --target keywatch >/dev/null; }
fi
command -v sqlite3 >/dev/null || { echo "review_bench.sh: sqlite3 is required" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export KEYWATCH_SECRET=review-bench-secret-0123456789abcdef
cat >"$W/grants.yaml" <<'YAML'
grants:
  - {groups: [Analysts], scopes: [metabase.read]}
  - {groups: [Editors], scopes: [metabase.read, metabase.write]}
YAML
printf 'db: %s\nrules: [builtin:default, builtin:metabase-scopes, %s]\n' "$W/kw.db" "$W/grants.yaml" >"$W/kw.yaml"
printf '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /api/health HTTP/1.1" 200 2 "-" "b" "-" 0.001\n' >"$W/one.log"
"$KEYWATCH" --config "$W/kw.yaml" ingest -q --format keyed "$W/one.log" >/dev/null
echo "# filling $KEYS keys x $DAYS days x $EPS endpoints = $((KEYS * DAYS * EPS)) rollup rows ..."
python3 - "$W/kw.db" "$KEYS" "$DAYS" "$EPS" <<'PY'
import os, random, sqlite3, sys, time
db, nkeys, ndays, neps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(7)
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
now_day = int(time.time() // 86400)
tmpl = [("GET", "/api/card/{id}"), ("GET", "/api/dashboard/{id}"), ("POST", "/api/dataset"),
        ("PUT", "/api/card/{id}"), ("GET", "/api/user/{id}"), ("GET", "/api/collection/{id}")]
eps = []
for i in range(200):
    m, p = tmpl[i % len(tmpl)]
    eps.append((m, p if i < len(tmpl) else p.replace("{id}", "x%d/{id}" % i)))
c.executemany("INSERT OR IGNORE INTO endpoints(method, template) VALUES(?, ?)", eps)
ep_ids = [r[0] for r in c.execute("SELECT id FROM endpoints ORDER BY id")]
groups = ["Analysts", "Editors", "Administrators"]
b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
seen = set()
for k in range(nkeys):
    while True:
        prefix = "mb_" + "".join(rnd.choice(b64) for _ in range(4))
        if prefix not in seen:
            seen.add(prefix); break
    fp = os.urandom(16)
    first = (now_day - 400) * 86400 * 10**6
    last = now_day * 86400 * 10**6
    kid = c.execute("INSERT INTO keys(fingerprint, prefix, calls, first_seen, last_seen)"
                    " VALUES(?, ?, 0, ?, ?) RETURNING id", (fp, prefix, first, last)).fetchone()[0]
    c.execute("INSERT INTO key_inventory(store, ref, name, grp, created, prefix, key_id, synced)"
              " VALUES('metabase', ?, ?, ?, '2025-06-01T00:00:00Z', ?, ?, 0)",
              (str(k + 1), "key-%d" % k, groups[k % 3], prefix, kid))
    mine = rnd.sample(ep_ids[:20], neps)
    rows = []
    for d in range(ndays):
        day = now_day - d
        for e in mine:
            n = rnd.randint(1, 50)
            rows.append((kid, day, e, n, n, 0, day * 86400 * 10**6, day * 86400 * 10**6 + 1))
    c.executemany("INSERT INTO key_endpoint_days VALUES(?,?,?,?,?,?,?,?)", rows)
c.commit()
PY
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
SQL="SELECT key_id, endpoint_id, sum(calls), sum(ok), sum(denied), max(last_seen) FROM key_endpoint_days WHERE day >= $(( $(date +%s) / 86400 - DAYS )) GROUP BY key_id, endpoint_id;"
ref=() rv=() rvs=()
for ((i = 0; i < RUNS; i++)); do
  ref+=("$(t sqlite3 "$W/kw.db" "$SQL")")
  rv+=("$(t "$KEYWATCH" --config "$W/kw.yaml" review --since -${DAYS}d --format json --no-save)")
  rvs+=("$(t "$KEYWATCH" --config "$W/kw.yaml" review --since -${DAYS}d --format json)")
done
R=$(printf '%s\n' "${ref[@]}" | med) V=$(printf '%s\n' "${rv[@]}" | med) S=$(printf '%s\n' "${rvs[@]}" | med)
"$KEYWATCH" --config "$W/kw.yaml" review --since -${DAYS}d --format json --no-save >"$W/r.json"
python3 - "$W/r.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("# review: %d keys, findings %s" % (len(j["keys"]), j["summary"]["findings"]))
PY
printf '%-44s %8s\n' "$KEYS keys x $DAYS days x $EPS endpoints ($RUNS runs)" "median"
printf '%-44s %6d ms\n' "reference: sqlite3 sums the rollups" "$R"
printf '%-44s %6d ms  (%.1fx the reference)\n' "keywatch review --no-save" "$V" "$(echo "$V / $R" | bc -l)"
printf '%-44s %6d ms\n' "keywatch review (compared and stored)" "$S"
[ "$S" -lt 5000 ] && echo "target (under 5 s): met" || echo "target (under 5 s): NOT met"
