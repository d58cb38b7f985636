#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) and runs each for a bounded time.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_HARNESS]        (default 45)
#   KW_FUZZ_JOBS=N       harnesses run side by side (default: nproc); wall time is about
#                        ceil(harnesses / N) * SECONDS_PER_HARNESS plus the build
#   KW_FUZZ_ONLY="a b"   run only these harnesses (names as fuzz_keyid, or keyid)
#
# Installs nothing: clang comes from scripts/install-deps.sh.  The build goes to build-fuzz
# (-DKW_FUZZ=ON, clang, ASan + UBSan + libFuzzer, assert() kept).  Each harness first
# replays its regression inputs (tests/fuzz/regressions/<harness>/, one run each), then
# fuzzes from a temporary copy of its seed corpus (tests/fuzz/corpus/<harness>/, never
# written to) with its dictionary (tests/fuzz/<harness>.dict) when there is one.
# Any crash, leak, timeout (-timeout=10) or memory blow-up (-rss_limit_mb=2048) fails the
# harness; the input that did it is kept under build-fuzz/artifacts/<harness>/ and its
# path printed.  Exit status: 0 when every harness passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-45}
jobs=${KW_FUZZ_JOBS:-$(nproc)}
build=build-fuzz
artifacts=$build/artifacts

if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_HARNESS]" >&2
  exit 2
fi
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found (scripts/install-deps.sh installs it)" >&2
  exit 2
fi

harnesses=()
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  if [ -n "${KW_FUZZ_ONLY:-}" ] && ! [[ " $KW_FUZZ_ONLY " =~ \ (fuzz_)?${name#fuzz_}\  ]]; then
    continue
  fi
  harnesses+=("$name")
done
if [ ${#harnesses[@]} -eq 0 ]; then
  echo "fuzz: no harness to run" >&2
  exit 2
fi

echo "== fuzz: building ${harnesses[*]} in $build"
# Debug with -O1: fast enough to fuzz, and the libraries' assert()s stay in.
cmake -S . -B "$build" -DKW_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${harnesses[@]}" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/kw-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Runs one harness; writes its log and a result line "STATUS EXECS COV FT REPRODUCERS…".
run_one() {
  local h=$1 bin=$PWD/$build/$1 dir=$work/$1 status=pass repro=()
  mkdir -p "$dir/corpus" "$dir/out" "$artifacts/$h"
  if [ -d "tests/fuzz/regressions/$h" ]; then
    local f
    for f in "tests/fuzz/regressions/$h"/*; do
      [ -f "$f" ] || continue
      if ! "$bin" -artifact_prefix="$dir/replay-" "$f" >>"$dir/regressions.log" 2>&1; then
        status=fail
        repro+=("$f")
      fi
    done
  fi
  if [ -d "tests/fuzz/corpus/$h" ]; then
    cp -R "tests/fuzz/corpus/$h/." "$dir/corpus/"
  fi
  local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$dir/out/")
  if [ -f "tests/fuzz/$h.dict" ]; then
    args+=(-dict="$PWD/tests/fuzz/$h.dict")
  fi
  if ! (cd "$dir" && "$bin" "${args[@]}" corpus) >"$dir/fuzz.log" 2>&1; then
    status=fail
  fi
  local a
  for a in "$dir"/out/*; do
    [ -f "$a" ] || continue
    status=fail
    cp "$a" "$artifacts/$h/"
    repro+=("$artifacts/$h/$(basename "$a")")
  done
  local execs cov ft
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1) || true
  cov=$( (grep -o 'cov: [0-9]*' "$dir/fuzz.log" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$dir/fuzz.log" || true) | tail -1 | cut -d' ' -f2)
  cp "$dir/fuzz.log" "$artifacts/$h/last.log"
  echo "$status ${execs:-0} ${cov:-?} ${ft:-?} ${repro[*]}" >"$dir/result"
}

echo "== fuzz: ${#harnesses[@]} harnesses, ${secs}s each, $jobs at a time"
running=0
for h in "${harnesses[@]}"; do
  run_one "$h" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

passed=0
failed=0
for h in "${harnesses[@]}"; do
  status=fail execs=0 cov=? ft=? repro=
  read -r status execs cov ft repro <"$work/$h/result" || status=fail
  printf '%-14s %-4s %12s execs  cov: %-6s ft: %s\n' "$h" "$status" "${execs:-0}" \
    "${cov:-?}" "${ft:-?}"
  if [ "$status" = pass ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    if ! grep -h -m3 -E 'ERROR: |runtime error|SUMMARY|^fuzz_[a-z]+: ' "$work/$h/fuzz.log" \
      "$work/$h/regressions.log" 2>/dev/null | sed 's/^/    /'; then
      tail -n3 "$work/$h/fuzz.log" | sed 's/^/    /'
    fi
    for r in $repro; do
      echo "    reproducer: $r   (replay: $build/$h $r)"
    done
    echo "    log: $artifacts/$h/last.log"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
