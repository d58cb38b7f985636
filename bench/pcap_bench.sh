#!/usr/bin/env bash
# bench/pcap_bench.sh — the packet collector's speed on a real capture of keyed API traffic,
# next to tshark (the tool a user would reach for) and tcpdump (the reading floor), in the
# same run, on the same file.
#
# usage: bench/pcap_bench.sh [--reqs N] [--runs R] [--regen]
#          --reqs N   requests in the capture (default 200000: about 150 MB)
#          --runs R   runs per measurement (default 3); the table shows medians
#          --regen    capture again even if data/wrk_N.pcap exists
# env:   KW_PCAPDUMP  the decoder tool to measure (default: built here, in data/)
#        CONNS        wrk connections (default 16)
#
# The capture: nginx on 127.0.0.1:<free port> answering small JSON for /api/*, tcpdump -i lo
# writing the pcap while wrk sends N requests with X-API-Key headers (wrk_api.lua, keys from
# gen_access_log.py --seed 1).  nginx logs the same requests (log_format keyed), and the
# decoder's records are checked against that log (count, per key, methods, statuses).
# Everything stays under bench/data/ (git-ignored): data/wrk_N.pcap, its access log, and
# data/results/pcap_N/ (runs.tsv, summary.md, checks.txt).  Processes started here are
# stopped by their own pid.
#
# Measured, each R times, wall time via EPOCHREALTIME around /usr/bin/time (CPU, peak RSS):
#   kw_pcapdump        every record formatted to a file (method, uri, status, key, sizes)
#   kw_pcapdump_count  records counted only (decoder cost without formatting)
#   tshark_fields      tshark -r F -d tcp.port==P,http -Y http.request -T fields
#                      -e http.request.method -e http.request.uri -e http.header.X-API-Key
#                      (X-API-Key declared as a custom HTTP header field)
#   tcpdump_decode     tcpdump -nn -r F            (decodes every packet's headers)
#   tcpdump_floor      tcpdump -r F -w /dev/null   (reads the file: the floor)
set -euo pipefail

REQS=200000
RUNS=3
REGEN=0
while [ $# -gt 0 ]; do
  case $1 in
  --reqs) REQS=$2; shift 2 ;;
  --runs) RUNS=$2; shift 2 ;;
  --regen) REGEN=1; shift ;;
  -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "pcap_bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case $REQS in '' | *[!0-9]* | 0) echo "pcap_bench.sh: --reqs needs a number > 0" >&2; exit 2 ;; esac
case $RUNS in '' | *[!0-9]* | 0) echo "pcap_bench.sh: --runs needs a number > 0" >&2; exit 2 ;; esac
CONNS=${CONNS:-16}

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DATA=$HERE/data
cd "$HERE"

missing=()
for pair in nginx:nginx-light tcpdump:tcpdump wrk:wrk tshark:tshark capinfos:tshark \
            python3:python3 /usr/bin/time:time cc:build-essential; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "pcap_bench.sh: missing tools; install them with:" \
       "DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
  exit 1
fi

mkdir -p "$DATA"
PCAP=$DATA/wrk_$REQS.pcap
BASE=${PCAP%.pcap}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kw-pcapbench.XXXXXX")
NGINX_PID= TCPDUMP_PID= WRK_PID=
cleanup() {
  if [ -n "$WRK_PID" ] && kill -0 "$WRK_PID" 2>/dev/null; then kill -INT "$WRK_PID"; wait "$WRK_PID" || true; fi
  if [ -n "$TCPDUMP_PID" ] && kill -0 "$TCPDUMP_PID" 2>/dev/null; then kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true; fi
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then kill -QUIT "$NGINX_PID"; wait "$NGINX_PID" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the capture
if [ "$REGEN" = 1 ] || [ ! -s "$PCAP" ] || [ ! -s "${BASE}.port" ]; then
  [ -s "$DATA/pcap_keys.txt" ] || python3 gen_access_log.py --lines 5000 --seed 1 --format csv \
    --out-base "$WORK/keys-only" --keys-out "$DATA/pcap_keys.txt" --quiet
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  mkdir -p "$WORK/tmp"
  USER_LINE=""
  [ "$(id -u)" = 0 ] && USER_LINE="user root;"
  cat > "$WORK/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 1024; }
http {
    log_format keyed '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent '
                     '"\$http_referer" "\$http_user_agent" "\$http_x_api_key" \$request_time';
    access_log ${BASE}_access.log keyed buffer=256k;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    default_type application/json;
    server_tokens off;
    server {
        listen 127.0.0.1:$PORT;
        location = /api/health { return 200 '{"status":"ok"}'; }
        location ~ ^/api/(card/[0-9]+/query|dataset|dashboard/[0-9]+/dashcard/[0-9]+/card/[0-9]+/query)\$ {
            if (\$http_x_api_key = "") { return 401 '"Unauthenticated"'; }
            return 202 '{"data":{"rows":[[1,"2025-11-03",1234.5],[2,"2025-11-04",987.25],[3,"2025-11-05",1410.0]],"cols":[{"name":"ID","base_type":"type/BigInteger"},{"name":"CREATED_AT","base_type":"type/Date"},{"name":"TOTAL","base_type":"type/Float"}],"native_form":{"query":"SELECT ..."}},"database_id":1,"row_count":3,"status":"completed","context":"question","running_time":42}';
        }
        location /api/ {
            if (\$http_x_api_key = "") { return 401 '"Unauthenticated"'; }
            return 200 '{"id":1,"name":"Weekly revenue","collection_id":7,"archived":false,"creator_id":3,"updated_at":"2025-11-02T09:12:44.123Z"}';
        }
        location / { return 404; }
    }
}
EOF
  rm -f "$PCAP" "${BASE}_access.log"
  nginx -t -q -e "$WORK/error.log" -p "$WORK/" -c "$WORK/nginx.conf"
  nginx -e "$WORK/error.log" -p "$WORK/" -c "$WORK/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  python3 - "$PORT" <<'EOF'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close(); sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("nginx did not come up")
EOF
  tcpdump -i lo -nn -s 0 -B 65536 -w "$PCAP" "tcp port $PORT" 2> "${BASE}_tcpdump.txt" &
  TCPDUMP_PID=$!
  for _ in $(seq 50); do grep -q listening "${BASE}_tcpdump.txt" && break; sleep 0.1; done
  sleep 0.5
  echo "capturing $REQS requests (wrk, $CONNS connections) on 127.0.0.1:$PORT" >&2
  wrk -t1 -c"$CONNS" -d600s --timeout 10s -s wrk_api.lua "http://127.0.0.1:$PORT" \
    -- "$DATA/pcap_keys.txt" "$REQS" 1 "$WORK/wrk.done" > "${BASE}_wrk.txt" &
  WRK_PID=$!
  while kill -0 "$WRK_PID" 2>/dev/null && [ ! -e "$WORK/wrk.done" ]; do sleep 0.1; done
  kill -INT "$WRK_PID" 2>/dev/null || true
  wait "$WRK_PID" || true
  WRK_PID=
  sleep 1.5 # libpcap blocks are retired after at most 1 s: let the last ones reach the file
  kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true; TCPDUMP_PID=
  kill -QUIT "$NGINX_PID"; wait "$NGINX_PID" || true; NGINX_PID=
  echo "$PORT" > "${BASE}.port"
  cat "${BASE}_tcpdump.txt" >&2
fi
PORT=$(cat "${BASE}.port")
SIZE=$(stat -c %s "$PCAP")
NREQ=$(wc -l < "${BASE}_access.log")

# ---------------------------------------------------------------- the decoder tool
if [ -z "${KW_PCAPDUMP:-}" ]; then
  echo "building kw_pcapdump (-O2) in data/" >&2
  cc -std=c17 -D_GNU_SOURCE -O2 -g -DNDEBUG -I"$ROOT" "$ROOT/tests/tools/kw_pcapdump.c" \
    "$ROOT"/collector/{packet,tcpreasm,httpflow,capture}.c "$ROOT"/sidecar/{call,err}.c \
    -lpcap -lhttp_parser -lxxhash -o "$DATA/kw_pcapdump"
  KW_PCAPDUMP=$DATA/kw_pcapdump
fi
[ -x "$KW_PCAPDUMP" ] || { echo "pcap_bench.sh: $KW_PCAPDUMP is not executable" >&2; exit 1; }

RES=$DATA/results/pcap_$REQS
rm -rf "$RES"
mkdir -p "$RES"
: > "$RES/runs.tsv"

measure() {
  local name=$1 i t0 t1
  shift
  echo "== $name: $*" >&2
  for ((i = 1; i <= RUNS; i++)); do
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" > "$RES/$name.out" 2> "$RES/$name.err" || {
      echo "pcap_bench.sh: $name failed (exit $?); see $RES/$name.err" >&2
      exit 1
    }
    t1=$EPOCHREALTIME
    tail -1 "$WORK/time" | awk -v n="$name" -v r="$i" -v t0="$t0" -v t1="$t1" \
      '{printf "%s\t%d\t%.4f\t%.2f\t%d\n", n, r, t1 - t0, $2 + $3, $4}' >> "$RES/runs.tsv"
  done
}

cat "$PCAP" > /dev/null # warm the page cache
measure kw_pcapdump "$KW_PCAPDUMP" -s -p "$PORT" "$PCAP"
measure kw_pcapdump_count "$KW_PCAPDUMP" -c -p "$PORT" "$PCAP"
measure tshark_fields tshark -n -r "$PCAP" -d "tcp.port==$PORT,http" -Y http.request \
  -o 'uat:custom_http_header_fields:"X-API-Key","API key"' \
  -T fields -e http.request.method -e http.request.uri -e http.header.X-API-Key
measure tcpdump_decode tcpdump -nn -r "$PCAP"
measure tcpdump_floor tcpdump -r "$PCAP" -w /dev/null

# ---------------------------------------------------------------- checks (not timed)
python3 - "$RES/kw_pcapdump.out" "${BASE}_access.log" "$RES/tshark_fields.out" > "$RES/checks.txt" <<'EOF'
import collections, re, sys
kw = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
# nginx keyed: $remote_addr - $remote_user [$time_local] "$request" $status $bytes "ref" "ua" "key" $t
rx = re.compile(r'^(\S+) - \S+ \[[^]]+\] "(\S+) (\S+) [^"]*" (\d+) (\d+) "[^"]*" "[^"]*" "([^"]*)" \S+$')
ng = []
for line in open(sys.argv[2]):
    m = rx.match(line)
    if m:
        ng.append(m.groups())
ts = [l.rstrip("\n").split("\t") for l in open(sys.argv[3])]
print("nginx access log: %d requests; kw_pcapdump: %d records; tshark: %d requests"
      % (len(ng), len(kw), len(ts)))
def key(v):
    return "" if v in ("-", "") else v
kw_keys = collections.Counter(key(r[5]) for r in kw)
ng_keys = collections.Counter(key(r[5]) for r in ng)
kw_ms = collections.Counter((r[2], r[3], int(r[4])) for r in kw)
ng_ms = collections.Counter((r[1], r[2], int(r[3])) for r in ng)
kw_bytes = collections.Counter((r[3], int(r[7])) for r in kw)
ng_bytes = collections.Counter((r[2], int(r[4])) for r in ng)
print("distinct keys: kw %d, nginx %d; per-key counts equal: %s"
      % (len(kw_keys), len(ng_keys), kw_keys == ng_keys))
print("per (method, uri, status) counts equal: %s" % (kw_ms == ng_ms))
print("per (uri, response body bytes) counts equal: %s" % (kw_bytes == ng_bytes))
bad = len(kw) != len(ng) or kw_keys != ng_keys or kw_ms != ng_ms
print("RESULT: %s" % ("MISMATCH" if bad else "kw_pcapdump matches nginx's own log"))
EOF
cat "$RES/kw_pcapdump.err" >> "$RES/checks.txt"

# ---------------------------------------------------------------- table
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) CPU x $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  echo "input: $PCAP, $SIZE bytes, $NREQ requests (nginx's log); $(capinfos -c "$PCAP" 2>/dev/null | sed -n 's/^Number of packets:[[:space:]]*/packets: /p')"
  echo "tools: $(tshark -v | head -1); $(tcpdump --version 2>&1 | head -1); $(tcpdump --version 2>&1 | sed -n 2p)"
  echo "command: bench/pcap_bench.sh --reqs $REQS --runs $RUNS"
  echo
  python3 - "$RES/runs.tsv" "$SIZE" "$NREQ" <<'EOF'
import statistics, sys
from collections import OrderedDict
size, nreq = int(sys.argv[2]), int(sys.argv[3])
runs = OrderedDict()
for line in open(sys.argv[1]):
    name, r, wall, cpu, rss = line.rstrip("\n").split("\t")
    runs.setdefault(name, []).append((float(wall), float(cpu), int(rss)))
med = {}
print("| tool | wall s (median of %d) | MB/s | requests/s | CPU s | peak RSS MiB |" % len(next(iter(runs.values()))))
print("|---|---|---|---|---|---|")
for name, rs in runs.items():
    rs = sorted(rs)
    m = rs[(len(rs) - 1) // 2]
    wall = m[0]
    med[name] = wall
    print("| %s | %.3f | %.0f | %s | %.2f | %.1f |" % (
        name, wall, size / 1e6 / wall, format(int(nreq / wall), ","), m[1], m[2] / 1024))
print()
print("| decoder | x tshark (speed) | x tcpdump -nn (speed) | / tcpdump floor (time) |")
print("|---|---|---|---|")
for k in ("kw_pcapdump", "kw_pcapdump_count"):
    print("| %s | %.1f x | %.1f x | %.1f x |" % (
        k, med["tshark_fields"] / med[k], med["tcpdump_decode"] / med[k], med[k] / med["tcpdump_floor"]))
print()
print("speed ratios: how many times faster than the tool; the floor column: how many times")
print("the time tcpdump needs just to read the file.")
EOF
  echo
  cat "$RES/checks.txt"
} > "$RES/summary.md"
cat "$RES/summary.md"
