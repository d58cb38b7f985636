#!/usr/bin/env bash
# test_keystore_emu.sh — the key-store emulator (tests/tools/keystore_emu.py) keeps the
# admin-API contracts of /work/shared/KEYSTORES.md, so that the revocation adapters'
# tests against it mean something.
#
# One emulator per product (Metabase, SeaTable, Kong, Kong with an admin token, the
# generic store) on 127.0.0.1, each on a free port (--port 0 --port-file). Asserted, with
# curl and jq: status codes, content types, exact error bodies (plain text for Metabase,
# JSON elsewhere), every auth failure, 204 with an empty body, Metabase's old and new
# regenerate shapes, Kong's pagination (size=2 over 5 keys, by "next" and by "offset"),
# SeaTable's 201; fault injection (503 twice then normal, a 2 s client timeout, a closed
# connection, a timed fault, a held request cut short by SIGTERM); a SIGKILL and restart
# on the same --state file (what was deleted stays deleted); nothing on stdout/stderr.
#
# Needs python3, curl, jq. Only KW_SOURCE_DIR is used (default: the repository root).
# shellcheck disable=SC2016 # jq filters in single quotes use jq's own $variables
set -u
KW_SOURCE_DIR=${KW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
EMU=$KW_SOURCE_DIR/tests/tools/keystore_emu.py
for c in python3 curl jq; do
  command -v "$c" >/dev/null 2>&1 || { echo "$c is required" >&2; exit 2; }
done
[ -r "$EMU" ] || { echo "no emulator at $EMU" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/kw-emu.XXXXXXXX") || exit 2
mkdir -p "$T/r"
PIDS=()
PASSED=0
FAILED=0

stop_pid() { # PID: TERM, up to 5 s, then KILL; STOP_RC = its exit status
  local pid=$1 i p rest=()
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
  PIDS=("${rest[@]}")
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  STOP_RC=$?
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [ "${KW_KEEP_TMP:-0}" = 1 ]; then echo "# kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted" >&2; exit 130' INT TERM HUP

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
check() { local m=$1; shift; if "$@"; then ok "$m"; else fail "$m"; fi; }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 ($2)"; else fail "$1: got '$2', expected '$3'"; fi; }

# emu_start NAME PRODUCT [ARGS...]: state $T/NAME.state.json; sets EMU_PID, EMU_PORT
emu_start() {
  local name=$1 product=$2 i
  shift 2
  rm -f "$T/$name.port"
  python3 "$EMU" --product "$product" --state "$T/$name.state.json" \
    --port-file "$T/$name.port" --log "$T/$name.log" "$@" \
    >>"$T/$name.stdout" 2>>"$T/$name.stderr" </dev/null &
  EMU_PID=$!
  PIDS+=("$EMU_PID")
  EMU_PORT=""
  for ((i = 0; i < 100; i++)); do
    [ -s "$T/$name.port" ] && { EMU_PORT=$(cat "$T/$name.port"); return 0; }
    kill -0 "$EMU_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "# $name did not start: $(tail -3 "$T/$name.stderr")" >&2
  return 1
}

# req NAME METHOD URL [CURL ARGS...]: body in $B; sets S (status), CT (content type),
# RC (curl's exit status)
req() {
  local name=$1 method=$2 url=$3
  shift 3
  B=$T/r/$name.body
  S=$(curl -sS --max-time 5 -X "$method" -o "$B" -D "$T/r/$name.hdr" -w '%{http_code}' \
    "$@" "$url" 2>"$T/r/$name.err")
  RC=$?
  CT=$(grep -i '^content-type:' "$T/r/$name.hdr" 2>/dev/null | tail -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//')
}
what() { printf 'status %s, rc %s, content-type "%s", body "%s"' "$S" "$RC" "$CT" "$(head -c 200 "$B" 2>/dev/null)"; }
# want STATUS KIND MSG: KIND json|text|none (none: empty body, no content-type)
want() {
  local st=$1 kind=$2 msg=$3 good=1
  [ "$S" = "$st" ] || good=0
  case $kind in
  json) case $CT in application/json*) jq -e . "$B" >/dev/null 2>&1 || good=0 ;; *) good=0 ;; esac ;;
  text) case $CT in text/plain*) ;; *) good=0 ;; esac ;;
  none) [ -z "$CT" ] && [ ! -s "$B" ] || good=0 ;;
  esac
  if [ $good = 1 ]; then ok "$msg ($st $kind)"; else fail "$msg: want $st $kind, got $(what)"; fi
}
# body_is TEXT MSG: the body is exactly TEXT
body_is() {
  if [ "$(cat "$B")" = "$1" ] && [ "$(wc -c <"$B")" = "${#1}" ]; then ok "$2"; else fail "$2: want body \"$1\", got $(what)"; fi
}
# jqok MSG [JQ ARGS...] FILTER: jq -e FILTER over the body is true
jqok() {
  local msg=$1
  shift
  if jq -e "$@" "$B" >/dev/null 2>&1; then ok "$msg"; else fail "$msg: [${*: -1}] is not true for $(what)"; fi
}
jqv() { jq -r "$1" "$B"; }
jqf() { jq -e "$2" "$1" >/dev/null 2>&1; } # FILE FILTER
fail_mode() { # BASE JSON
  req fault POST "$1/_emu/fail" -H 'Content-Type: application/json' -d "$2"
  [ "$S" = 200 ] || fail "POST /_emu/fail $2: $(what)"
}

# ---- states ------------------------------------------------------------------------
python3 - "$T" <<'EOF'
import base64, json, os, secrets, string, sys, uuid
t = sys.argv[1]
seen = set()
def mbkey():
    while True:
        k = "mb_" + base64.b64encode(os.urandom(32)).decode()
        if k[:7] not in seen:
            seen.add(k[:7]); return k
mb = {"session": str(uuid.uuid4()),
      "groups": [{"id": 1, "name": "All Users", "magic_group_type": "all-internal-users"},
                 {"id": 2, "name": "Administrators", "magic_group_type": "admin"},
                 {"id": 3, "name": "Analysts"}],
      "keys": [{"id": 1, "name": "sidecar", "group_id": 2, "key": mbkey(), "created_at": "2026-01-01T00:00:00Z"},
               {"id": 2, "name": "etl", "group_id": 3, "key": mbkey(), "created_at": "2026-01-01T00:00:00Z"},
               {"id": 3, "name": "report", "group_id": 3, "key": mbkey(), "created_at": "2026-01-02T00:00:00Z"}],
      "next_id": 4}
json.dump(mb, open(t + "/mb.state.json", "w"))
hx = lambda: secrets.token_hex(20)
st = {"account_token": hx(), "admin_token": hx(),
      "bases": [{"workspace_id": 1, "base_name": "CRM", "dtable_uuid": uuid.uuid4().hex,
                 "tokens": [{"app_name": "etl", "api_token": hx(), "permission": "rw",
                             "generated_by": "owner@x", "generated_at": "2026-01-01T00:00:00+00:00"}]},
                {"workspace_id": 1, "base_name": "Sales Data", "dtable_uuid": uuid.uuid4().hex,
                 "tokens": [{"app_name": "report", "api_token": hx(), "permission": "r",
                             "generated_by": "owner@x", "generated_at": "2026-01-01T00:00:00+00:00"}]},
                {"workspace_id": 2, "base_name": "Other", "dtable_uuid": str(uuid.uuid4()),
                 "account_token": hx(), "tokens": []}]}
json.dump(st, open(t + "/st.state.json", "w"))
alnum = string.ascii_letters + string.digits
cons = [{"id": str(uuid.uuid4()), "username": "alice"}, {"id": str(uuid.uuid4()), "username": "bob"}]
kas = [{"id": str(uuid.uuid4()), "key": "".join(secrets.choice(alnum) for _ in range(32)),
        "consumer_id": cons[0 if i < 3 else 1]["id"], "created_at": 1767225600 + i} for i in range(5)]
kg = {"admin_token": None, "consumers": cons, "key_auths": kas}
json.dump(kg, open(t + "/kg.state.json", "w"))
json.dump(dict(kg, admin_token="adm-" + secrets.token_hex(8)), open(t + "/kr.state.json", "w"))
gn = {"token": secrets.token_hex(16),
      "credentials": [{"id": "cred-1", "key_prefix": "gk_AbCd", "label": "etl", "enabled": True},
                      {"id": "cred-2", "key_prefix": "gk_EfGh", "label": "bi", "enabled": True}]}
json.dump(gn, open(t + "/gn.state.json", "w"))
EOF
s() { jq -r "$2" "$T/$1.state.json"; }

emu_start mb metabase || { fail "metabase emulator starts"; exit 1; }
MBPID=$EMU_PID MBPORT=$EMU_PORT MB=http://127.0.0.1:$EMU_PORT
emu_start st seatable || { fail "seatable emulator starts"; exit 1; }
STPID=$EMU_PID ST=http://127.0.0.1:$EMU_PORT
emu_start kg kong || { fail "kong emulator starts"; exit 1; }
KG=http://127.0.0.1:$EMU_PORT
emu_start kr kong --kong-delete-unknown 204 || { fail "kong (admin token) emulator starts"; exit 1; }
KR=http://127.0.0.1:$EMU_PORT
emu_start gn generic || { fail "generic emulator starts"; exit 1; }
GNPID=$EMU_PID GN=http://127.0.0.1:$EMU_PORT
ok "five emulators listen on free ports"

# ==== Metabase =======================================================================
SESS=$(s mb .session)
ADMIN_KEY=$(s mb '.keys[0].key') ETL_KEY=$(s mb '.keys[1].key') REPORT_KEY=$(s mb '.keys[2].key')
H_S=(-H "X-Metabase-Session: $SESS")
H_J=(-H 'Content-Type: application/json')

req h GET "$MB/api/health"
want 200 json "metabase: GET /api/health without auth"
jqok "metabase: health is {status: ok}" '.status == "ok"'

req a1 GET "$MB/api/api-key"
want 401 text "metabase: no credentials"
body_is "Unauthenticated" "metabase: 401 body is Unauthenticated"
req a2 GET "$MB/api/api-key" -H "X-Metabase-Session: not-the-session"
want 401 text "metabase: a bad session"
body_is "Unauthenticated" "metabase: bad session body"
req a3 GET "$MB/api/api-key" -H "X-API-Key: mb_notAKeyAtAll00000000000000000000000000000000="
want 401 text "metabase: an unknown API key"
body_is "Unauthenticated" "metabase: unknown key body"
req a4 GET "$MB/api/api-key" -H "X-API-Key: $ETL_KEY"
want 403 text "metabase: a non-admin key on the admin API"
body_is "You don't have permissions to do that." "metabase: 403 body"
req a5 POST "$MB/api/api-key" -H "X-API-Key: $ETL_KEY" "${H_J[@]}" -d '{"name":"x","group_id":3}'
want 403 text "metabase: a non-admin key cannot create"
req a6 GET "$MB/api/api-key" -H "x-api-key: $ADMIN_KEY"
want 200 json "metabase: an Administrators key (header name in lower case)"

req l1 GET "$MB/api/api-key" "${H_S[@]}"
want 200 json "metabase: list with the admin session"
jqok "metabase: a bare array of 3 keys" 'type == "array" and length == 3'
jqok "metabase: key object fields exactly" 'all(.[]; (keys | sort) == (["id","name","group","masked_key","created_at","updated_at","updated_by"] | sort))'
jqok "metabase: group {id, name}, updated_by {id, common_name}" 'all(.[]; (.group | keys) == ["id","name"] and (.updated_by | keys) == ["common_name","id"])'
jqok "metabase: masked_key is the 7-char prefix + 40 *" --arg k "$ETL_KEY" '.[] | select(.id == 2) | .masked_key == ($k[0:7] + ("*" * 40)) and .group.name == "Analysts"'
jqok "metabase: no key value in the list" --arg a "$ADMIN_KEY" --arg e "$ETL_KEY" 'tostring | (contains($a) or contains($e)) | not'
req c1 GET "$MB/api/api-key/count" "${H_S[@]}"
want 200 json "metabase: count"
body_is "3" "metabase: count is a bare integer"

req p1 POST "$MB/api/api-key" "${H_S[@]}" "${H_J[@]}" -d '{"group_id":3,"name":"bi-export"}'
want 200 json "metabase: POST /api/api-key answers 200 (not 201)"
NEW_KEY=$(jqv .unmasked_key) NEW_ID=$(jqv .id)
jqok "metabase: unmasked_key is mb_ + 43 base64 + =" '.unmasked_key | test("^mb_[A-Za-z0-9+/]{43}=$")'
jqok "metabase: created key object + unmasked_key, masked_key matches" '(keys | sort) == (["id","name","group","masked_key","created_at","updated_at","updated_by","unmasked_key"] | sort) and .masked_key == (.unmasked_key[0:7] + ("*" * 40)) and .id == 4 and .group == {"id":3,"name":"Analysts"}'
req p2 POST "$MB/api/api-key" "${H_S[@]}" "${H_J[@]}" -d '{"group_id":3,"name":"bi-export"}'
want 400 json "metabase: duplicate name"
jqok "metabase: 400 body has errors.name" '.errors | type == "object" and has("name")'
req p3 POST "$MB/api/api-key" "${H_S[@]}" "${H_J[@]}" -d '{"name":"no-group"}'
want 400 json "metabase: missing group_id"
jqok "metabase: 400 body has errors.group_id" '.errors | has("group_id")'
req p4 POST "$MB/api/api-key" "${H_S[@]}" "${H_J[@]}" -d '{"name":"bad-group","group_id":99}'
want 400 json "metabase: unknown group"
for i in 1 2 3 4 5 6 7 8; do
  req pn POST "$MB/api/api-key" "${H_S[@]}" "${H_J[@]}" -d "{\"group_id\":1,\"name\":\"bulk-$i\"}"
  [ "$S" = 200 ] || fail "metabase: bulk create $i: $(what)"
done
req l2 GET "$MB/api/api-key" "${H_S[@]}"
jqok "metabase: 12 keys, 7-char prefixes unique" 'length == 12 and ([.[].masked_key[0:7]] | unique | length) == 12'

req b1 GET "$MB/api/card/12" -H "X-API-Key: $NEW_KEY"
want 200 json "metabase: business API with a new key"
jqok "metabase: business answer {ok, path}" '.ok == true and .path == "/api/card/12"'
req b2 POST "$MB/api/dataset" -H "X-API-Key: $ETL_KEY" "${H_J[@]}" -d '{"database":1}'
want 200 json "metabase: POST /api/dataset with a key"
req b3 GET "$MB/api/dashboard/3" -H "X-API-Key: mb_AAAAbogus"
want 401 text "metabase: business API with an unknown key"
body_is "Unauthenticated" "metabase: business 401 body"
req b4 GET "$MB/api/dashboard/3"
want 401 text "metabase: business API without a key"

req u1 PUT "$MB/api/api-key/$NEW_ID" "${H_S[@]}" "${H_J[@]}" -d '{"name":"bi-export-2"}'
want 200 json "metabase: PUT renames"
jqok "metabase: PUT answers the key object" '.name == "bi-export-2" and (has("unmasked_key") | not) and .group.id == 3'
req u2 PUT "$MB/api/api-key/$NEW_ID" "${H_S[@]}" "${H_J[@]}" -d '{"group_id":1}'
jqok "metabase: PUT moves the key to another group" '.group == {"id":1,"name":"All Users"}'
req u3 PUT "$MB/api/api-key/999" "${H_S[@]}" "${H_J[@]}" -d '{"name":"zzz"}'
want 404 text "metabase: PUT an unknown id"
body_is "Not found." "metabase: 404 body"

req g1 PUT "$MB/api/api-key/2/regenerate" "${H_S[@]}"
want 200 json "metabase: regenerate (new version)"
jqok "metabase: new regenerate shape {id, unmasked_key, masked_key, prefix}" '(keys | sort) == ["id","masked_key","prefix","unmasked_key"] and .id == 2 and .prefix == .unmasked_key[0:7] and .masked_key == (.prefix + ("*" * 40)) and (.unmasked_key | test("^mb_[A-Za-z0-9+/]{43}=$"))'
ETL_KEY2=$(jqv .unmasked_key)
req g2 GET "$MB/api/card/1" -H "X-API-Key: $ETL_KEY"
want 401 text "metabase: the regenerated-away key stops working at once"
req g3 GET "$MB/api/card/1" -H "X-API-Key: $ETL_KEY2"
want 200 json "metabase: the new key works"
req g4 PUT "$MB/api/api-key/999/regenerate" "${H_S[@]}"
want 404 text "metabase: regenerate an unknown id"
body_is "Not found." "metabase: regenerate 404 body"

req d1 DELETE "$MB/api/api-key/3" "${H_S[@]}"
want 204 none "metabase: DELETE answers 204 with an empty body"
req d2 GET "$MB/api/card/1" -H "X-API-Key: $REPORT_KEY"
want 401 text "metabase: a deleted key is refused at once"
body_is "Unauthenticated" "metabase: deleted key body"
req d3 DELETE "$MB/api/api-key/3" "${H_S[@]}"
want 404 text "metabase: a second DELETE"
body_is "Not found." "metabase: second DELETE body"
req d4 DELETE "$MB/api/api-key/999" -H "X-API-Key: $ADMIN_KEY"
want 404 text "metabase: DELETE an unknown id (admin key)"
req d5 GET "$MB/api/api-key" "${H_S[@]}"
jqok "metabase: the deleted key is gone from the list" 'length == 11 and all(.[]; .id != 3)'
check "metabase: the state file records the deletion" jqf "$T/mb.state.json" '(.deleted | map(.id) == [3]) and all(.keys[]; .id != 3)'
check "metabase: no temporary state file left" test -z "$(ls "$T"/mb.state.json.tmp.* 2>/dev/null)"

req q1 GET "$MB/api/permissions/group" "${H_S[@]}"
want 200 json "metabase: permission groups"
jqok "metabase: groups have id, name, member_count, magic_group_type (new)" 'all(.[]; has("id") and has("name") and has("member_count") and has("magic_group_type")) and (map(select(.magic_group_type == "admin")) | .[0].name) == "Administrators"'
req q2 GET "$MB/api/permissions/graph" "${H_S[@]}"
want 200 json "metabase: permissions graph"
jqok "metabase: graph {revision, groups: {gid: {db: {view-data, ...}}}}" 'has("revision") and (.groups | has("2") and has("3")) and (.groups["2"]["1"] | has("view-data") and has("create-queries") and has("download") and has("data-model") and has("details"))'
req q3 GET "$MB/api/permissions/group" -H "X-API-Key: $ETL_KEY2"
want 403 text "metabase: a non-admin key cannot read permissions"

# kill -9 and restart on the same state (and the same port), old version
{ kill -KILL "$MBPID"; stop_pid "$MBPID"; } 2>/dev/null # no "Killed" job notice
req k1 GET "$MB/api/health"
expect_eq "metabase: killed, the connection is refused (curl exit 7)" "$RC" 7
emu_start mb metabase --port "$MBPORT" --metabase-version old || fail "metabase restarts on port $MBPORT"
MBPID=$EMU_PID
req k2 GET "$MB/api/card/1" -H "X-API-Key: $REPORT_KEY"
want 401 text "restart: the deleted key stays deleted"
req k3 GET "$MB/api/card/1" -H "X-API-Key: $ETL_KEY"
want 401 text "restart: the regenerated-away key stays dead"
req k4 GET "$MB/api/card/1" -H "X-API-Key: $ETL_KEY2"
want 200 json "restart: the regenerated key still works"
req k5 GET "$MB/api/api-key" "${H_S[@]}"
jqok "restart: the list is as before (11 keys, no id 3, renamed key kept)" 'length == 11 and all(.[]; .id != 3) and (map(select(.id == 4)) | .[0].name) == "bi-export-2"'
req k6 DELETE "$MB/api/api-key/3" "${H_S[@]}"
want 404 text "restart: DELETE of the deleted key is still 404"
req k7 POST "$MB/api/api-key" "${H_S[@]}" "${H_J[@]}" -d '{"group_id":3,"name":"after-restart"}'
jqok "restart: ids are not reused" '.id == 13'
req g5 PUT "$MB/api/api-key/4/regenerate" "${H_S[@]}"
want 200 json "metabase old: regenerate"
jqok "metabase old: regenerate answers the full key object + unmasked_key" '(keys | sort) == (["id","name","group","masked_key","created_at","updated_at","updated_by","unmasked_key"] | sort) and .id == 4 and .name == "bi-export-2" and .masked_key == (.unmasked_key[0:7] + ("*" * 40))'
req q4 GET "$MB/api/permissions/group" "${H_S[@]}"
jqok "metabase old: no magic_group_type in groups" 'all(.[]; has("magic_group_type") | not) and all(.[]; has("member_count"))'

# ---- fault injection (on Metabase)
fail_mode "$MB" '{"mode":"503","count":2,"path_prefix":"/api/api-key"}'
jqok "fault: the control API echoes the fault" '.fault.mode == "503" and .fault.count == 2'
req f1 GET "$MB/api/health"
want 200 json "fault: a path outside path_prefix is not affected"
req f2 GET "$MB/api/api-key" "${H_S[@]}"
want 503 text "fault: 503 (1 of 2)"
req f3 GET "$MB/api/api-key/count" "${H_S[@]}"
want 503 text "fault: 503 (2 of 2)"
req f4 GET "$MB/api/api-key/count" "${H_S[@]}"
want 200 json "fault: then normal again"
fail_mode "$MB" '{"mode":"500"}'
req f5 GET "$MB/api/health"
want 500 text "fault: unlimited 500"
req f6 GET "$MB/api/card/1" -H "X-API-Key: $ETL_KEY2"
want 500 text "fault: unlimited 500, again"
fail_mode "$MB" '{"mode":"none"}'
jqok "fault: none clears" '.fault == null'
req f7 GET "$MB/api/health"
want 200 json "fault: cleared"
fail_mode "$MB" '{"mode":"timeout","count":1}'
t0=$(date +%s%N)
req f8 GET "$MB/api/health" --max-time 2
el=$((($(date +%s%N) - t0) / 1000000))
expect_eq "fault: timeout — curl --max-time 2 times out (exit 28)" "$RC" 28
check "fault: timeout — after ~2 s ($el ms)" test "$el" -ge 1800 -a "$el" -lt 4500
req f9 GET "$MB/api/health"
want 200 json "fault: after the timeout, normal"
fail_mode "$MB" '{"mode":"close","count":1}'
req f10 GET "$MB/api/health"
expect_eq "fault: close — empty reply (curl exit 52)" "$RC" 52
req f11 GET "$MB/api/health"
want 200 json "fault: after the close, normal"
fail_mode "$MB" '{"mode":"503","seconds":0.6}'
req f12 GET "$MB/api/health"
want 503 text "fault: timed 503"
sleep 0.8
req f13 GET "$MB/api/health"
want 200 json "fault: the timed fault has expired"
req f14 POST "$MB/_emu/fail" "${H_J[@]}" -d '{"mode":"teapot"}'
want 400 json "fault: a bad mode is refused"
req f15 POST "$MB/_emu/fail" "${H_J[@]}" -d 'not json'
want 400 json "fault: a body that is not JSON is refused"

req r1 GET "$MB/_emu/requests"
want 200 json "control: the request log"
jqok "control: it counts the two 503s on /api/api-key, the timeout, the close" '(map(select(.status == 503 and (.path | startswith("/api/api-key")))) | length) == 2 and (map(select(.fault == "timeout")) | length) == 1 and (map(select(.fault == "close")) | length) == 1'
jqok "control: entries have method, path, status, ts; control calls not logged" 'all(.[]; has("method") and has("path") and has("status") and has("ts")) and all(.[]; .path | startswith("/_emu") | not)'
req r2 GET "$MB/_emu/state"
want 200 json "control: the state"
jqok "control: the state shows what was revoked" '(.deleted | map(.id)) == [3] and (.rotated | map(.id)) == [2, 4]'
check "log file: one JSON object per line with ts, method, path, query, status, duration_ms" \
  python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line); n += 1
    assert {"ts", "method", "path", "query", "status", "duration_ms"} <= set(r), r
    assert not r["path"].startswith("/_emu")
assert n > 50, n' "$T/mb.log"

# ==== SeaTable =======================================================================
ACC=$(s st .account_token) ADM=$(s st .admin_token)
T_ETL=$(s st '.bases[0].tokens[0].api_token') T_REP=$(s st '.bases[1].tokens[0].api_token')
U_CRM=$(s st '.bases[0].dtable_uuid') U_SALES=$(s st '.bases[1].dtable_uuid')
W1=$ST/api/v2.1/workspace/1/dtable
req s1 GET "$W1/CRM/api-tokens/" -H "Authorization: Token $ACC"
want 200 json "seatable: list with the account token"
jqok "seatable: {api_tokens: [...]} in clear with the documented fields" --arg t "$T_ETL" '(.api_tokens | length) == 1 and .api_tokens[0].api_token == $t and (.api_tokens[0] | keys) == ["api_token","app_name","generated_at","generated_by","last_access","permission"]'
req s2 GET "$W1/Sales%20Data/api-tokens/" -H "Authorization: Bearer $ACC"
want 200 json "seatable: Bearer works too, base name URL-encoded"
jqok "seatable: the other base's token" --arg t "$T_REP" '.api_tokens[0].api_token == $t and .api_tokens[0].permission == "r"'
req s3 GET "$W1/CRM/api-tokens/"
want 401 json "seatable: no Authorization"
jqok "seatable: 401 body" '. == {"detail": "Invalid token"}'
req s4 GET "$W1/CRM/api-tokens/" -H "Authorization: Token 0000000000000000000000000000000000000000"
want 401 json "seatable: a bad account token"
req s4b GET "$W1/CRM/api-tokens/" -H "Authorization: Token $T_ETL"
want 401 json "seatable: an API token is not an account token"
req s5 GET "$ST/api/v2.1/workspace/2/dtable/Other/api-tokens/" -H "Authorization: Token $ACC"
want 403 json "seatable: a base the account does not own"
jqok "seatable: 403 body" '. == {"error_msg": "Permission denied."}'
req s6 GET "$ST/api/v2.1/workspace/9/dtable/CRM/api-tokens/" -H "Authorization: Token $ACC"
want 404 json "seatable: an unknown workspace"
jqok "seatable: 404 has error_msg" 'has("error_msg")'
req s7 GET "$W1/Nope/api-tokens/" -H "Authorization: Token $ACC"
want 404 json "seatable: an unknown base"
req s8 GET "$W1/CRM/api-tokens" -H "Authorization: Token $ACC"
check "seatable: no trailing slash → 301 to the slashed path" test "$S" = 301 -a -n "$(grep -i "^location: /api/v2.1/workspace/1/dtable/CRM/api-tokens/" "$T/r/s8.hdr")"

req s9 POST "$W1/CRM/api-tokens/" -H "Authorization: Token $ACC" --data-urlencode app_name=bi --data-urlencode permission=r
want 201 json "seatable: POST (form) answers 201"
jqok "seatable: the new token: 40 lowercase hex, r" '.app_name == "bi" and .permission == "r" and (.api_token | test("^[0-9a-f]{40}$")) and (keys | length) == 6'
T_BI=$(jqv .api_token)
req s10 POST "$W1/CRM/api-tokens/" -H "Authorization: Token $ACC" "${H_J[@]}" -d '{"app_name":"sync","permission":"rw"}'
want 201 json "seatable: POST (JSON) answers 201"
req s10b POST "$W1/CRM/api-tokens/" -H "Authorization: Token $ACC" -F app_name=mp -F permission=r
want 201 json "seatable: POST (multipart) answers 201"
req s11 POST "$W1/CRM/api-tokens/" -H "Authorization: Token $ACC" --data-urlencode app_name=bi --data-urlencode permission=r
want 400 json "seatable: a duplicate app_name"
req s12 POST "$W1/CRM/api-tokens/" -H "Authorization: Token $ACC" --data-urlencode app_name=x --data-urlencode permission=admin
want 400 json "seatable: a bad permission"
req s13 PUT "$W1/CRM/api-tokens/bi/" -H "Authorization: Token $ACC" --data-urlencode permission=rw
want 200 json "seatable: PUT changes the permission"
jqok "seatable: PUT answers the token with the new permission" '.permission == "rw" and .app_name == "bi"'
req s14 PUT "$W1/CRM/api-tokens/ghost/" -H "Authorization: Token $ACC" --data-urlencode permission=r
want 404 json "seatable: PUT an unknown app"
jqok "seatable: 404 body" '. == {"error_msg": "api token not found."}'

req s15 GET "$ST/api/v2.1/dtable/app-access-token/" -H "Authorization: Token $T_BI"
want 200 json "seatable: app-access-token with an API token"
jqok "seatable: app-access-token fields" --arg u "$U_CRM" '.app_name == "bi" and .dtable_uuid == $u and .dtable_name == "CRM" and .workspace_id == 1 and (.dtable_server | startswith("http://")) and has("dtable_socket")'
check "seatable: the access token is a JWT with dtable_uuid, app_name, permission, exp = now + 3 days" \
  python3 -c '
import base64, json, sys, time
j = json.load(open(sys.argv[1]))
parts = j["access_token"].split(".")
assert len(parts) == 3 and all(parts), parts
pl = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
assert pl["dtable_uuid"] == j["dtable_uuid"] and pl["app_name"] == "bi" and pl["permission"] == "rw", pl
assert abs(pl["exp"] - (time.time() + 3 * 86400)) < 60, pl["exp"]' "$B"
req s16 GET "$ST/api/v2.1/dtable/app-access-token/" -H "Authorization: Token ffffffffffffffffffffffffffffffffffffffff"
want 401 json "seatable: app-access-token with a bad token"
jqok "seatable: its body" '. == {"detail": "Invalid token"}'

req s17 DELETE "$W1/CRM/api-tokens/bi/" -H "Authorization: Token $ACC"
want 200 json "seatable: DELETE"
jqok "seatable: DELETE answers {success: true}" '. == {"success": true}'
req s18 GET "$ST/api/v2.1/dtable/app-access-token/" -H "Authorization: Bearer $T_BI"
want 401 json "seatable: the deleted token is refused at once"
req s19 DELETE "$W1/CRM/api-tokens/bi/" -H "Authorization: Token $ACC"
want 404 json "seatable: a second DELETE"
jqok "seatable: its body" '. == {"error_msg": "api token not found."}'

AD=$ST/api/v2.1/admin/dtables
req s20 DELETE "$AD/$U_SALES/api-tokens/$T_REP/" -H "Authorization: Token $ACC"
want 403 json "seatable: admin DELETE with a non-admin account"
req s21 DELETE "$AD/$U_SALES/api-tokens/$T_REP/"
want 401 json "seatable: admin DELETE without a token"
req s22 DELETE "$AD/$U_SALES/api-tokens/$T_REP/" -H "Authorization: Token $ADM"
want 200 json "seatable: admin DELETE"
jqok "seatable: admin DELETE answers {success: true}" '. == {"success": true}'
req s23 DELETE "$AD/$U_SALES/api-tokens/$T_REP/" -H "Authorization: Token $ADM"
want 404 json "seatable: admin DELETE again"
req s24 GET "$ST/api/v2.1/dtable/app-access-token/" -H "Authorization: Token $T_REP"
want 401 json "seatable: the admin-deleted token is refused"
req s25 GET "$W1/Sales%20Data/api-tokens/" -H "Authorization: Token $ACC"
jqok "seatable: the base has no token left" '.api_tokens == []'
req s26 GET "$ST/_emu/state"
jqok "seatable: the state records both deletions" '(.deleted | map(.app_name + ":" + .by) | sort) == ["bi:owner", "report:admin"]'

# ==== Kong ===========================================================================
K1_ID=$(s kg '.key_auths[0].id') K1=$(s kg '.key_auths[0].key') C1=$(s kg '.consumers[0].id')
K2_ID=$(s kg '.key_auths[1].id') K2=$(s kg '.key_auths[1].key')
K4_ID=$(s kg '.key_auths[3].id') K4=$(s kg '.key_auths[3].key')
K5_ID=$(s kg '.key_auths[4].id')
req n0 GET "$KG/key-auths"
want 200 json "kong: list (default size)"
jqok "kong: 5 credentials on one page: next null, no offset" '(.data | length) == 5 and .next == null and (has("offset") | not)'
jqok "kong: credential shape {id, key, consumer {id}, created_at, ttl, tags}" 'all(.data[]; (keys | sort) == ["consumer","created_at","id","key","tags","ttl"] and (.consumer | keys) == ["id"])'
jq -r '[.data[].id] | sort | join(" ")' "$B" >"$T/kong-all-ids"
req n1 GET "$KG/key-auths?size=2"
want 200 json "kong: page 1 (size=2)"
jqok "kong: page 1 has 2, an offset and next = /key-auths?offset=<escaped>&size=2" '(.data | length) == 2 and (.offset | type) == "string" and .next == ("/key-auths?offset=" + (.offset | @uri) + "&size=2")'
jq -r '.data[].id' "$B" >"$T/kong-paged-ids"
NEXT=$(jqv .next)
req n2 GET "$KG$NEXT"
want 200 json "kong: page 2 by following next"
jqok "kong: page 2 has 2 and an offset" '(.data | length) == 2 and (.offset | type) == "string" and (.next | type) == "string"'
jq -r '.data[].id' "$B" >>"$T/kong-paged-ids"
OFF=$(jqv .offset)
req n3 GET "$KG/key-auths" -G --data-urlencode "offset=$OFF" --data-urlencode size=2
want 200 json "kong: page 3 by the offset field"
jqok "kong: the last page has 1, next null, no offset" '(.data | length) == 1 and .next == null and (has("offset") | not)'
jq -r '.data[].id' "$B" >>"$T/kong-paged-ids"
expect_eq "kong: the pages cover all 5 credentials once" "$(sort "$T/kong-paged-ids" | tr '\n' ' ' | sed 's/ $//')" "$(cat "$T/kong-all-ids")"
req n4 GET "$KG/key-auths?offset=%21%21nope"
want 400 json "kong: an invalid offset"
req n5 GET "$KG/key-auths?size=0"
want 400 json "kong: size=0"

req n6 GET "$KG/key-auths/$K1_ID"
want 200 json "kong: GET a credential by id"
jqok "kong: its fields" --arg k "$K1" --arg c "$C1" '.key == $k and .consumer.id == $c and .ttl == null and .tags == null'
req n7 GET "$KG/key-auths/$K2"
want 200 json "kong: GET a credential by key"
jqok "kong: the right one" --arg i "$K2_ID" '.id == $i'
req n8 GET "$KG/key-auths/00000000-0000-4000-8000-000000000000"
want 404 json "kong: GET unknown"
jqok "kong: 404 body" '. == {"message": "Not found"}'

req x1 GET "$KG/orders/1" -H "apikey: $K1"
want 200 json "kong proxy: a valid apikey header"
jqok "kong proxy: upstream X-Consumer-ID and X-Credential-Identifier" --arg i "$K1_ID" --arg c "$C1" '.headers["X-Consumer-ID"] == $c and .headers["X-Credential-Identifier"] == $i'
req x2 GET "$KG/orders/2?apikey=$K2"
want 200 json "kong proxy: ?apikey= in the query"
req x3 GET "$KG/orders/3" -H "apikey: wrongwrongwrongwrongwrongwrong00"
want 401 json "kong proxy: a bad key"
jqok "kong proxy: 401 body" '. == {"message": "Unauthorized"}'
req x4 GET "$KG/orders/4"
want 401 json "kong proxy: no key"

req y1 DELETE "$KG/key-auths/$K1_ID"
want 204 none "kong: DELETE by id answers 204, empty"
req y2 GET "$KG/orders/1" -H "apikey: $K1"
want 401 json "kong proxy: the deleted key is refused"
req y3 DELETE "$KG/key-auths/$K1_ID"
want 404 json "kong: DELETE again"
jqok "kong: its body" '. == {"message": "Not found"}'
req y4 DELETE "$KG/key-auths/$K2"
want 204 none "kong: DELETE by key"
req y5 DELETE "$KG/consumers/alice/key-auth/$K4_ID"
want 404 json "kong: DELETE through the wrong consumer (K4 is bob's)"
jqok "kong: its body" '. == {"message": "Not found"}'
req y6 DELETE "$KG/consumers/bob/key-auth/$K4_ID"
want 204 none "kong: DELETE /consumers/{username}/key-auth/{id} answers 204, empty"
req y7 DELETE "$KG/consumers/$(s kg '.consumers[1].id')/key-auth/$K4_ID"
want 404 json "kong: DELETE /consumers/{consumer id}/key-auth/{id} again"
req y7b DELETE "$KG/consumers/nobody/key-auth/$K5_ID"
want 404 json "kong: DELETE through an unknown consumer"
req y8 GET "$KG/orders/1" -H "apikey: $K4"
want 401 json "kong proxy: the key deleted through its consumer is refused"
req z1 PATCH "$KG/key-auths/$K5_ID" "${H_J[@]}" -d '{"key":"rotatedKey0000000000000000000001"}'
want 200 json "kong: PATCH a new key"
jqok "kong: PATCH answers the credential with the new key" --arg i "$K5_ID" '.id == $i and .key == "rotatedKey0000000000000000000001"'
req z2 GET "$KG/orders/9" -H "apikey: rotatedKey0000000000000000000001"
want 200 json "kong proxy: the new key works"
req z3 PATCH "$KG/key-auths/00000000-0000-4000-8000-000000000000" "${H_J[@]}" -d '{"key":"x"}'
want 404 json "kong: PATCH unknown"
req z4 GET "$KG/key-auths"
jqok "kong: 2 credentials left" '(.data | length) == 2'
req z5 GET "$KG/_emu/state"
jqok "kong: the state records the 3 deletions and the rotation" --arg i "$K5_ID" '(.deleted | length) == 3 and (.rotated | map(.id)) == [$i]'

ADM_K=$(s kr .admin_token)
req w1 GET "$KR/key-auths"
want 401 json "kong (admin token): no Kong-Admin-Token"
jqok "kong (admin token): 401 body" '. == {"message": "Unauthorized"}'
req w2 GET "$KR/key-auths" -H "Kong-Admin-Token: wrong"
want 401 json "kong (admin token): a wrong token"
req w3 GET "$KR/key-auths" -H "Kong-Admin-Token: $ADM_K"
want 200 json "kong (admin token): the right token"
req w4 DELETE "$KR/key-auths/$K1_ID" -H "Kong-Admin-Token: wrong"
want 401 json "kong (admin token): DELETE with a wrong token"
req w5 GET "$KR/orders/1" -H "apikey: $K1"
want 200 json "kong (admin token): the proxy needs no admin token"
req w6 DELETE "$KR/key-auths/00000000-0000-4000-8000-000000000000" -H "Kong-Admin-Token: $ADM_K"
want 204 none "kong --kong-delete-unknown 204: DELETE unknown answers 204"

# ==== generic ========================================================================
GT=$(s gn .token)
req e1 GET "$GN/credentials" -H "Authorization: Bearer $GT"
want 200 json "generic: list"
jqok "generic: {items: [{id, key_prefix, label, enabled}]}" '(.items | length) == 2 and (.items[0] | keys) == ["enabled","id","key_prefix","label"]'
req e2 GET "$GN/credentials"
want 401 json "generic: no token"
jqok "generic: 401 body" '. == {"error": "unauthorized"}'
req e3 GET "$GN/credentials" -H "Authorization: Bearer nope"
want 401 json "generic: a wrong token"
req e4 PUT "$GN/credentials/cred-1/status" -H "Authorization: Bearer $GT" "${H_J[@]}" -d '{"status": false}'
want 200 json "generic: disable"
jqok "generic: {id, status}" '. == {"id": "cred-1", "status": false}'
req e5 PUT "$GN/credentials/nope/status" -H "Authorization: Bearer $GT" "${H_J[@]}" -d '{"status": false}'
want 404 json "generic: an unknown id"
jqok "generic: 404 body" '. == {"error": "no such credential"}'
req e6 PUT "$GN/credentials/cred-2/status" -H "Authorization: Bearer $GT" "${H_J[@]}" -d 'status=false'
want 400 json "generic: a body that is not JSON"
jqok "generic: 400 has error" '.error | type == "string"'
req e7 PUT "$GN/credentials/cred-2/status" -H "Authorization: Bearer $GT" "${H_J[@]}" -d '{"status": "false"}'
want 400 json "generic: status not a boolean"
req e8 PUT "$GN/credentials/cred-1/status" -H "Authorization: Bearer x" "${H_J[@]}" -d '{"status": true}'
want 401 json "generic: PUT with a wrong token"
req e9 GET "$GN/_emu/state"
jqok "generic: the state shows cred-1 disabled, cred-2 enabled" '(.credentials | map({(.id): .enabled}) | add) == {"cred-1": false, "cred-2": true}'

# a held request (timeout fault) does not keep the emulator from stopping
fail_mode "$GN" '{"mode":"timeout"}'
curl -sS --max-time 10 -o /dev/null "$GN/credentials" 2>/dev/null &
CURL_PID=$!
sleep 0.5
t0=$(date +%s%N)
stop_pid "$GNPID"
el=$((($(date +%s%N) - t0) / 1000000))
expect_eq "SIGTERM with a request held: exit status 0" "$STOP_RC" 0
check "SIGTERM with a request held: stops at once ($el ms)" test "$el" -lt 2000
wait "$CURL_PID"
check "the held request got no answer (curl exit $?)" test $? -ne 0
stop_pid "$STPID"
expect_eq "SIGTERM: seatable exits 0" "$STOP_RC" 0

# ==== bad state, missing state ========================================================
echo '{not json' >"$T/bad.json"
timeout 10 python3 "$EMU" --product kong --state "$T/bad.json" --port 0 >"$T/bad.out" 2>"$T/bad.err"
expect_eq "a state file that is not JSON: exit 2" "$?" 2
check "... with a message on stderr, nothing on stdout" test -s "$T/bad.err" -a ! -s "$T/bad.out"
emu_start fresh generic && FRESH=http://127.0.0.1:$EMU_PORT
check "a missing state file is created (mode 600)" test "$(stat -c %a "$T/fresh.state.json" 2>/dev/null)" = 600
req m1 GET "$FRESH/credentials" -H "Authorization: Bearer $(s fresh .token)"
jqok "... and served (no credentials)" '.items == []'

# ==== quiet ===========================================================================
for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
quiet=1
for f in "$T"/*.stdout "$T"/*.stderr; do
  if [ -s "$f" ]; then quiet=0; echo "# $f: $(head -c 300 "$f")"; fi
done
expect_eq "the emulators printed nothing on stdout or stderr" "$quiet" 1

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
