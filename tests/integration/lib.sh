# shellcheck shell=bash
# lib.sh — shared helpers for the integration tests (sourced, not run).
#
# Every test script:   . "$(dirname "$0")/lib.sh"  ...  kw_finish
# Environment (set by ctest, see CMakeLists.txt):
#   KEYWATCH       the keywatch binary under test (required)
#   KW_SOURCE_DIR  the repository root (defaults to two levels above this file)
#   KW_KEEP_TMP=1  keep the temp dir for a post-mortem (its path is printed)
#
# What it gives:
#   $T                    a private temp dir (mktemp -d), removed at exit
#   kw_spawn_bg CMD...    start CMD in the background, remember its pid (killed at exit)
#   kw_stop_pid PID       TERM, wait up to 5 s, then KILL; reaps it
#   ok MSG / fail MSG     count a passed / failed assertion and say so
#   check MSG CMD...      ok if CMD succeeds, else fail
#   expect_eq MSG ACTUAL EXPECTED
#   kw NAME ARGS...       run "$KEYWATCH ARGS..." (stdin: $KW_STDIN or /dev/null), with output in
#                         $T/out/NAME.out and .err; sets KW_RC, KW_OUT, KW_ERR (paths)
#   kw_free_port          print a free TCP port on 127.0.0.1
#   kw_wait_port PORT [SECS] [PID]   wait (bounded) until 127.0.0.1:PORT accepts; 1 if not
#   json_get FILE EXPR    evaluate python3 EXPR over the JSON document in FILE (bound to j)
#   kw_finish             print "N passed, M failed" and exit non-zero on any failure
#
# No `set -e`: a failed assertion must not stop the script before its summary line.
set -u

if [ -z "${KEYWATCH:-}" ]; then
  echo "KEYWATCH is not set (path to the keywatch binary)" >&2
  exit 2
fi
case "$KEYWATCH" in /*) ;; *) KEYWATCH="$PWD/$KEYWATCH" ;; esac
if [ ! -x "$KEYWATCH" ]; then
  echo "KEYWATCH=$KEYWATCH is not an executable" >&2
  exit 2
fi
KW_SOURCE_DIR=${KW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
command -v python3 >/dev/null 2>&1 || { echo "python3 is required" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/kw-int.XXXXXXXX") || exit 2
mkdir -p "$T/out"
KW_PIDS=()
KW_PASSED=0
KW_FAILED=0
KW_NRUN=0

kw_stop_pid() {
  local pid=$1 i p rest=()
  # forget it first: once reaped, its number may be given to an unrelated process
  for p in "${KW_PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
  KW_PIDS=("${rest[@]}")
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

kw_cleanup() {
  local pid
  for pid in "${KW_PIDS[@]}"; do
    kw_stop_pid "$pid"
  done
  KW_PIDS=()
  if [ "${KW_KEEP_TMP:-0}" = 1 ]; then
    echo "# kept $T" >&2
  else
    rm -rf "$T"
  fi
}
trap kw_cleanup EXIT
trap 'echo "# interrupted" >&2; exit 130' INT TERM HUP

kw_spawn_bg() {
  "$@" &
  KW_SPAWNED=$!
  KW_PIDS+=("$KW_SPAWNED")
}

ok() {
  KW_PASSED=$((KW_PASSED + 1))
  echo "ok - $*"
}

fail() {
  KW_FAILED=$((KW_FAILED + 1))
  echo "FAIL - $*"
}

check() {
  local msg=$1
  shift
  if "$@"; then ok "$msg"; else fail "$msg"; fi
}

expect_eq() {
  if [ "$2" = "$3" ]; then
    ok "$1 ($2)"
  else
    fail "$1: got '$2', expected '$3'"
  fi
}

kw() {
  local name=$1
  shift
  KW_NRUN=$((KW_NRUN + 1))
  KW_OUT="$T/out/$name.out"
  KW_ERR="$T/out/$name.err"
  "$KEYWATCH" "$@" >"$KW_OUT" 2>"$KW_ERR" <"${KW_STDIN:-/dev/null}"
  KW_RC=$?
  # a crash is always a failure, whatever the test expected
  if [ "$KW_RC" -ge 128 ]; then
    fail "keywatch $* died with signal $((KW_RC - 128))"
  fi
  return 0
}

kw_free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

kw_wait_port() {
  local port=$1 secs=${2:-10} pid=${3:-} deadline
  deadline=$((SECONDS + secs))
  while [ "$SECONDS" -le "$deadline" ]; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

json_get() {
  python3 -c 'import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (dict, list)) or v is None else v)' "$1" "$2"
}

is_json() {
  python3 -c 'import json, sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$1" 2>/dev/null
}

kw_finish() {
  echo "$KW_PASSED passed, $KW_FAILED failed"
  [ "$KW_FAILED" -eq 0 ]
  exit $?
}
