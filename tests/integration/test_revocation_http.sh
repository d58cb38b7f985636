#!/usr/bin/env bash
# test_revocation_http.sh — the generic adapters, driven purely by configuration, through
# `keywatch revoke` (no daemon: the command runs the responder itself).
#
#   http     a store with a contract of its own (the emulator's "generic" product): the
#            key is looked up with GET /credentials (Bearer token from a 0600 file) by its
#            display prefix, then disabled with PUT /credentials/{id}/status
#            {"status": false}; "not found" on a second attempt counts as done
#   command  an argv (no shell) with placeholders; exit 0 = revoked, a gone_exit code =
#            already gone
# Then revoked_key_use: the revoked key still succeeding in traffic ingested afterwards
# raises a critical "revoked-key-used" alert.  No raw key or credential in any output.
. "$(dirname "$0")/lib.sh"

EMU=$KW_SOURCE_DIR/tests/tools/keystore_emu.py
export KEYWATCH_SECRET=test-responder-http-secret-0123456789abcdef

python3 - "$T/keys.txt" <<'EOF'
import os, string, sys, random
alpha = string.ascii_letters + string.digits
seen = {}
while len(seen) < 4:
    k = "gk_" + "".join(random.SystemRandom().choice(alpha) for _ in range(40))
    seen.setdefault(k[:7], k)
open(sys.argv[1], "w").write("\n".join(seen.values()) + "\n")
EOF
mapfile -t K <"$T/keys.txt"
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
mkdir -p "$T/emu" "$T/secrets"
python3 - "$T/emu/state.json" "$TOKEN" "$T/keys.txt" <<'EOF'
import json, sys
keys = open(sys.argv[3]).read().split()
json.dump({"token": sys.argv[2],
           "credentials": [{"id": "cred-%d" % i, "key_prefix": k[:7], "label": "svc-%d" % i,
                            "enabled": True} for i, k in enumerate(keys)]},
          open(sys.argv[1], "w"))
EOF
printf '%s\n' "$TOKEN" >"$T/secrets/creds.token"
chmod 600 "$T/secrets/creds.token"

EMU_PORT=$(kw_free_port)
kw_spawn_bg python3 "$EMU" --product generic --state "$T/emu/state.json" --port "$EMU_PORT"
kw_wait_port "$EMU_PORT" 10 "$KW_SPAWNED" || { fail "emulator did not start"; kw_finish; }
ok "key-store emulator (generic contract) on 127.0.0.1:$EMU_PORT"
enabled() { # CRED_ID
  python3 -c 'import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_emu/state" % sys.argv[1]))
print(next(c["enabled"] for c in s["credentials"] if c["id"] == sys.argv[2]))' "$EMU_PORT" "$1"
}

cat >"$T/revoke.sh" <<'EOF'
#!/bin/sh
# argv: prefix fingerprint rule — record them, then say "gone" for the second call
echo "$@" >>"$(dirname "$0")/revoke.calls"
env >"$(dirname "$0")/revoke.env"
[ "$(wc -l <"$(dirname "$0")/revoke.calls")" -gt 1 ] && exit 3
exit 0
EOF
chmod 755 "$T/revoke.sh"

cat >"$T/kw.yaml" <<YAML
db: $T/kw/kw.db
responder:
  dry_run: false
  stores:
    - name: creds
      type: http
      prefixes: [gk_]
      lookup:
        url: http://127.0.0.1:$EMU_PORT/credentials
        items: items
        match_field: key_prefix
        match: prefix
        id_field: id
      method: PUT
      url: http://127.0.0.1:$EMU_PORT/credentials/\${key_id}/status
      headers:
        - {name: Authorization, prefix: "Bearer ", secret: {file: $T/secrets/creds.token}}
        - {name: Content-Type, value: application/json}
        - {name: X-Revocation, value: "\${revocation_id}"}
      body: '{"status": false, "reason": "keywatch \${rule}"}'
      success: [200]
      gone: [404]
    - name: script
      type: command
      prefixes: [none_]
      argv: [$T/revoke.sh, "\${key_prefix}", "\${key_fingerprint}", "\${rule}"]
      gone_exit: [3]
      timeout: 5s
http:
  tokens:
    - {name: ops, role: responder, secret: {env: KW_TEST_API_TOKEN}}
YAML
mkdir -p "$T/kw"

log_line() { # KEY STATUS PATH
  printf '127.0.0.1 - - [%s] "GET %s HTTP/1.1" %s 12 "-" "svc/1.0" "%s" 0.002\n' \
    "$(date -u '+%d/%b/%Y:%H:%M:%S +0000')" "$3" "$2" "$1"
}
for k in "${K[@]}"; do log_line "$k" 200 /v1/orders/1; done >"$T/before.log"
kw ingest --config "$T/kw.yaml" ingest -q --format keyed "$T/before.log"
expect_eq "ingest of the traffic exits 0" "$KW_RC" 0

# ---------------------------------------------------------------- http adapter
kw revoke --config "$T/kw.yaml" revoke "${K[0]:0:7}" --reason "test: http adapter" --json
expect_eq "revoke through the http adapter exits 0" "$KW_RC" 0
if is_json "$KW_OUT"; then
  expect_eq "state done" "$(json_get "$KW_OUT" 'j["state"]')" done
  expect_eq "store creds" "$(json_get "$KW_OUT" 'j["store"]')" creds
  expect_eq "the store's id was found by the lookup" "$(json_get "$KW_OUT" 'j["store_ref"]')" cred-0
  expect_eq "two calls: lookup, then the PUT" \
    "$(json_get "$KW_OUT" '[c["request"] + " " + str(c["status"]) for c in j["calls"]]')" \
    '["GET /credentials 200", "PUT /credentials/cred-0/status 200"]'
else
  fail "revoke --json is not JSON: $(head -c 300 "$KW_OUT") $(head -c 300 "$KW_ERR")"
fi
expect_eq "the credential is disabled at the store" "$(enabled cred-0)" False
expect_eq "the other credentials are not" "$(enabled cred-1)" True
kw again --config "$T/kw.yaml" revoke "${K[0]:0:7}" --json
expect_eq "revoking it again exits 0" "$KW_RC" 0
is_json "$KW_OUT" && expect_eq "... and the PUT still succeeds (disabling is idempotent)" \
  "$(json_get "$KW_OUT" 'j["state"]')" done

# A key the store does not know: the lookup finds nothing → gone (counts as done).
sed -i "s/\"key_prefix\": \"${K[1]:0:7}\"/\"key_prefix\": \"gk_ZZZZ\"/" "$T/emu/state.json"
kw_stop_pid "$KW_SPAWNED"
kw_spawn_bg python3 "$EMU" --product generic --state "$T/emu/state.json" --port "$EMU_PORT"
kw_wait_port "$EMU_PORT" 10 "$KW_SPAWNED" || fail "emulator did not restart"
kw gone --config "$T/kw.yaml" revoke "${K[1]:0:7}" --json
expect_eq "a key the store does not list: exits 0" "$KW_RC" 0
is_json "$KW_OUT" && expect_eq "... state gone" "$(json_get "$KW_OUT" 'j["state"]')" gone

# A wrong bearer token: refused, retried, still queued when the wait ends.
printf 'not-the-token\n' >"$T/secrets/creds.token"
kw refused --config "$T/kw.yaml" revoke "${K[2]:0:7}" --timeout 2s --json
expect_eq "a refused credential: exits 1" "$KW_RC" 1
if is_json "$KW_OUT"; then
  expect_eq "... the revocation stays queued" "$(json_get "$KW_OUT" 'j["state"]')" queued
  expect_eq "... each attempt was refused (401)" \
    "$(json_get "$KW_OUT" 'sorted(set(c["result"] + " " + str(c["status"]) for c in j["calls"]))')" \
    '["refused 401"]'
fi
printf '%s\n' "$TOKEN" >"$T/secrets/creds.token"
chmod 644 "$T/secrets/creds.token"
kw mode --config "$T/kw.yaml" revoke "${K[2]:0:7}"
expect_eq "a credential file readable by others is refused" "$KW_RC" 2
check "... naming the field and the fix" \
  grep -q "responder.stores.0.headers.0.secret.file: .*chmod 600" "$KW_ERR"
chmod 600 "$T/secrets/creds.token"

# ---------------------------------------------------------------- command adapter
export KW_TEST_API_TOKEN=api-token-never-for-commands-0123456789
export KW_TEST_HARMLESS=visible
kw cmd --config "$T/kw.yaml" revoke "${K[3]:0:7}" --store script --json
expect_eq "revoke through the command adapter exits 0" "$KW_RC" 0
is_json "$KW_OUT" && expect_eq "... state done" "$(json_get "$KW_OUT" 'j["state"]')" done
FP3=$("$KEYWATCH" --config "$T/kw.yaml" keys --json | python3 -c 'import json, sys
print(next(k["fingerprint"] for k in json.load(sys.stdin) if k["prefix"] == sys.argv[1]))' "${K[3]:0:7}")
expect_eq "the command got the placeholders expanded (no shell)" \
  "$(head -1 "$T/revoke.calls")" "${K[3]:0:7} $FP3 manual"
check "the command does not inherit the API token's variable" bash -c "! grep -q '^KW_TEST_API_TOKEN=' '$T/revoke.env'"
check "... nor the fingerprint secret" bash -c "! grep -q '^KEYWATCH_SECRET=' '$T/revoke.env'"
check "... but the rest of the environment" grep -q '^KW_TEST_HARMLESS=visible$' "$T/revoke.env"
kw cmd2 --config "$T/kw.yaml" revoke "${K[3]:0:7}" --store script --json
is_json "$KW_OUT" && expect_eq "a gone_exit code: state gone" "$(json_get "$KW_OUT" 'j["state"]')" gone

# ---------------------------------------------------------------- revoked_key_use
for i in 1 2 3; do log_line "${K[0]}" 200 /v1/orders/$i; done >"$T/after.log"
kw after --config "$T/kw.yaml" ingest -q --format keyed "$T/after.log"
expect_eq "ingest after the revocation exits 0" "$KW_RC" 0
kw alerts --config "$T/kw.yaml" alerts --rule revoked-key-used --json
if is_json "$KW_OUT"; then
  expect_eq "a revoked key still succeeding raises revoked-key-used" \
    "$(json_get "$KW_OUT" '[(a["key_prefix"], a["severity"]) for a in j]')" \
    "[[\"${K[0]:0:7}\", \"critical\"]]"
else
  fail "alerts --json is not JSON"
fi

# ---------------------------------------------------------------- secrets
python3 - "$T/keys.txt" "$TOKEN" "$T/kw" "$T/out" <<'EOF'
import os, sys
needles = open(sys.argv[1]).read().split() + [sys.argv[2]]
leaks = []
for d in sys.argv[3:]:
    for root, _, files in os.walk(d):
        for f in files:
            data = open(os.path.join(root, f), "rb").read()
            leaks += [(f, n[:7]) for n in needles if n.encode() in data]
sys.exit(1 if leaks else 0)
EOF
if [ $? -eq 0 ]; then ok "no raw key or store credential in the database or outputs"; else
  fail "a raw key or the store credential leaked"; fi

kw_finish
