#!/usr/bin/env bash
# bench/api_bench.sh — HTTP API answer times over 10 million stored calls.
#
# usage: bench/api_bench.sh [--copies N] [--requests R]   (defaults: 10 copies, 200 requests)
# env:   KEYWATCH   the binary (default: build/keywatch, built if missing)
#
# Generates 1M lines of keyed traffic over the last 7 days (bench/gen_access_log.py, the
# shared generator, with incidents), ingests them N times (rules on the first pass, so
# alerts exist; --no-rules after) = N million calls, stores a permission review (key pages
# show each key's row of it), then runs `keywatch serve` and times,
# from a Python client on loopback, R requests of each kind:
#   alerts       GET /api/v1/alerts?limit=50
#   alerts open  GET /api/v1/alerts?state=open&severity=high&limit=50
#   key (top)    GET /api/v1/keys/PREFIX?hours=48 for the key with the most calls
#   key (median) the same for the median key
#   calls        GET /api/v1/calls?key=PREFIX&limit=100 (the top key's audit trail)
# Reference in the same run: what the key page would cost without the hourly rollup (calls
# per hour of the top key over 48 h counted from the raw calls by Python's sqlite3), R times.
# Prints p50/p95/max per kind.  Target (issue 8): alert list and key page p95 < 100 ms.
set -euo pipefail
COPIES=10 REQS=200
while [ $# -gt 0 ]; do
  case $1 in
  --copies) COPIES=$2; shift 2 ;;
  --requests) REQS=$2; shift 2 ;;
  -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "api_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${KEYWATCH:-}" ]; then
  KEYWATCH=$ROOT/build/keywatch
  [ -x "$KEYWATCH" ] || { cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$ROOT/build" -j2 --target keywatch >/dev/null; }
fi
W=${BENCH_TMP:-$(mktemp -d)}
SERVE=""
trap '[ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; wait 2>/dev/null; [ -z "${BENCH_TMP:-}" ] && rm -rf "$W"' EXIT
export KEYWATCH_SECRET=api-bench-secret-0123456789abcdef0123456789
START=$(date -u -d "7 days ago" +%Y-%m-%dT00:00:00)
echo "# generating 1,000,000 lines from $START (7 days) ..."
python3 "$ROOT/bench/gen_access_log.py" --lines 1000000 --days 7 --start "$START" --seed 1 \
  --format combined --out-base "$W/access" --quiet
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'db: %s\nhttp: {listen: "127.0.0.1:%s"}\n' "$W/kw.db" "$PORT" >"$W/kw.yaml"
for ((i = 0; i < COPIES; i++)); do
  rules=""
  [ $i -gt 0 ] && rules=--no-rules
  s=$(date +%s%N)
  "$KEYWATCH" --config "$W/kw.yaml" ingest -q $rules --format keyed "$W/access.log" >/dev/null
  echo "# ingest $((i + 1))/$COPIES: $(( ($(date +%s%N) - s) / 1000000 )) ms"
done
# A stored review: the key page shows each key's row of it.
"$KEYWATCH" --config "$W/kw.yaml" review --format json --output /dev/null 2>/dev/null
"$KEYWATCH" --config "$W/kw.yaml" serve 2>"$W/serve.err" &
SERVE=$!
for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
python3 - "$PORT" "$REQS" "$W/kw.db" <<'PY'
import http.client, json, sqlite3, statistics, sys, time
port, reqs, db = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def get(path):
    t = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse(); body = r.read()
    if r.status != 200:
        raise SystemExit("%s: HTTP %d %s" % (path, r.status, body[:200]))
    return (time.perf_counter() - t) * 1000, body
calls = sqlite3.connect(db).execute("SELECT count(*) FROM calls").fetchone()[0]
keys = json.loads(get("/api/v1/keys?limit=500")[1])["items"]
top, median = keys[0], keys[len(keys) // 2]
alerts = json.loads(get("/api/v1/alerts?limit=50")[1])["items"]
kinds = [("alerts", "/api/v1/alerts?limit=50"),
         ("alerts open", "/api/v1/alerts?state=open&severity=high&limit=50"),
         ("key (top, %s calls)" % top["calls"], "/api/v1/keys/%s?hours=48" % top["fingerprint"]),
         ("key (median, %s calls)" % median["calls"], "/api/v1/keys/%s?hours=48" % median["fingerprint"]),
         ("calls (top key, 100)", "/api/v1/calls?key=%s&limit=100" % top["fingerprint"])]
def stats(v):
    v = sorted(v)
    return statistics.median(v), v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))], v[-1]
print("%d calls stored, %d alerts on the first page; %d requests per kind" % (calls, len(alerts), reqs))
print("%-34s %9s %9s %9s" % ("", "p50 ms", "p95 ms", "max ms"))
res = {}
for name, path in kinds:
    get(path)  # warm
    t = [get(path)[0] for _ in range(reqs)]
    res[name] = stats(t)
    print("%-34s %9.1f %9.1f %9.1f" % ((name,) + res[name]))
ref = sqlite3.connect(db)
kid = ref.execute("SELECT id FROM keys WHERE lower(hex(fingerprint)) = ?", (top["fingerprint"],)).fetchone()[0]
since = (int(time.time()) // 3600 - 47) * 3600 * 10**6
q = ("SELECT ts / 3600000000, count(*), sum(status >= 400 OR status = 0) FROM calls"
     " WHERE key_id = ? AND ts >= ? GROUP BY ts / 3600000000")
t = []
for _ in range(reqs):
    s = time.perf_counter(); ref.execute(q, (kid, since)).fetchall(); t.append((time.perf_counter() - s) * 1000)
print("%-34s %9.1f %9.1f %9.1f" % (("reference: hours from the raw calls",) + stats(t)))
worst = max(res[k][1] for k in res if k.startswith(("alerts", "key")))
print("target: alert list and key page p95 < 100 ms: %s (worst p95 %.1f ms)" % ("met" if worst < 100 else "NOT met", worst))
PY
