#!/usr/bin/env bash
# test_run_pcap.sh — `keywatch run --interface lo`: API calls recorded live from traffic.
#
# A real nginx on 127.0.0.1 answers curl requests carrying keys (X-API-Key, Bearer,
# ?api_key=) while keywatch captures on the loopback interface with a BPF filter on
# nginx's port.  Asserted: per-key counts equal what was sent (and nginx's own log),
# status shows a pcap source with 0 drops, no raw key in any keywatch output or in the
# database, SIGTERM stops it cleanly.  Needs CAP_NET_RAW (root in CI).
. "$(dirname "$0")/lib.sh"

[ -x "$NGINX" ] || { echo "nginx not found at $NGINX" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }

kw_make_keys 3 "$T/keys.txt"
mapfile -t KEYS <"$T/keys.txt"
N=$T/ngx
write_conf() {
  {
    kw_nginx_prologue "$N"
    cat <<CONF
  access_log $N/access.log keyed;
  server {
    listen 127.0.0.1:$NGX_PORT;
    location /api/ { return 200 '{"ok":true}'; }
  }
}
CONF
  } >"$N/nginx.conf"
}
mkdir -p "$N"
kw_nginx_up "$N" write_conf || { fail "nginx starts"; kw_finish; }

kw_run_start run run --db "$T/kw.db" --interface lo --bpf "tcp port $NGX_PORT"
# Capture starts asynchronously: wait until the source reports (bounded).
for ((i = 0; i < 50; i++)); do
  kw status status --db "$T/kw.db" --json
  grep -q '"kind": "pcap"' "$KW_OUT" 2>/dev/null && break
  sleep 0.1
done
check "pcap source registered" grep -q '"kind": "pcap"' "$KW_OUT"

url=http://127.0.0.1:$NGX_PORT
for i in $(seq 1 20); do curl -s -o /dev/null -H "X-API-Key: ${KEYS[0]}" "$url/api/card/$i"; done
for i in $(seq 1 15); do curl -s -o /dev/null -H "Authorization: Bearer ${KEYS[1]}" "$url/api/dashboard/$i/items"; done
q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "${KEYS[2]}")
for i in $(seq 1 10); do curl -s -o /dev/null "$url/api/card/$i?api_key=$q"; done
for i in $(seq 1 5); do curl -s -o /dev/null "$url/api/health"; done

# Bounded wait for the 50 calls to be committed.
for ((i = 0; i < 100; i++)); do
  kw keys keys --db "$T/kw.db" --json
  total=$(python3 -c 'import json,sys; print(sum(k["calls"] for k in json.load(open(sys.argv[1]))))' "$KW_OUT" 2>/dev/null)
  [ "${total:-0}" -ge 50 ] && break
  sleep 0.1
done
kw status status --db "$T/kw.db" --json
cp "$KW_OUT" "$T/status.json"
kw_run_stop TERM
expect_eq "keywatch exits 0 on SIGTERM" "$KW_RUN_RC" 0

kw keys keys --db "$T/kw.db" --json
for idx in 0 1 2; do
  want=$((idx == 0 ? 20 : idx == 1 ? 15 : 10))
  got=$(python3 -c 'import json,sys
print(sum(k["calls"] for k in json.load(open(sys.argv[1])) if k["prefix"] and sys.argv[2].startswith(k["prefix"])))' "$KW_OUT" "${KEYS[$idx]}")
  expect_eq "calls of key $idx (captured)" "$got" "$want"
  nginx_n=$(grep -c "${KEYS[$idx]:0:20}" "$N/access.log" || true)
  [ "$idx" = 0 ] && expect_eq "nginx logged key 0 as often" "$nginx_n" 20
done
anon=$(python3 -c 'import json,sys; print(sum(k["calls"] for k in json.load(open(sys.argv[1])) if k["prefix"] is None))' "$KW_OUT")
expect_eq "anonymous calls" "$anon" 5
expect_eq "no kernel drops" "$(json_get "$T/status.json" '[s["drops"] for s in j["sources"] if s["kind"]=="pcap"][0]')" 0

kw calls calls --db "$T/kw.db" --json --limit 0
check "query-string key redacted" grep -q 'api_key=REDACTED' "$KW_OUT"
leak=0
for k in "${KEYS[@]}"; do
  for f in "$T"/kw.db* "$T"/out/*; do
    if grep -aqF "${k:3:20}" "$f"; then leak=1; echo "# raw key found in $f"; fi
  done
done
expect_eq "no raw key in the database or any output" "$leak" 0
kw_finish
