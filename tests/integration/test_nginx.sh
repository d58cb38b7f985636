#!/usr/bin/env bash
# test_nginx.sh — keywatch against the logs of a real nginx.
#
# Starts /usr/sbin/nginx on 127.0.0.1 (own nginx.conf, every path in the temp dir) with
# three access logs of the same requests:
#   keyed.log    log_format keyed (combined + "$http_x_api_key" $request_time)
#   custom.log   a custom format with "$http_authorization" and "$arg_api_key"
#   json.log     escape=json lines in the nginx-json preset's shape
# sends keyed requests (random Metabase-style keys in X-API-Key, Authorization Bearer,
# Authorization Basic and ?api_key=), anonymous ones, and a hostile user agent, stops
# nginx, ingests each log and checks what a user relies on: per-key counts, anonymous
# counts, statuses, redaction, no raw key anywhere, escaping, file modes.
#
# What each log can see (and so what is expected from it):
#   keyed, json:  X-API-Key header and ?api_key= (from the request line / request_uri);
#                 Bearer and Basic requests carry no key as far as these logs know
#   custom:       Authorization (Bearer, Basic) and ?api_key=; X-API-Key is not logged
. "$(dirname "$0")/lib.sh"

NGINX=${NGINX:-/usr/sbin/nginx}
if [ ! -x "$NGINX" ]; then
  echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2
  exit 1
fi
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }

# ---------------------------------------------------------------- keys (random per run)
NK=$((3 + RANDOM % 3))
python3 - "$NK" > "$T/keys.txt" <<'EOF'
import base64, os, sys
seen, n = set(), int(sys.argv[1])
while len(seen) < n:
    k = "mb_" + base64.b64encode(os.urandom(32)).decode()   # 'mb_' + 43 chars + '='
    if k[:7] not in {s[:7] for s in seen}:
        seen.add(k)
for k in sorted(seen):
    print(k)
EOF
mapfile -t KEYS < "$T/keys.txt"
cut -c1-7 "$T/keys.txt" > "$T/prefixes.txt"
declare -a KEYQ # each key percent-encoded, as a client puts it in a query string
for i in "${!KEYS[@]}"; do
  KEYQ[$i]=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "${KEYS[$i]}")
done
# Everything that must never show up outside nginx's own logs: each key, its encodings,
# and 12-character pieces of its secret part (everything past the 7-character prefix).
python3 - "$T/keys.txt" > "$T/secrets.txt" <<'EOF'
import base64, sys, urllib.parse
for k in open(sys.argv[1]).read().split():
    print(k)
    print(urllib.parse.quote(k, safe=""))
    print(base64.b64encode((k + ":").encode()).decode())
    for i in range(7, len(k) - 11, 6):
        print(k[i:i + 12])
EOF

# ---------------------------------------------------------------- nginx
PORT=$(kw_free_port)
mkdir -p "$T/ngx/tmp"
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
write_conf() {
  cat > "$T/ngx/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
daemon off;
pid $T/ngx/nginx.pid;
error_log $T/ngx/error.log warn;
events { worker_connections 64; }
http {
  client_body_temp_path $T/ngx/tmp/body;
  proxy_temp_path $T/ngx/tmp/proxy;
  fastcgi_temp_path $T/ngx/tmp/fastcgi;
  uwsgi_temp_path $T/ngx/tmp/uwsgi;
  scgi_temp_path $T/ngx/tmp/scgi;
  log_format keyed '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" "\$http_x_api_key" \$request_time';
  log_format custom '\$remote_addr [\$time_iso8601] "\$request_method \$request_uri" '
                    '\$status \$bytes_sent "\$http_authorization" "\$arg_api_key" '
                    '"\$http_user_agent" \$request_time';
  log_format keyed_json escape=json '{"time_iso8601":"\$time_iso8601","remote_addr":"\$remote_addr","request_method":"\$request_method","request_uri":"\$request_uri","status":\$status,"body_bytes_sent":\$body_bytes_sent,"request_time":\$request_time,"http_user_agent":"\$http_user_agent","http_x_api_key":"\$http_x_api_key"}';
  access_log $T/ngx/keyed.log keyed;
  access_log $T/ngx/custom.log custom;
  access_log $T/ngx/json.log keyed_json;
  server {
    listen 127.0.0.1:$PORT;
    default_type application/json;
    location = /api/denied { return 401 '{"error":"unauthenticated"}'; }
    location /api/ { return 200 '{"ok":true}'; }
    location /legacy/ {
      access_log $T/ngx/legacy-keyed.log keyed;
      access_log $T/ngx/legacy-json.log keyed_json;
      return 200 '{"ok":true}';
    }
    location / { return 404; }
  }
}
EOF
}
NGX_PID=""
for _ in 1 2 3; do
  write_conf
  kw_spawn_bg "$NGINX" -p "$T/ngx/" -c "$T/ngx/nginx.conf" -e "$T/ngx/error.log"
  NGX_PID=$KW_SPAWNED
  if kw_wait_port "$PORT" 10 "$NGX_PID"; then
    break
  fi
  kw_stop_pid "$NGX_PID"
  NGX_PID=""
  PORT=$(kw_free_port) # the port was taken between picking and binding: try another
done
if [ -z "$NGX_PID" ]; then
  fail "nginx did not start: $(tail -5 "$T/ngx/error.log" 2>/dev/null)"
  kw_finish
fi
ok "nginx listening on 127.0.0.1:$PORT"

BASE="http://127.0.0.1:$PORT"
# user agents are written by the caller, possibly an attacker: quotes, markup, a terminal
# escape, UTF-8; and one with bytes that are not UTF-8 (a Latin-1 client, or an attacker
# who hopes a strict parser drops the line and with it the call from the audit trail)
HOSTILE_UA=$'evil "quoted" <script>alert(1)</script> \x1b[31mRED\x1b[0m caf\xc3\xa9 \xe2\x82\xac end'
LATIN1_UA=$'legacy-client/0.9 caf\xe9 \xff\xfe'
declare -A GOT_STATUS=()
SENT=0
# send EXPECTED_STATUS URL [curl options...]
send() {
  local want=$1 url=$2 code
  shift 2
  code=$(curl -sg --max-time 5 -o /dev/null -w '%{http_code}' "$@" "$url") || code="curl-error"
  SENT=$((SENT + 1))
  GOT_STATUS[$code]=$((${GOT_STATUS[$code]:-0} + 1))
  [ "$code" = "$want" ] || fail "$url answered $code, expected $want"
}

# ---------------------------------------------------------------- traffic
declare -a N_HDR N_BEARER N_BASIC N_QUERY
for i in "${!KEYS[@]}"; do N_HDR[$i]=0 N_BEARER[$i]=0 N_BASIC[$i]=0 N_QUERY[$i]=0; done
N_401=0
N_ANON=0
N_HOSTILE_KEYED=0     # hostile-UA requests with an X-API-Key (key index 0)
NREQ=$((NK * 12))
for ((r = 0; r < NREQ; r++)); do
  k=$((r % NK))
  via=$(((r / NK) % 4))
  if ((r % 9 == 4)); then
    path=/api/denied want=401
    N_401=$((N_401 + 1))
  elif ((r % 2 == 0)); then
    path=/api/card/$(((r * 7) % 50 + 1)) want=200
  else
    path=/api/dashboard/$((r % 5 + 1))/items want=200
  fi
  case $via in
  0) send $want "$BASE$path" -H "X-API-Key: ${KEYS[$k]}" -A "python-requests/2.31.0"
     N_HDR[$k]=$((N_HDR[$k] + 1)) ;;
  1) send $want "$BASE$path" -H "Authorization: Bearer ${KEYS[$k]}" -A "metabase-sync/1.0"
     N_BEARER[$k]=$((N_BEARER[$k] + 1)) ;;
  2) send $want "$BASE$path?limit=10&api_key=${KEYQ[$k]}" -A "curl/8"
     N_QUERY[$k]=$((N_QUERY[$k] + 1)) ;;
  3) send $want "$BASE$path" -u "${KEYS[$k]}:" -A "Go-http-client/1.1"
     N_BASIC[$k]=$((N_BASIC[$k] + 1)) ;;
  esac
done
# anonymous traffic
for path in /api/health /api/session/properties /api/card/1 /api/denied /api/denied; do
  want=200
  [ "$path" = /api/denied ] && want=401 && N_401=$((N_401 + 1))
  send $want "$BASE$path" -A "kube-probe/1.29"
  N_ANON=$((N_ANON + 1))
done
send 200 "$BASE/api/card/7?q=revenue" -A "$HOSTILE_UA"
N_ANON=$((N_ANON + 1))
send 200 "$BASE/api/card/8" -A "$HOSTILE_UA" -H "X-API-Key: ${KEYS[0]}"
N_HDR[0]=$((N_HDR[0] + 1))
N_HOSTILE_KEYED=1
# /legacy/ logs to files of its own (legacy-*.log), checked separately at the end
send 200 "$BASE/legacy/card/9" -A "$LATIN1_UA" -H "X-API-Key: ${KEYS[0]}"
send 200 "$BASE/legacy/card/10" -A "legacy-client/0.9" -H "X-API-Key: ${KEYS[0]}"
SENT=$((SENT - 2))
expect_eq "requests answered 401" "${GOT_STATUS[401]:-0}" "$N_401"

kw_stop_pid "$NGX_PID"
check "nginx exited" bash -c "! kill -0 $NGX_PID 2>/dev/null"
for f in keyed custom json; do
  expect_eq "nginx wrote every request to $f.log" "$(wc -l < "$T/ngx/$f.log")" "$SENT"
done

# ---------------------------------------------------------------- ingest
# expected count for key index i in the log named $1
expected_calls() {
  case $1 in
  keyed | json) echo $((N_HDR[$2] + N_QUERY[$2])) ;;
  custom) echo $((N_BEARER[$2] + N_BASIC[$2] + N_QUERY[$2])) ;;
  all) echo $((2 * N_HDR[$2] + 3 * N_QUERY[$2] + N_BEARER[$2] + N_BASIC[$2])) ;;
  esac
}
sum() { local s=0 v; for v in "$@"; do s=$((s + v)); done; echo $s; }
expected_anon() {
  case $1 in
  keyed | json) echo $((N_ANON + $(sum "${N_BEARER[@]}") + $(sum "${N_BASIC[@]}"))) ;;
  custom) echo $((N_ANON + $(sum "${N_HDR[@]}"))) ;;
  all) echo $((3 * N_ANON + 2 * ($(sum "${N_BEARER[@]}") + $(sum "${N_BASIC[@]}")) + $(sum "${N_HDR[@]}"))) ;;
  esac
}

# pasted as it stands in nginx.conf: the whole multi-line directive
CUSTOM_FMT=$(sed -n "/log_format custom/,/;\$/p" "$T/ngx/nginx.conf")
unset KEYWATCH_SECRET KEYWATCH_CONFIG
umask 022 # modes 0600 below must come from keywatch, not from a strict umask
mkdir -p "$T/kw-keyed" "$T/kw-custom" "$T/kw-json" "$T/kw-all"
kw ingest-keyed --db "$T/kw-keyed/kw.db" ingest --json "$T/ngx/keyed.log"
expect_eq "ingest keyed.log (auto-detected) exits 0" "$KW_RC" 0
kw ingest-custom --db "$T/kw-custom/kw.db" ingest --json --log-format "$CUSTOM_FMT" "$T/ngx/custom.log"
expect_eq "ingest custom.log with --log-format exits 0" "$KW_RC" 0
kw ingest-json --db "$T/kw-json/kw.db" ingest --json --format nginx-json "$T/ngx/json.log"
expect_eq "ingest json.log with --format nginx-json exits 0" "$KW_RC" 0
kw ingest-json-auto --db "$T/kw-json/auto.db" ingest --json "$T/ngx/json.log"
expect_eq "ingest json.log auto-detected exits 0" "$KW_RC" 0
expect_eq "json.log auto-detected: same calls as with --format" \
  "$(json_get "$KW_OUT" 'j["calls"]')" "$SENT"
# all three logs into one database: one identity per key whatever carried it
kw ingest-all-1 --db "$T/kw-all/kw.db" ingest -q "$T/ngx/keyed.log"
kw ingest-all-2 --db "$T/kw-all/kw.db" ingest -q --log-format "$CUSTOM_FMT" "$T/ngx/custom.log"
kw ingest-all-3 --db "$T/kw-all/kw.db" ingest -q --format nginx-json "$T/ngx/json.log"
expect_eq "three ingests into one database exit 0" "$KW_RC" 0

for log in keyed custom json all; do
  db="$T/kw-$log/kw.db"
  if [ "$log" != all ]; then
    out="$T/out/ingest-$log.out"
    if is_json "$out"; then
      expect_eq "$log: ingest --json lines" "$(json_get "$out" 'j["lines"]')" "$SENT"
      expect_eq "$log: ingest --json malformed" "$(json_get "$out" 'j["malformed"]')" 0
      expect_eq "$log: ingest --json calls" "$(json_get "$out" 'j["calls"]')" "$SENT"
    else
      fail "$log: ingest --json printed no valid JSON: $(head -c 300 "$out")"
    fi
  fi
  kw "keys-$log" --db "$db" keys --json
  if [ "$KW_RC" != 0 ] || ! is_json "$KW_OUT"; then
    fail "$log: keys --json (rc $KW_RC) is not valid JSON: $(head -c 300 "$KW_OUT")"
    continue
  fi
  keysjson=$KW_OUT
  for i in "${!KEYS[@]}"; do
    p=${KEYS[$i]:0:7}
    want=$(expected_calls $log "$i")
    got=$(json_get "$keysjson" "sum(r['calls'] for r in j if r['prefix'] == '$p')")
    rows=$(json_get "$keysjson" "len([r for r in j if r['prefix'] == '$p'])")
    if [ "$want" = 0 ]; then
      expect_eq "$log: key $p… absent (never logged)" "$rows" 0
    else
      expect_eq "$log: key $p… calls" "$got" "$want"
      expect_eq "$log: key $p… is one identity (one fingerprint)" "$rows" 1
    fi
  done
  expect_eq "$log: anonymous calls" \
    "$(json_get "$keysjson" "sum(r['calls'] for r in j if r['prefix'] is None)")" "$(expected_anon $log)"
  expect_eq "$log: no key row other than the keys sent" \
    "$(json_get "$keysjson" "len([r for r in j if r['prefix'] is not None and r['prefix'] not in open('$T/prefixes.txt').read().split()])")" 0

  kw "stats-$log" --db "$db" stats --json
  if [ "$KW_RC" = 0 ] && is_json "$KW_OUT"; then
    mult=1
    [ $log = all ] && mult=3
    expect_eq "$log: stats calls" "$(json_get "$KW_OUT" 'j["calls"]')" $((mult * SENT))
    expect_eq "$log: stats 401s" "$(json_get "$KW_OUT" 'j["by_status"].get("401", 0)')" $((mult * N_401))
    expect_eq "$log: stats 200s" "$(json_get "$KW_OUT" 'j["by_status"].get("200", 0)')" $((mult * (SENT - N_401)))
    expect_eq "$log: stats malformed" "$(json_get "$KW_OUT" 'j["malformed"]')" 0
    expect_eq "$log: stats anonymous" "$(json_get "$KW_OUT" 'j["anonymous"]')" "$(expected_anon $log)"
    expect_eq "$log: stats by_method GET" "$(json_get "$KW_OUT" 'j["by_method"].get("GET", 0)')" $((mult * SENT))
    check "$log: 'GET /api/card/{id}' among the top endpoints" \
      test "$(json_get "$KW_OUT" "any(e['endpoint'] == 'GET /api/card/{id}' for e in j['top_endpoints'])")" = True
  else
    fail "$log: stats --json (rc $KW_RC) is not valid JSON"
  fi

  kw "calls-$log" --db "$db" calls --json --limit 0
  if [ "$KW_RC" = 0 ] && is_json "$KW_OUT"; then
    callsjson=$KW_OUT
    mult=1
    [ $log = all ] && mult=3
    expect_eq "$log: calls --json rows" "$(json_get "$callsjson" 'len(j)')" $((mult * SENT))
    expect_eq "$log: paths with api_key=REDACTED" \
      "$(json_get "$callsjson" "sum('api_key=REDACTED' in r['path'] for r in j)")" \
      $((mult * $(sum "${N_QUERY[@]}")))
    expect_eq "$log: other query parameters kept (limit=10)" \
      "$(json_get "$callsjson" "sum('limit=10&' in r['path'] for r in j)")" \
      $((mult * $(sum "${N_QUERY[@]}")))
    expect_eq "$log: 401 rows in calls" "$(json_get "$callsjson" "sum(r['status'] == 401 for r in j)")" $((mult * N_401))
    hostile=$(json_get "$callsjson" "sum(r['user_agent'] is not None and r['user_agent'].startswith('evil \"quoted\" <script>alert(1)</script> \x1b[31mRED\x1b[0m caf\u00e9 \u20ac ') for r in j)")
    want_h=2
    [ $log = all ] && want_h=6
    expect_eq "$log: hostile user agent round-trips through --json (quotes, ESC, UTF-8)" "$hostile" "$want_h"
    case $log in keyed | json) want_h=$N_HOSTILE_KEYED ;; custom) want_h=0 ;; all) want_h=$((2 * N_HOSTILE_KEYED)) ;; esac
    expect_eq "$log: the call with the hostile user agent attributed to its key" \
      "$(json_get "$callsjson" "sum(r['key_prefix'] == '${KEYS[0]:0:7}' and r['user_agent'] is not None and r['user_agent'].startswith('evil') for r in j)")" \
      "$want_h"
    check "$log: calls --json has no raw ESC byte" bash -c "! grep -q \$'\\x1b' '$callsjson'"
  else
    fail "$log: calls --json (rc $KW_RC) is not valid JSON: $(head -c 300 "$KW_OUT")"
  fi
  kw "calls-key-$log" --db "$db" calls --json --limit 0 --key "${KEYS[1]:0:7}"
  expect_eq "$log: calls --key ${KEYS[1]:0:7} rows" "$(json_get "$KW_OUT" 'len(j)' 2>/dev/null)" "$(expected_calls $log 1)"

  # table output (what a terminal shows)
  kw "keys-table-$log" --db "$db" keys
  expect_eq "$log: keys (table) exits 0" "$KW_RC" 0
  kw "calls-table-$log" --db "$db" calls --limit 0
  expect_eq "$log: calls (table) exits 0" "$KW_RC" 0
  check "$log: calls table shows no raw ESC byte" bash -c "! grep -q \$'\\x1b' '$KW_OUT'"
  check "$log: calls table shows the hostile agent escaped (\\x1B)" grep -qF '\x1B[31mRED' "$KW_OUT"
  kw "stats-table-$log" --db "$db" stats
  expect_eq "$log: stats (table) exits 0" "$KW_RC" 0

  # files
  expect_eq "$log: database mode" "$(stat -c %a "$db")" 600
  expect_eq "$log: secret file mode" "$(stat -c %a "$(dirname "$db")/keywatch.secret" 2>/dev/null)" 600
  for side in "$db-wal" "$db-shm"; do
    [ -e "$side" ] && expect_eq "$log: $(basename "$side") mode" "$(stat -c %a "$side")" 600
  done
done

# ---------------------------------------------------------------- a user agent that is not UTF-8
# nginx writes bytes >= 0x80 as they came, in escape=json too (it escapes only '"', '\'
# and control characters), so such a line is not strictly valid JSON.  Dropping it would
# let any caller hide a call from the audit trail by adding one such byte to a header.
mkdir -p "$T/kw-legacy"
for f in keyed json; do
  kw "ingest-legacy-$f" --db "$T/kw-legacy/$f.db" ingest --json --format "$( [ $f = json ] && echo nginx-json || echo keyed )" "$T/ngx/legacy-$f.log"
  expect_eq "legacy-$f: ingest exits 0" "$KW_RC" 0
  expect_eq "legacy-$f: call with a non-UTF-8 user agent is recorded, not malformed" \
    "$(json_get "$KW_OUT" '(j["calls"], j["malformed"])' 2>/dev/null)" "(2, 0)"
  kw "calls-legacy-$f" --db "$T/kw-legacy/$f.db" calls --json --key "${KEYS[0]:0:7}"
  check "legacy-$f: calls --json is valid JSON" is_json "$KW_OUT"
  expect_eq "legacy-$f: both calls attributed to the key, user agent kept (U+FFFD for bad bytes)" \
    "$(json_get "$KW_OUT" "sorted(r['user_agent'] for r in j)" 2>/dev/null)" \
    '["legacy-client/0.9", "legacy-client/0.9 caf\ufffd \ufffd\ufffd"]'
done

# the same, when such a line comes first and the format is auto-detected
kw ingest-legacy-json-auto --db "$T/kw-legacy/auto.db" ingest --json "$T/ngx/legacy-json.log"
expect_eq "legacy-json: format auto-detected although the first line is not UTF-8 (exit 0)" "$KW_RC" 0

# ---------------------------------------------------------------- no raw key anywhere
# (every database, WAL and SHM file, every stdout and stderr of keywatch in this test)
leaks=$(find "$T/kw-keyed" "$T/kw-custom" "$T/kw-json" "$T/kw-all" "$T/kw-legacy" "$T/out" -type f \
          ! -name keywatch.secret -print0 | xargs -0 grep -a -l -F -f "$T/secrets.txt")
if [ -z "$leaks" ]; then
  ok "no raw key (nor its URL/Basic encoding, nor a 12-char piece of it) in $(find "$T/kw-keyed" "$T/kw-custom" "$T/kw-json" "$T/kw-all" "$T/kw-legacy" "$T/out" -type f ! -name keywatch.secret | wc -l) files"
else
  fail "raw key material found in: $(echo "$leaks" | sed "s|$T/||g" | tr '\n' ' ')"
fi
# the check above must be able to fail: nginx's own log holds the keys
check "leak check is live (finds the keys in nginx's keyed.log)" grep -q -a -F -f "$T/secrets.txt" "$T/ngx/keyed.log"

kw_finish
