#!/usr/bin/env bash
# Runs the whole test suite twice: a normal build, then an ASan+UBSan build.
# Unit tests (cmocka) and integration tests (real nginx, sqlite3, curl) run through ctest.
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

run() {
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  (cd "$dir" && ctest --output-on-failure -j"$jobs" "${CTEST_ARGS[@]}")
}

CTEST_ARGS=("$@")
echo "== release build"
run build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== ASan + UBSan build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DKW_SANITIZE=ON
