#!/usr/bin/env bash
# Detection quality of the default rule pack, on the shared generator's traffic:
# recall over incident traffic (5 seeds, 1M lines each) and false positives per 100k calls
# on quiet traffic (2 seeds, 500k lines each, --no-incidents). Data under bench/data/detect.
# Usage: bench/detect.sh   (KEYWATCH=path/to/keywatch to use another build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data="$here/data/detect"
mkdir -p "$data"
kw=${KEYWATCH:-}
if [ -z "$kw" ]; then
  cmake -S "$here/.." -B "$here/data/build" -DCMAKE_BUILD_TYPE=Release -DKW_TESTS=OFF >/dev/null
  cmake --build "$here/data/build" -j"$(nproc)" >/dev/null
  kw="$here/data/build/keywatch"
fi
gen() { # name seed lines [--no-incidents]
  [ -f "$data/$1.log" ] || python3 "$here/gen_access_log.py" --lines "$3" --seed "$2" \
    --format combined --out-base "$data/$1" --quiet "${@:4}"
}
status=0
for s in 1 2 3 4 5; do gen "s$s" "$s" 1000000; done
for q in 1 2; do gen "q$q" "$q" 500000 --no-incidents; done
for name in s1 s2 s3 s4 s5 q1 q2; do
  rm -f "$data/$name.db"*
  KEYWATCH_SECRET=detect-bench-secret-0123456789abcdef "$kw" ingest -q --db "$data/$name.db" \
    "$data/$name.log"
  printf '%-3s ' "$name"
  python3 "$here/detect.py" "$data/$name.truth.json" "$data/$name.db" | head -1 || status=1
done
exit $status
