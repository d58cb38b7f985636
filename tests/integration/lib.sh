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

# ---------------------------------------------------------------------------------------
# Helpers for the `keywatch run` tests (test_run_*.sh): a real nginx, wrk, reference
# counts from nginx's own logs.
#
#   kw_make_keys N FILE       N random Metabase-style keys (distinct 7-char prefixes)
#   kw_nginx_prologue DIR     print the top of an nginx.conf whose paths are all under DIR
#                             (pid, temp paths, log_formats `keyed` and `keyed_ms`)
#   kw_nginx_up DIR WRITER    pick NGX_PORT, run WRITER (a function that writes
#                             DIR/nginx.conf using $NGX_PORT), start nginx, wait for the port
#                             (3 tries); sets NGX_PID; 1 if nginx did not come up
#   kw_wrk_start NAME URL ARGS...   wrk in the background with bench/wrk_keys.lua; wrk's
#                             options come from $WRK_OPTS (default -t1 -c4 -d10s); ARGS go
#                             to the script (KEYS_FILE PREFIX DELAY_MS ...); sets KW_WRK_PID
#   kw_reap PID...            wait for background processes that end by themselves (wrk
#                             -d) and forget them (a reaped pid may be reused)
#   kw_run_start NAME ARGS... `keywatch ARGS...` in the background, stderr appended to
#                             $T/out/NAME.err; sets KW_RUN_PID
#   kw_run_stop [SIGNAL]      send SIGNAL (TERM) to KW_RUN_PID, wait up to 15 s (then KILL);
#                             sets KW_RUN_RC (exit status; 128+n when killed by signal n)
#   kw_calls_total DB         calls stored: sum over keys --json (empty if unreadable)
#   kw_wait_calls DB WANT SECS   wait until calls stored >= WANT with no backlog, or until
#                             calls stopped growing for 3 s; 1 after SECS
#   kw_ref_count LOG...       lines in nginx logs (.gz read with zcat)
#   kw_check_calls LABEL DB LOG...   compare what keywatch stored with nginx's own logs
#                             (see the python below); env KW_ALLOW_MISSING: a file of paths
#                             that may be missing (lines nginx wrote that no file kept)
#   kw_status_sum DB FIELD    sum of FIELD over the sources of status --json
#   kw_paths_missing REF PREFIX FILE...   paths (request targets) of REF's lines that start
#                             with PREFIX and are in none of FILEs (e.g. the lines logrotate's
#                             copytruncate itself lost: written between its copy and truncate)
#   kw_paths_of FILE...       the paths of every line of FILEs (.gz read with zcat)
# ---------------------------------------------------------------------------------------
KW_WRK_LUA=${KW_WRK_LUA:-$KW_SOURCE_DIR/bench/wrk_keys.lua}
NGINX=${NGINX:-/usr/sbin/nginx}

kw_make_keys() {
  python3 - "$1" > "$2" <<'EOF'
import base64, os, sys
seen, n = {}, int(sys.argv[1])
while len(seen) < n:
    k = "mb_" + base64.b64encode(os.urandom(32)).decode()   # 'mb_' + 43 chars + '='
    seen.setdefault(k[:7], k)
for p in sorted(seen):
    print(seen[p])
EOF
}

kw_nginx_prologue() {
  local dir=$1
  mkdir -p "$dir/tmp"
  [ "$(id -u)" = 0 ] && echo "user root;"
  cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  default_type application/json;
  server_tokens off;
  log_format keyed '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" "\$http_x_api_key" \$request_time';
  log_format keyed_ms '\$remote_addr [\$msec] "\$request" \$status \$body_bytes_sent "\$http_user_agent" "\$http_x_api_key" \$request_time';
EOF
}

kw_nginx_up() {
  local dir=$1 writer=$2 try
  NGX_PID=""
  for try in 1 2 3; do
    NGX_PORT=$(kw_free_port)
    "$writer"
    kw_spawn_bg "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
    NGX_PID=$KW_SPAWNED
    if kw_wait_port "$NGX_PORT" 10 "$NGX_PID"; then
      return 0
    fi
    kw_stop_pid "$NGX_PID"
    NGX_PID=""
  done
  echo "# nginx did not start: $(tail -3 "$dir/error.log" 2>/dev/null)" >&2
  return 1
}

KW_WRK_PID=""
kw_wrk_start() {
  local name=$1 url=$2
  shift 2
  # shellcheck disable=SC2086 # WRK_OPTS is a list of options
  kw_spawn_bg wrk ${WRK_OPTS:--t1 -c4 -d10s} --timeout 5s -s "$KW_WRK_LUA" "$url" -- "$@" \
    >"$T/out/$name.wrk" 2>&1
  KW_WRK_PID=$KW_SPAWNED
}

kw_reap() { # PID...: wait for each (they end by themselves) and forget them
  local pid p rest
  for pid in "$@"; do
    wait "$pid" 2>/dev/null
    rest=()
    for p in "${KW_PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
    KW_PIDS=("${rest[@]}")
  done
  return 0
}

KW_RUN_PID=""
kw_run_start() {
  local name=$1
  shift
  KW_NRUN=$((KW_NRUN + 1))
  kw_spawn_bg "$KEYWATCH" "$@" 2>>"$T/out/$name.err" >>"$T/out/$name.out" </dev/null
  KW_RUN_PID=$KW_SPAWNED
}

kw_run_stop() {
  local sig=${1:-TERM} pid=$KW_RUN_PID i p rest=()
  KW_RUN_RC=""
  [ -n "$pid" ] || return 0
  { # stderr off: bash's "Killed" job notice for a SIGKILLed child is expected noise
    kill -"$sig" "$pid"
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" || break
      sleep 0.1
    done
    if kill -0 "$pid"; then
      echo "# keywatch (pid $pid) still running 15 s after SIG$sig: killing it" >&3
      kill -KILL "$pid"
    fi
    wait "$pid"
    KW_RUN_RC=$?
  } 3>&2 2>/dev/null
  for p in "${KW_PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
  KW_PIDS=("${rest[@]}")
  KW_RUN_PID=""
}

kw_calls_total() { # the sum over keys --json (cheap: per-key counters), anonymous included
  "$KEYWATCH" --db "$1" keys --json 2>/dev/null |
    python3 -c 'import json, sys; print(sum(k["calls"] for k in json.load(sys.stdin)))' 2>/dev/null
}

kw_status_sum() {
  "$KEYWATCH" --db "$1" status --json 2>/dev/null |
    python3 -c 'import json, sys; print(sum(s.get(sys.argv[1]) or 0 for s in json.load(sys.stdin)["sources"]))' "$2" 2>/dev/null
}

kw_wait_calls() {
  local db=$1 want=$2 secs=$3 deadline n last="" since=$SECONDS backlog
  deadline=$((SECONDS + secs))
  while [ "$SECONDS" -le "$deadline" ]; do
    n=$(kw_calls_total "$db")
    backlog=$(kw_status_sum "$db" backlog)
    if [ -n "$n" ] && [ "$n" -ge "$want" ] && [ "${backlog:-1}" = 0 ]; then
      return 0
    fi
    if [ "$n" != "$last" ]; then
      last=$n since=$SECONDS
    elif [ $((SECONDS - since)) -ge 3 ] && [ "${backlog:-1}" = 0 ]; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

kw_ref_count() {
  local f n=0
  for f in "$@"; do
    [ -e "$f" ] || continue
    n=$((n + $(zcat -f "$f" | wc -l)))
  done
  echo "$n"
}

# kw_check_calls LABEL DB LOG...: reads keys --json, calls --json and nginx's logs (keyed
# or keyed_ms: the request is the first quoted field, the key the second-to-last) and asserts
#   - the reference itself is sound (every path once: wrk_keys.lua makes paths unique)
#   - no call stored twice (a path at most once in calls)
#   - no call lost (every logged path stored; except KW_ALLOW_MISSING's)
#   - nothing invented (every stored path is in the logs)
#   - per key (7-char display prefix) keys --json calls == lines of that key in the logs
#   - anonymous calls == lines without a key
kw_check_calls() {
  local label=$1 db=$2 line
  shift 2
  "$KEYWATCH" --db "$db" keys --json >"$T/out/check-keys.json" 2>"$T/out/check-keys.err"
  "$KEYWATCH" --db "$db" calls --json --limit 0 >"$T/out/check-calls.json" 2>"$T/out/check-calls.err"
  while IFS= read -r line; do
    case $line in
    PASS\ *) ok "$label: ${line#PASS }" ;;
    FAIL\ *) fail "$label: ${line#FAIL }" ;;
    *) echo "# $line" ;;
    esac
  done < <(python3 - "$T/out/check-keys.json" "$T/out/check-calls.json" "${KW_ALLOW_MISSING:-}" "$@" <<'EOF' 2>&1
import collections, gzip, json, sys
keys_f, calls_f, allow_f, logs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def say(ok, msg): print(("PASS " if ok else "FAIL ") + msg)
ref_paths = collections.Counter()
ref_key = {}                 # path -> 7-char prefix or None
ref_by_key = collections.Counter()
for f in logs:
    op = gzip.open if f.endswith(".gz") else open
    try:
        fh = op(f, "rt", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        continue
    with fh:
        for line in fh:
            parts = line.rstrip("\n").split('"')
            if len(parts) < 5:
                print("unparsable reference line in %s: %r" % (f, line[:120])); continue
            req = parts[1].split(" ")
            path = req[1] if len(req) > 1 else parts[1]
            key = parts[-2]
            p = None if key in ("", "-") else key[:7]
            ref_paths[path] += 1
            ref_key[path] = p
allow = set()
if allow_f:
    allow = set(l.strip() for l in open(allow_f) if l.strip())
try:
    keys = json.load(open(keys_f))
    calls = json.load(open(calls_f))
except Exception as e:
    say(False, "keys/calls --json unreadable: %s" % e); sys.exit(0)
got = collections.Counter(c["path"] for c in calls)
ref_dups = sum(1 for p, n in ref_paths.items() if n > 1)
say(ref_dups == 0, "reference: every logged path is unique (%d lines, %d repeated paths)"
    % (sum(ref_paths.values()), ref_dups))
dups = [p for p, n in got.items() if n > 1]
say(not dups, "no call stored twice (%d rows, %d distinct paths; repeated: %s)"
    % (len(calls), len(got), dups[:5]))
missing = [p for p in ref_paths if p not in got]
missing_bad = [p for p in missing if p not in allow]
say(not missing_bad, "no call lost (%d of %d logged calls missing%s; e.g. %s)"
    % (len(missing_bad), len(ref_paths),
       ", %d more allowed (KW_ALLOW_MISSING)" % (len(missing) - len(missing_bad)) if len(missing) != len(missing_bad) else "",
       sorted(missing_bad)[:5]))
extra = [p for p in got if p not in ref_paths]
say(not extra, "every stored call is in nginx's log (%d not: %s)" % (len(extra), extra[:5]))
for p in missing:
    if p in allow:
        del ref_paths[p]
want = collections.Counter(ref_key[p] for p in ref_paths)
have = collections.Counter()
for k in keys:
    have[k["prefix"]] += k["calls"]
bad = {str(p): (have.get(p, 0), want.get(p, 0)) for p in set(want) | set(have)
       if have.get(p, 0) != want.get(p, 0)}
nk = len([p for p in want if p is not None])
say(not bad, "calls per key (keys --json) == nginx's count per key, %d keys, %d calls, %d anonymous%s"
    % (nk, sum(want.values()), want.get(None, 0),
       "" if not bad else "; prefix: (stored, nginx) " + json.dumps(dict(list(bad.items())[:8]))))
EOF
)
}

kw_paths_of() {
  local f
  for f in "$@"; do
    [ -e "$f" ] && zcat -f "$f"
  done | awk -F'"' '{split($2, r, " "); print r[2]}'
}

kw_paths_missing() {
  local ref=$1 prefix=$2
  shift 2
  kw_paths_of "$@" | sort -u >"$T/out/paths-kept.txt"
  kw_paths_of "$ref" | awk -v p="$prefix" 'index($0, p) == 1' | sort -u |
    comm -23 - "$T/out/paths-kept.txt"
}
