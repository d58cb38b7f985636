#!/usr/bin/env bash
# bench/run.sh — keywatch ingest speed next to the tools a user would otherwise reach for,
# in the same run, on the same input (see bench/README.md).
#
# usage: bench/run.sh [--lines N] [--runs R]      (defaults: 1000000 lines, 3 runs)
# env:   KEYWATCH   a keywatch binary to measure (default: a Release build made here, in
#                   data/build)
#        BENCH_TMP  where the per-run databases go (default: a mktemp -d under $TMPDIR)
#
# Everything generated stays under bench/data/ (git-ignored): the inputs
# data/access_N.{log,jsonl,csv} (gen_access_log.py --seed 1), the build, and
# data/results/N/ (per-run timings, tool outputs, summary.md).
#
# Each measurement runs R times; the table shows the median wall time, the CPU time
# (user+sys) and the peak RSS of that median run.  Wall time is taken with bash's
# EPOCHREALTIME around `/usr/bin/time -f '%e %U %S %M'`, which gives CPU and peak RSS.
# The page cache is warm (inputs are read once before measuring).  Every database is
# created in a fresh, empty directory.
set -euo pipefail

LINES=1000000
RUNS=3
while [ $# -gt 0 ]; do
  case $1 in
  --lines) LINES=$2; shift 2 ;;
  --lines=*) LINES=${1#*=}; shift ;;
  --runs) RUNS=$2; shift 2 ;;
  --runs=*) RUNS=${1#*=}; shift ;;
  -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case $LINES in '' | *[!0-9]*) echo "run.sh: --lines needs a number" >&2; exit 2 ;; esac
case $RUNS in '' | *[!0-9]* | 0) echo "run.sh: --runs needs a number > 0" >&2; exit 2 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DATA=$HERE/data
cd "$HERE"

# ---------------------------------------------------------------- tools
missing=()
for pair in python3:python3 sqlite3:sqlite3 goaccess:goaccess /usr/bin/time:time cmake:cmake; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing tools; install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi

# ---------------------------------------------------------------- inputs
mkdir -p "$DATA"
BASE=$DATA/access_$LINES
LOG=$BASE.log JSONL=$BASE.jsonl CSV=$BASE.csv
if [ ! -s "$LOG" ] || [ ! -s "$JSONL" ] || [ ! -s "$CSV" ]; then
  echo "generating $LINES lines (seed 1) into data/" >&2
  python3 gen_access_log.py --lines "$LINES" --seed 1 --out-base "$BASE" --keys-out "$BASE.keys" --quiet
fi
NL=$(wc -l < "$LOG")
[ "$NL" = "$LINES" ] || { echo "run.sh: $LOG has $NL lines, expected $LINES (delete data/ and rerun)" >&2; exit 1; }

# ---------------------------------------------------------------- keywatch
if [ -z "${KEYWATCH:-}" ]; then
  echo "building keywatch (Release) in data/build" >&2
  cmake -S "$ROOT" -B "$DATA/build" -DCMAKE_BUILD_TYPE=Release -DKW_TESTS=OFF >/dev/null
  cmake --build "$DATA/build" --target keywatch -j"$(nproc)" >/dev/null
  KEYWATCH=$DATA/build/keywatch
fi
[ -x "$KEYWATCH" ] || { echo "run.sh: $KEYWATCH is not executable" >&2; exit 1; }

RES=$DATA/results/$LINES
rm -rf "$RES"
mkdir -p "$RES"
WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/kw-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# a fixed secret: no secret file to create, the same fingerprints every run
export KEYWATCH_SECRET=bench-secret-0123456789abcdef0123456789abcdef
unset KEYWATCH_CONFIG

cat > "$RES/import.sql" <<EOF
CREATE TABLE calls(ts_epoch INTEGER NOT NULL, remote_addr TEXT, method TEXT, uri TEXT,
  protocol TEXT, status INTEGER, body_bytes_sent INTEGER, referer TEXT, user_agent TEXT,
  api_key TEXT, request_time REAL);
BEGIN;
.import --csv $CSV calls
COMMIT;
EOF
{ cat "$RES/import.sql"; echo "CREATE INDEX calls_key_ts ON calls(api_key, ts_epoch);"; } > "$RES/import_index.sql"
GA_FMT='%h %^[%d:%t %^] "%r" %s %b "%R" "%u" "%^" %T'
# the report's format follows the -o file's extension (.json); --output-format=json would
# print to stdout instead
GA_OPTS=(--no-global-config --date-format=%d/%b/%Y --time-format=%T --no-progress
         --no-parsing-spinner --log-format="$GA_FMT")

# ---------------------------------------------------------------- measuring
# measure NAME INPUT CMD...   (CMD runs in a fresh empty dir $RUNDIR, its stdout kept in
# $RES/NAME.out of the last run, stderr in $RES/NAME.err)
: > "$RES/runs.tsv"
measure() {
  local name=$1 input=$2 i t0 t1
  shift 2
  echo "== $name: $*" >&2
  for ((i = 1; i <= RUNS; i++)); do
    RUNDIR=$WORK/$name.$i
    mkdir -p "$RUNDIR"
    export RUNDIR
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" > "$RES/$name.out" 2> "$RES/$name.err" || {
      echo "run.sh: $name failed (exit $?); see $RES/$name.err" >&2
      exit 1
    }
    t1=$EPOCHREALTIME
    # name, run, wall s, cpu s (user+sys), peak RSS KiB, input lines, input bytes
    tail -1 "$WORK/time" | awk -v n="$name" -v r="$i" -v t0="$t0" -v t1="$t1" \
      -v lines="$LINES" -v bytes="$(stat -c %s "$input")" \
      '{printf "%s\t%d\t%.4f\t%.2f\t%d\t%d\t%d\n", n, r, t1 - t0, $2 + $3, $4, lines, bytes}' >> "$RES/runs.tsv"
    rm -rf "$RUNDIR"
  done
}

cat "$LOG" "$JSONL" "$CSV" > /dev/null # warm the page cache

# Parse, fingerprint, store (the ingest targets); then the same with the default rules.
measure keywatch_keyed "$LOG" \
  sh -c 'exec "$0" ingest --no-rules --db "$RUNDIR/kw.db" --format keyed -q --json "$1"' "$KEYWATCH" "$LOG"
measure keywatch_nginx_json "$JSONL" \
  sh -c 'exec "$0" ingest --no-rules --db "$RUNDIR/kw.db" --format nginx-json -q --json "$1"' "$KEYWATCH" "$JSONL"
measure keywatch_auto "$LOG" \
  sh -c 'exec "$0" ingest --no-rules --db "$RUNDIR/kw.db" -q --json "$1"' "$KEYWATCH" "$LOG"
measure keywatch_keyed_rules "$LOG" \
  sh -c 'exec "$0" ingest --db "$RUNDIR/kw.db" --format keyed -q --json "$1"' "$KEYWATCH" "$LOG"
measure wc_l "$LOG" wc -l "$LOG"
measure awk_count_per_key "$LOG" awk -F'"' '{c[$8]++} END{for (k in c) n++; print n}' "$LOG"
measure sqlite_import_memory "$CSV" sh -c 'exec sqlite3 :memory: < "$0"' "$RES/import.sql"
measure sqlite_import_file "$CSV" sh -c 'exec sqlite3 "$RUNDIR/calls.db" < "$0"' "$RES/import.sql"
measure sqlite_import_file_index "$CSV" sh -c 'exec sqlite3 "$RUNDIR/calls.db" < "$0"' "$RES/import_index.sql"
measure goaccess_json "$LOG" sh -c 'exec goaccess "$@" -o "$RUNDIR/report.json"' goaccess "$LOG" "${GA_OPTS[@]}"

# ---------------------------------------------------------------- what the tools produced
# (outside the timings: each tool must really have read every line)
{
  echo "input: $LOG ($LINES lines, $(stat -c %s "$LOG") bytes), $JSONL ($(stat -c %s "$JSONL") bytes), $CSV ($(stat -c %s "$CSV") bytes)"
  for n in keywatch_keyed keywatch_nginx_json keywatch_auto keywatch_keyed_rules; do
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print("%s: lines %d, calls %d, keyed %d, malformed %d, keys %d" % (sys.argv[2], j["lines"], j["calls"], j["keyed_calls"], j["malformed"], j["keys"]))
if j["calls"] != int(sys.argv[3]) or j["malformed"] != 0:
    print("  WARNING: keywatch did not store every line as a call")' "$RES/$n.out" "$n" "$LINES"
  done
  echo "awk distinct X-API-Key values (incl. \"-\"): $(cat "$RES/awk_count_per_key.out")"
  sqlite3 "$WORK/check.db" < "$RES/import.sql"
  echo "sqlite3 rows, distinct keys: $(sqlite3 "$WORK/check.db" "SELECT count(*), count(DISTINCT api_key) FROM calls")"
  echo "sqlite3 database after import: $(stat -c %s "$WORK/check.db") bytes"
  rm -f "$WORK/check.db"
  mkdir -p "$WORK/kwcheck"
  "$KEYWATCH" ingest --db "$WORK/kwcheck/kw.db" --format keyed -q "$LOG"
  echo "keywatch database after ingest: $(du -cb "$WORK"/kwcheck/kw.db* | tail -1 | cut -f1) bytes (with -wal/-shm)"
  echo "sha256 of the keyed log: $(sha256sum "$LOG" | cut -c1-64)"
  rm -rf "$WORK/kwcheck"
  goaccess "$LOG" "${GA_OPTS[@]}" -o "$WORK/report.json" 2>/dev/null
  python3 -c 'import json, sys
g = json.load(open(sys.argv[1]))["general"]
print("goaccess: total %d, valid %d, failed %d" % (g["total_requests"], g["valid_requests"], g["failed_requests"]))
if g["valid_requests"] != int(sys.argv[2]):
    print("  WARNING: goaccess did not parse every line")' "$WORK/report.json" "$LINES"
} > "$RES/checks.txt" 2>&1

# ---------------------------------------------------------------- table
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) CPU x $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  echo "keywatch: $("$KEYWATCH" --version) ($KEYWATCH); sqlite3 $(sqlite3 --version | cut -d' ' -f1); $(goaccess --version | head -1 | sed 's/ - / /; s/\.$//'); $(python3 --version)"
  echo "command: bench/run.sh --lines $LINES --runs $RUNS"
  echo
  python3 - "$RES/runs.tsv" <<'EOF'
import statistics, sys
from collections import OrderedDict
runs = OrderedDict()
for line in open(sys.argv[1]):
    name, r, wall, cpu, rss, lines, nbytes = line.rstrip("\n").split("\t")
    runs.setdefault(name, []).append((float(wall), float(cpu), int(rss), int(lines), int(nbytes)))
med = {}
print("| tool | wall s (median of %d) | lines/s | MB/s | CPU s | peak RSS MiB |" % len(next(iter(runs.values()))))
print("|---|---|---|---|---|---|")
for name, rs in runs.items():
    rs = sorted(rs)
    m = rs[(len(rs) - 1) // 2] if len(rs) % 2 else rs[len(rs) // 2 - 1]  # the median run (lower one if even)
    wall = statistics.median(r[0] for r in rs)
    med[name] = wall
    print("| %s | %.3f | %s | %.0f | %.2f | %.1f |" % (
        name, wall, format(int(m[3] / wall), ","), m[4] / 1e6 / wall, m[1], m[2] / 1024))
print()
print("| keywatch run | / sqlite import (file) | / sqlite import + index | / sqlite import (:memory:) | / goaccess |")
print("|---|---|---|---|---|")
for k in ("keywatch_keyed", "keywatch_nginx_json", "keywatch_auto", "keywatch_keyed_rules"):
    if k in med:
        print("| %s | %.2f x | %.2f x | %.2f x | %.2f x |" % (
            k, med[k] / med["sqlite_import_file"], med[k] / med["sqlite_import_file_index"],
            med[k] / med["sqlite_import_memory"], med[k] / med["goaccess_json"]))
print()
print("ratios are wall-time ratios: below 1 x keywatch is faster than the tool, above 1 x slower.")
if "keywatch_keyed_rules" in med:
    print("with the default rules, keyed ingest runs at %.0f %% of its speed without them."
          % (100.0 * med["keywatch_keyed"] / med["keywatch_keyed_rules"]))
EOF
  echo
  cat "$RES/checks.txt"
} > "$RES/summary.md"
cat "$RES/summary.md"
