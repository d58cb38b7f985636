#!/usr/bin/env bash
# bench/revoke_bench.sh — how fast `keywatch run` revokes a key that a rule decides to revoke.
#
# usage: bench/revoke_bench.sh [--runs N]        (default 20)
# env:   KEYWATCH   the binary (default: build/keywatch, built if missing)
#
# Runs tests/integration/test_revocation.sh with N timed runs: real nginx on 127.0.0.1 in
# front of the key-store emulator acting as Metabase (its API authenticates X-API-Key
# against its live key list), `keywatch run` following nginx's access log, a `match` rule
# with action: revoke.  Each run sends one abusive request with a fresh key, then GETs with
# that key every 5 ms until the store answers 401: the time from sending the abusive
# request to that 401.  The reference, in the same run: the same store revoking a key
# when its admin API is called by hand (DELETE /api/api-key/:id), timed the same way.
# Prints both medians and p90, and what keywatch adds.  Target (issue 6): 1 s median.
set -euo pipefail
RUNS=20
while [ $# -gt 0 ]; do
  case $1 in
  --runs) RUNS=$2; shift 2 ;;
  -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "revoke_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case $RUNS in '' | *[!0-9]* | 0) echo "revoke_bench.sh: --runs needs a number > 0" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${KEYWATCH:-}" ]; then
  KEYWATCH=$ROOT/build/keywatch
  [ -x "$KEYWATCH" ] || { cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$ROOT/build" -j2 --target keywatch >/dev/null; }
fi
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
KEYWATCH=$KEYWATCH KW_SOURCE_DIR=$ROOT KW_RESPONDER_RUNS=$RUNS \
  bash "$ROOT/tests/integration/test_revocation.sh" >"$OUT" 2>&1 || {
  echo "revoke_bench.sh: the end-to-end run failed:" >&2
  grep -E '^FAIL' "$OUT" >&2 || tail -20 "$OUT" >&2
  exit 1
}
python3 - "$OUT" "$RUNS" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
def series(label):
    m = re.search(r"# %s[^:]*: ([0-9 ]+) ms" % re.escape(label), text)
    return [int(x) for x in m.group(1).split()]
kw, ref = series("reaction time"), series("reference")
def p90(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
print("revocation reaction time, %s runs (ms from the abusive request to the store's 401)" % sys.argv[2])
print("%-34s %8s %8s %8s %8s" % ("", "median", "p90", "min", "max"))
print("%-34s %8d %8d %8d %8d" % ("keywatch (rule -> adapter -> 401)", statistics.median(kw), p90(kw), min(kw), max(kw)))
print("%-34s %8d %8d %8d %8d" % ("reference (admin DELETE by hand)", statistics.median(ref), p90(ref), min(ref), max(ref)))
print("keywatch adds %.0f ms (median) over revoking by hand; target: median under 1000 ms: %s"
      % (statistics.median(kw) - statistics.median(ref), "met" if statistics.median(kw) < 1000 else "NOT met"))
PY
