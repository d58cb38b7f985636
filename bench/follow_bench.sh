#!/usr/bin/env bash
# bench/follow_bench.sh — `keywatch run` following nginx's access log at nginx's top rate.
#
# usage: bench/follow_bench.sh [--duration S] [--threads T] [--conns C] [--keys K]
#        (defaults: 20 s, 2 wrk threads, 50 connections, 200 keys)
# env:   KEYWATCH   the binary to measure (default: a Release build made in data/build)
#        BENCH_TMP  where nginx's log and the database go (default: mktemp -d under $TMPDIR)
#
# nginx (worker_processes auto, `return 200`, access_log in a format with $msec so that
# every line carries its own write time) on 127.0.0.1, wrk (wrk_keys.lua: every request
# with one of K keys in X-API-Key, 2 % without) as fast as it can for S seconds:
#   1. baseline: nginx + wrk, no keywatch: requests/s;
#   2. the same with `keywatch run --log-format FMT LOG` following the log from its start;
#      every second `keywatch status --json` (lag p50/p99 from each line's $msec to its
#      commit, backlog) and /proc/PID/stat (utime+stime) are sampled.  After the load:
#      lines not yet stored, time until every line is stored, and a check that calls
#      stored == lines in the log.
# Prints a table (also written to data/follow/summary.md; samples.tsv, wrk's reports and
# keywatch's stderr beside it).  Everything runs on loopback; every process started here
# is stopped by its own pid.  Targets (issue 3): keep up with nginx's top rate, lag p99
# under 250 ms, under 25 % of one core.
set -euo pipefail

DUR=20 THREADS=2 CONNS=50 NKEYS=200
while [ $# -gt 0 ]; do
  case $1 in
  --duration) DUR=$2; shift 2 ;;
  --threads) THREADS=$2; shift 2 ;;
  --conns) CONNS=$2; shift 2 ;;
  --keys) NKEYS=$2; shift 2 ;;
  -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "follow_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
for v in "$DUR" "$THREADS" "$CONNS" "$NKEYS"; do
  case $v in '' | *[!0-9]* | 0) echo "follow_bench.sh: options need a number > 0" >&2; exit 2 ;; esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DATA=$HERE/data
NGINX=${NGINX:-/usr/sbin/nginx}
missing=()
[ -x "$NGINX" ] || missing+=(nginx-light)
for pair in wrk:wrk python3:python3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "follow_bench.sh: missing tools; install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi
if [ -z "${KEYWATCH:-}" ]; then
  command -v cmake >/dev/null || { echo "follow_bench.sh: cmake needed to build keywatch (or set KEYWATCH)" >&2; exit 1; }
  echo "building keywatch (Release) in data/build" >&2
  cmake -S "$ROOT" -B "$DATA/build" -DCMAKE_BUILD_TYPE=Release -DKW_TESTS=OFF >/dev/null
  cmake --build "$DATA/build" --target keywatch -j"$(nproc)" >/dev/null
  KEYWATCH=$DATA/build/keywatch
fi
case $KEYWATCH in /*) ;; *) KEYWATCH=$PWD/$KEYWATCH ;; esac
[ -x "$KEYWATCH" ] || { echo "follow_bench.sh: $KEYWATCH is not executable" >&2; exit 1; }

RES=$DATA/follow
rm -rf "$RES"
mkdir -p "$RES"
WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/kw-follow.XXXXXX")
export KEYWATCH_SECRET=bench-secret-0123456789abcdef0123456789abcdef
unset KEYWATCH_CONFIG
HZ=$(getconf CLK_TCK)

NGX_PID="" WRK_PID="" KW_PID="" SAMPLER_PID=""
stop_pid() { # PID SIGNAL: signal, wait up to 10 s, then KILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -"$2" "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$SAMPLER_PID" TERM
  stop_pid "$WRK_PID" INT
  stop_pid "$KW_PID" TERM
  stop_pid "$NGX_PID" QUIT
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

python3 - "$NKEYS" >"$WORK/keys.txt" <<'EOF'
import base64, os, sys
for _ in range(int(sys.argv[1])):
    print("mb_" + base64.b64encode(os.urandom(32)).decode())
EOF

LOG=$WORK/access.log
FMT='$remote_addr [$msec] "$request" $status $body_bytes_sent "$http_user_agent" "$http_x_api_key" $request_time'
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
start_nginx() { # fresh log each time
  local i
  rm -f "$LOG"
  mkdir -p "$WORK/ngx/tmp"
  PORT=$(free_port)
  {
    [ "$(id -u)" = 0 ] && echo "user root;"
    cat <<EOF
worker_processes auto;
daemon off;
pid $WORK/ngx/nginx.pid;
error_log $WORK/ngx/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $WORK/ngx/tmp/body;
  proxy_temp_path $WORK/ngx/tmp/proxy;
  fastcgi_temp_path $WORK/ngx/tmp/fastcgi;
  uwsgi_temp_path $WORK/ngx/tmp/uwsgi;
  scgi_temp_path $WORK/ngx/tmp/scgi;
  default_type application/json;
  server_tokens off;
  keepalive_requests 100000;
  log_format keyed_ms '$FMT';
  access_log $LOG keyed_ms;
  server {
    listen 127.0.0.1:$PORT;
    location / { return 200 '{"ok":true}'; }
  }
}
EOF
  } >"$WORK/ngx/nginx.conf"
  "$NGINX" -p "$WORK/ngx/" -c "$WORK/ngx/nginx.conf" -e "$WORK/ngx/error.log" &
  NGX_PID=$!
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    kill -0 "$NGX_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "follow_bench.sh: nginx did not start: $(tail -3 "$WORK/ngx/error.log")" >&2
  exit 1
}
# utime+stime of a process, in ticks (fields 14 and 15, counted after the ")" of comm)
cpu_ticks() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  set -- $s
  echo $((${12} + ${13}))
}
stime_ticks() { # stime alone (field 15)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  set -- $s
  echo "${13}"
}
nginx_ticks() { # the master and its workers
  local n=0 p
  for p in $NGX_PID $(ps -o pid= --ppid "$NGX_PID" 2>/dev/null); do
    n=$((n + $(cpu_ticks "$p")))
  done
  echo $n
}
run_wrk() { # NAME
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --timeout 5s --latency -s "$HERE/wrk_keys.lua" \
    "http://127.0.0.1:$PORT" -- "$WORK/keys.txt" /api/k/ 0 0 "" 2 >"$RES/$1.wrk" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || true
  WRK_PID=""
}
rps() { awk '/^Requests\/sec/ {print $2}' "$RES/$1.wrk"; }
stats_calls() { # calls stored: the sum of keys --json (per-key counters: cheap at any size)
  "$KEYWATCH" --db "$WORK/kw.db" keys --json 2>/dev/null |
    python3 -c 'import json, sys; print(sum(k["calls"] for k in json.load(sys.stdin)))' 2>/dev/null || echo 0
}

# ---------------------------------------------------------------- 1. baseline
echo "== baseline: nginx + wrk -t$THREADS -c$CONNS -d${DUR}s, no keywatch" >&2
start_nginx
n0=$(nginx_ticks)
t0=$EPOCHREALTIME
run_wrk baseline
t1=$EPOCHREALTIME
n1=$(nginx_ticks)
BASE_RPS=$(rps baseline)
BASE_LINES=$(wc -l <"$LOG")
BASE_NGX_CPU=$(awk -v a="$n0" -v b="$n1" -v t0="$t0" -v t1="$t1" -v hz="$HZ" 'BEGIN{printf "%.0f", 100 * (b - a) / hz / (t1 - t0)}')
stop_pid "$NGX_PID" QUIT
NGX_PID=""
sleep 1

# ---------------------------------------------------------------- 2. with keywatch
echo "== with keywatch run following the log" >&2
start_nginx
"$KEYWATCH" --db "$WORK/kw.db" run --log-format "$FMT" "$LOG" 2>"$RES/keywatch.err" &
KW_PID=$!
for ((i = 0; i < 50; i++)); do
  grep -q 'event=started' "$RES/keywatch.err" 2>/dev/null && break
  kill -0 "$KW_PID" 2>/dev/null || { echo "keywatch did not start:" >&2; cat "$RES/keywatch.err" >&2; exit 1; }
  sleep 0.1
done
# one status sample a second: elapsed s, lines, calls, backlog bytes, lines/s, p50, p99, cpu ticks
(
  start=$EPOCHREALTIME
  for ((i = 0; i < 4 * DUR + 240; i++)); do
    sleep 1
    c=$(cpu_ticks "$KW_PID")
    "$KEYWATCH" --db "$WORK/kw.db" status --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)["sources"][0]
print("%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s" % (sys.argv[1], s["lines"], s["calls"], s["backlog"] or 0,
      s["rate"] or 0, s["lag_p50_ms"], s["lag_p99_ms"], sys.argv[2]))' \
      "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b - a}')" "$c" || true
  done
) >"$RES/samples.tsv" &
SAMPLER_PID=$!
sleep 1.5 # a first idle sample
k0=$(cpu_ticks "$KW_PID")
ks0=$(stime_ticks "$KW_PID")
n0=$(nginx_ticks)
t0=$EPOCHREALTIME
run_wrk keywatch
t1=$EPOCHREALTIME
k1=$(cpu_ticks "$KW_PID")
ks1=$(stime_ticks "$KW_PID")
n1=$(nginx_ticks)
LINES_END=$(wc -l <"$LOG")
CALLS_END=$(stats_calls)
# drain: until every line of the log is stored (bounded: 120 s)
tdrain=""
for ((i = 0; i < 2400; i++)); do
  c=$(stats_calls)
  if [ "$c" -ge "$LINES_END" ]; then tdrain=$EPOCHREALTIME; break; fi
  sleep 0.05
done
k2=$(cpu_ticks "$KW_PID")
t2=$EPOCHREALTIME
sleep 1.2
stop_pid "$SAMPLER_PID" TERM
SAMPLER_PID=""
"$KEYWATCH" --db "$WORK/kw.db" status --json >"$RES/status.json" 2>/dev/null || true
kill -TERM "$KW_PID"
for ((i = 0; i < 150; i++)); do kill -0 "$KW_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$KW_PID" 2>/dev/null && kill -KILL "$KW_PID"
KW_RC=0
wait "$KW_PID" || KW_RC=$?
KW_PID=""
CALLS=$(stats_calls)
LINES=$(wc -l <"$LOG")
KW_RPS=$(rps keywatch)
stop_pid "$NGX_PID" QUIT
NGX_PID=""

# ---------------------------------------------------------------- report
python3 - "$RES" <<EOF
import statistics, sys
res = sys.argv[1]
dur, hz = $DUR, $HZ
t0, t1, t2 = $t0, $t1, $t2
tdrain = ${tdrain:-None}
k0, k1, k2, n0, n1, ks0, ks1 = $k0, $k1, $k2, $n0, $n1, $ks0, $ks1
samples = []
for l in open(res + "/samples.tsv"):
    f = l.rstrip("\n").split("\t")
    if len(f) == 8:
        samples.append(dict(t=float(f[0]), lines=int(f[1]), calls=int(f[2]), backlog=int(f[3]),
                            rate=float(f[4]), p50=None if f[5] == "None" else float(f[5]),
                            p99=None if f[6] == "None" else float(f[6])))
# samples taken while wrk ran (the first status sample after t0 covers load already)
start = samples[0]["t"] if samples else 0
load = [s for s in samples if s["rate"] > 0 and s["p99"] is not None]
p50s = [s["p50"] for s in load]
p99s = [s["p99"] for s in load]
backlogs = [s["backlog"] for s in samples]
med = lambda v: statistics.median(v) if v else float("nan")
rows = [
  ("wrk", "-t$THREADS -c$CONNS -d${DUR}s, wrk_keys.lua ($NKEYS keys, 2 % anonymous)"),
  ("requests/s, nginx alone (baseline)", "%s" % "$BASE_RPS"),
  ("requests/s, nginx with keywatch following", "%s" % "$KW_RPS"),
  ("nginx CPU, baseline / with keywatch (% of one core)", "%s / %.0f" % ("$BASE_NGX_CPU", 100 * (n1 - n0) / hz / (t1 - t0))),
  ("lines in the log", "%d" % $LINES),
  ("calls stored", "%d" % $CALLS),
  ("keywatch lines/s during the load", "%.0f" % ($LINES_END / (t1 - t0))),
  ("keywatch CPU during the load (% of one core)", "%.1f (user %.1f + sys %.1f)" % (
      100 * (k1 - k0) / hz / (t1 - t0), 100 * (k1 - k0 - ks1 + ks0) / hz / (t1 - t0),
      100 * (ks1 - ks0) / hz / (t1 - t0))),
  ("keywatch CPU per line (us)", "%.2f" % (1e6 * (k1 - k0) / hz / max($LINES_END, 1))),
  ("keywatch CPU load + drain (% of one core)", "%.1f" % (100 * (k2 - k0) / hz / (t2 - t0))),
  ("lag p50, median of %d one-second samples (ms)" % len(p50s), "%.1f" % med(p50s)),
  ("lag p99, median / max of the samples (ms)", "%.1f / %.1f" % (med(p99s), max(p99s) if p99s else float("nan"))),
  ("backlog, max sampled during the load (bytes)", "%d" % (max(backlogs) if backlogs else -1)),
  ("lines not yet stored when the load stopped", "%d" % ($LINES_END - $CALLS_END)),
  ("time to store the rest (s)", "%.2f" % (tdrain - t1) if tdrain else "did not finish in 120 s"),
  ("keywatch exit status after SIGTERM", "$KW_RC"),
]
out = ["| measure | value |", "|---|---|"] + ["| %s | %s |" % r for r in rows]
ok = [
  ("keeps up (drained within 2 s of the load's end)", tdrain is not None and tdrain - t1 <= 2.0),
  ("every line stored exactly once (calls == lines)", $CALLS == $LINES),
  ("lag p99 < 250 ms (median of samples)", bool(p99s) and med(p99s) < 250),
  ("CPU < 25 % of one core", 100 * (k1 - k0) / hz / (t1 - t0) < 25),
]
out += ["", "| target | met |", "|---|---|"] + ["| %s | %s |" % (n, "yes" if v else "**no**") for n, v in ok]
text = "\n".join(out)
open(res + "/summary.md", "w").write(text + "\n")
print(text)
EOF
echo "(samples: $RES/samples.tsv, wrk: $RES/*.wrk, keywatch stderr: $RES/keywatch.err)" >&2
