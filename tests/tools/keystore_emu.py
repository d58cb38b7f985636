#!/usr/bin/env python3
"""keystore_emu.py — a key-store emulator for keywatch's integration tests (Python stdlib only).

One process emulates one product's admin API (and the part of its traffic API that checks
keys), at the product's real paths, on 127.0.0.1, as /work/shared/KEYSTORES.md describes:
status codes, content types, plain-text vs JSON error bodies included.

Usage:
  keystore_emu.py --product metabase|seatable|kong|generic --state FILE
                  [--port N] [--port-file F] [--log F]
                  [--metabase-version new|old] [--kong-delete-unknown 404|204]

  --port N           port on 127.0.0.1 (default 0: any free port)
  --port-file F      the chosen port is written there once listening (F.tmp + rename)
  --log F            appended, one JSON line per request (control calls under /_emu/
                     excluded): ts (epoch s), method, path, query, status, duration_ms
                     (+ "fault" when injected; status 0 when the request got no answer).
                     Paths are logged verbatim: they may hold key values (Kong's
                     /key-auths/{key}, SeaTable's admin DELETE) — a test-only artefact.
  --metabase-version new (default): regenerate answers {"id","unmasked_key","masked_key",
                     "prefix"}, /api/permissions/group has "magic_group_type";
                     old: regenerate answers the full key object + "unmasked_key", no
                     "magic_group_type".
  --kong-delete-unknown 404 (default, KEYSTORES.md) or 204 (what Kong's generic endpoint
                     really does for DELETE /key-auths/{unknown}; nested
                     /consumers/{c}/key-auth/{unknown} is 404 either way).

--state FILE is read at start (created with random tokens and no keys if missing) and
rewritten atomically (FILE.tmp.<pid>, fsync, rename; mode 0600) after every change, so a
test can kill the emulator and start it again on the same state: what was deleted stays
deleted. Fields marked (emu) are added by the emulator; all others may be seeded.
Timestamps missing from seeded records are filled in at start.

metabase:
  {"session": "<admin session token: X-Metabase-Session>",
   "groups": [{"id": 1, "name": "All Users", "magic_group_type": "all-internal-users"},
              {"id": 2, "name": "Administrators", "magic_group_type": "admin"},
              {"id": 3, "name": "Analysts"}],
   "keys": [{"id": 1, "name": "etl", "group_id": 3, "key": "mb_<43 base64>=",
             "created_at": "2026-01-01T00:00:00Z", "updated_at": "..."}],
   "next_id": 2,
   "graph": {...}                      optional: served as /api/permissions/graph "groups"
   "deleted": [{<key record>, "deleted_at": "..."}],                             (emu)
   "rotated": [{"id", "old_prefix", "new_prefix", "at"}]}                        (emu)
  The admin group is the one with magic_group_type "admin" (else named Administrators).
  Deleted keys leave "keys" for "deleted"; regenerate replaces "key" in place.
  Admin API: /api/api-key[/count|/:id|/:id/regenerate], /api/permissions/{group,graph}
  (an unknown route there, once authenticated: 404 "API endpoint does not exist.").
  Every other /api/ path is the "business API": X-API-Key (or the session) must be live,
  else 401 "Unauthenticated"; → 200 {"ok": true, "method", "path"}. GET /api/health needs
  no auth. Paths outside /api/: 404 "Not found.".

seatable:
  {"account_token": "<owner account token>", "admin_token": "<system admin token>",
   "account_email": "owner@example.com",     optional: generated_by of new tokens
   "bases": [{"workspace_id": 1, "base_name": "CRM", "dtable_uuid": "<32 hex, dashes ok>",
              "account_token": "...",        optional: this base's owner (default the
                                              top-level account_token)
              "tokens": [{"app_name": "etl", "api_token": "<40 lowercase hex>",
                          "permission": "rw", "generated_by": "owner@x",
                          "generated_at": "...", "last_access": "..."}]}],
   "deleted": [{"workspace_id", "base_name", "dtable_uuid", <token record>,
                "deleted_at", "by": "owner"|"admin"}]}                            (emu)
  Any known account token (top-level, per-base, admin) authenticates; one that does not
  own the base gets 403 {"error_msg": "Permission denied."}; an unknown workspace or base
  gets 404 {"error_msg": "Workspace N not found." / "Base X not found."}. A route without
  its trailing slash gets Django's 301 to the slashed path. Using an API token at
  /api/v2.1/dtable/app-access-token/ updates its last_access.

kong:
  {"admin_token": null or "<token>",         set: admin calls need Kong-Admin-Token
   "consumers": [{"id": "<uuid>", "username": "alice"}],
   "key_auths": [{"id": "<uuid>", "key": "<32 alnum>", "consumer_id": "<uuid>",
                  "created_at": 1767225600}],
   "deleted": [{<key_auth record>, "deleted_at": <epoch s>}],                    (emu)
   "rotated": [{"id", "at"}]}                                                     (emu)
  Admin API and proxy share the port: paths whose first segment is key-auths, consumers
  or status are the admin API, everything else is the proxy (key-auth plugin: header
  "apikey", else query "apikey"). Lists are ordered by id; offsets are standard base64
  of ["<last id>"] (percent-encoded in "next"; "next" carries "&size=N" only when size
  was given, as Kong does). Also served: GET/POST /consumers/{id|username}/key-auth
  (POST → 201, key generated if absent), GET/PATCH/DELETE .../key-auth/{id|key},
  GET /consumers[/{id|username}], GET /status. Duplicate key → 409.
  Proxy: no key → 401 {"message": "No API key found in request"} (Kong's wording), bad
  key → 401 {"message": "Unauthorized"}; valid → 200 {"ok", "method", "path", "headers":
  {"X-Consumer-ID", "X-Credential-Identifier", "X-Consumer-Username"}}.

generic:
  {"token": "<bearer token>",
   "credentials": [{"id": "cred-1", "key_prefix": "gk_AbCd", "label": "etl",
                    "enabled": true}],
   "changes": [{"id", "status", "at"}]}                                          (emu)

Control API (no auth, every product, never logged, never faulted):
  POST /_emu/fail {"mode": "500"|"503"|"timeout"|"close"|"none", "count": N,
                   "seconds": S, "path_prefix": "/api/api-key", "hold_seconds": H}
      the next N matching requests (count), or matching requests for S seconds (seconds),
      or every matching request until cleared (neither) fail: 500/503 answer that status
      with a short text/plain body; "timeout" reads the request and holds it H seconds
      (default 30; cut short when the emulator stops), then closes without answering;
      "close" reads the request and closes the connection without answering.
      path_prefix (default: every path) restricts it. "none" clears. → 200 {"fault": ...}
  GET  /_emu/fail       the current fault (or null)
  GET  /_emu/state      the state document (same shape as the file, secrets included)
  GET  /_emu/requests   the request log as a JSON array (as --log, since start)
  DELETE /_emu/requests clears it

Prints nothing on stdout; errors go to stderr, without secret values. Exits 0 on
SIGTERM/SIGINT. Binds 127.0.0.1 only.
"""
import argparse
import base64
import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import string
import sys
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import default as email_default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

STOP = threading.Event()
JSON_CT = "application/json; charset=utf-8"
TEXT_CT = "text/plain; charset=utf-8"


def err(msg):
    sys.stderr.write("keystore_emu: %s\n" % msg)
    sys.stderr.flush()


def iso_ms(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def iso_tz(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def same(a, b):
    return isinstance(a, str) and isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


class Response:
    def __init__(self, status, body=b"", ctype=None, headers=None):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or []


def jresp(status, obj, headers=None, ctype=JSON_CT):
    return Response(status, json.dumps(obj).encode(), ctype, headers)


def tresp(status, text):
    return Response(status, text.encode(), TEXT_CT)


def empty(status=204):
    return Response(status)


class BadBody(Exception):
    pass


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        self.target = target
        sp = urlsplit(target)
        self.path = sp.path or "/"
        self.rawquery = sp.query
        self.query = parse_qs(sp.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        # segments, each percent-decoded; a trailing slash is remembered, not a segment
        self.slash = self.path.endswith("/") and self.path != "/"
        self.segs = [unquote(s) for s in self.path.strip("/").split("/")] if self.path.strip("/") else []

    def header(self, name):
        return self.headers.get(name)

    def q(self, name):
        v = self.query.get(name)
        return v[0] if v else None

    def json(self):
        """The body as JSON; {} when empty. Raises BadBody."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise BadBody("body is not JSON: %s" % e.__class__.__name__)

    def form(self):
        """JSON object, urlencoded or multipart body as a dict of strings. Raises BadBody."""
        ct_raw = self.header("Content-Type") or ""
        ct = ct_raw.lower()
        if ct.startswith("application/json"):
            obj = self.json()
            if not isinstance(obj, dict):
                raise BadBody("body is not a JSON object")
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
        if ct.startswith("multipart/form-data"):
            msg = BytesParser(policy=email_default_policy).parsebytes(
                b"Content-Type: " + ct_raw.encode("latin-1") + b"\r\n\r\n" + self.body)
            out = {}
            if not msg.is_multipart():
                raise BadBody("bad multipart body")
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name:
                    val = part.get_payload(decode=True) or b""
                    out[name] = val.decode("utf-8", "replace")
            return out
        try:
            q = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadBody("body is not UTF-8")
        return {k: v[0] for k, v in q.items()}


# ---------------------------------------------------------------------------------------
class Store:
    product = ""

    def __init__(self, path, args):
        self.path = path
        self.args = args
        self.lock = threading.RLock()
        created = False
        try:
            with open(path, encoding="utf-8") as f:
                self.state = json.load(f)
        except FileNotFoundError:
            self.state = self.default()
            created = True
        if not isinstance(self.state, dict):
            raise ValueError("the state is not a JSON object")
        self.normalise()
        if created:
            self.save()

    def save(self):
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.state, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def dump(self):
        with self.lock:
            return json.dumps(self.state)


# ---------------------------------------------------------------------------------------
class Metabase(Store):
    product = "metabase"
    DEFAULT_GROUPS = [
        {"id": 1, "name": "All Users", "magic_group_type": "all-internal-users"},
        {"id": 2, "name": "Administrators", "magic_group_type": "admin"},
        {"id": 3, "name": "Analysts"},
    ]

    def default(self):
        return {"session": str(uuid.uuid4()), "groups": copy.deepcopy(self.DEFAULT_GROUPS),
                "keys": [], "next_id": 1}

    def normalise(self):
        st = self.state
        st.setdefault("session", str(uuid.uuid4()))
        st.setdefault("groups", copy.deepcopy(self.DEFAULT_GROUPS))
        st.setdefault("keys", [])
        st.setdefault("deleted", [])
        st.setdefault("rotated", [])
        ids = [k["id"] for k in st["keys"] + st["deleted"]]
        st["next_id"] = max([st.get("next_id") or 1] + [i + 1 for i in ids])
        now = iso_ms()
        for k in st["keys"]:
            k.setdefault("created_at", now)
            k.setdefault("updated_at", k["created_at"])

    def group(self, gid):
        for g in self.state["groups"]:
            if g["id"] == gid:
                return g
        return None

    def is_admin_group(self, gid):
        g = self.group(gid)
        if not g:
            return False
        if "magic_group_type" in g:
            return g["magic_group_type"] == "admin"
        return g.get("name") == "Administrators"

    def live_key(self, raw):
        for k in self.state["keys"]:
            if same(k["key"], raw):
                return k
        return None

    def find(self, kid):
        for k in self.state["keys"]:
            if k["id"] == kid:
                return k
        return None

    def key_obj(self, k):
        g = self.group(k["group_id"]) or {"id": k["group_id"], "name": None}
        return {"id": k["id"], "name": k["name"], "group": {"id": g["id"], "name": g["name"]},
                "masked_key": k["key"][:7] + "*" * 40, "created_at": k["created_at"],
                "updated_at": k["updated_at"], "updated_by": {"id": 1, "common_name": "Admin"}}

    def new_key(self):
        taken = {k["key"][:7] for k in self.state["keys"] + self.state["deleted"]}
        while True:
            key = "mb_" + base64.b64encode(secrets.token_bytes(32)).decode()
            if key[:7] not in taken:
                return key

    def auth(self, req):
        sess = req.header("X-Metabase-Session")
        if sess and same(sess, self.state["session"]):
            return "admin", None
        raw = req.header("X-API-Key")
        if raw:
            k = self.live_key(raw)
            if k:
                return ("admin" if self.is_admin_group(k["group_id"]) else "user"), k
        return None, None

    def validate(self, body, creating, kid=None):
        errors = {}
        if not isinstance(body, dict):
            return {"body": "value must be a map."}
        if creating or "name" in body:
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                errors["name"] = "value must be a non-blank string."
            elif any(k["name"] == name and k["id"] != kid for k in self.state["keys"]):
                errors["name"] = "An API key with this name already exists."
        if creating or "group_id" in body:
            gid = body.get("group_id")
            if not isinstance(gid, int) or isinstance(gid, bool) or gid <= 0:
                errors["group_id"] = "value must be an integer greater than zero."
            elif not self.group(gid):
                errors["group_id"] = "Group %d does not exist." % gid
        return errors

    def handle(self, req):
        s, m = req.segs, req.method
        if not s or s[0] != "api":
            return tresp(404, "Not found.")
        if s == ["api", "health"] and m == "GET":
            return jresp(200, {"status": "ok"})
        with self.lock:
            who, _ = self.auth(req)
            if who is None:
                return tresp(401, "Unauthenticated")
            if len(s) < 2 or s[1] not in ("api-key", "permissions"):
                return jresp(200, {"ok": True, "method": m, "path": req.path})
            if who != "admin":
                return tresp(403, "You don't have permissions to do that.")
            return self.admin(req, s[1:], m)

    def admin(self, req, s, m):
        st = self.state
        nope = tresp(404, "API endpoint does not exist.")
        if s[0] == "permissions":
            if s == ["permissions", "group"] and m == "GET":
                return jresp(200, self.groups_view())
            if s == ["permissions", "graph"] and m == "GET":
                return jresp(200, {"revision": st.get("revision", 1), "groups": self.graph()})
            return nope
        if len(s) == 1:
            if m == "GET":
                return jresp(200, [self.key_obj(k) for k in sorted(st["keys"], key=lambda k: k["id"])])
            if m == "POST":
                try:
                    body = req.json()
                except BadBody as e:
                    return jresp(400, {"errors": {"body": str(e)}})
                errors = self.validate(body, True)
                if errors:
                    return jresp(400, {"errors": errors})
                now = iso_ms()
                k = {"id": st["next_id"], "name": body["name"], "group_id": body["group_id"],
                     "key": self.new_key(), "created_at": now, "updated_at": now}
                st["next_id"] += 1
                st["keys"].append(k)
                self.save()
                return jresp(200, dict(self.key_obj(k), unmasked_key=k["key"]))
            return nope
        if s[1] == "count" and len(s) == 2:
            return jresp(200, len(st["keys"])) if m == "GET" else nope
        if not re.fullmatch(r"[0-9]{1,18}", s[1]) or len(s) > 3 or (len(s) == 3 and s[2] != "regenerate"):
            return nope
        kid = int(s[1])
        if len(s) == 3:
            if m != "PUT":
                return nope
            k = self.find(kid)
            if not k:
                return tresp(404, "Not found.")
            old = k["key"][:7]
            k["key"] = self.new_key()
            k["updated_at"] = iso_ms()
            st["rotated"].append({"id": kid, "old_prefix": old, "new_prefix": k["key"][:7],
                                  "at": k["updated_at"]})
            self.save()
            if self.args.metabase_version == "old":
                return jresp(200, dict(self.key_obj(k), unmasked_key=k["key"]))
            return jresp(200, {"id": kid, "unmasked_key": k["key"],
                               "masked_key": k["key"][:7] + "*" * 40, "prefix": k["key"][:7]})
        if m == "PUT":
            k = self.find(kid)
            if not k:
                return tresp(404, "Not found.")
            try:
                body = req.json()
            except BadBody as e:
                return jresp(400, {"errors": {"body": str(e)}})
            errors = self.validate(body, False, kid)
            if errors:
                return jresp(400, {"errors": errors})
            for f in ("name", "group_id"):
                if f in body:
                    k[f] = body[f]
            k["updated_at"] = iso_ms()
            self.save()
            return jresp(200, self.key_obj(k))
        if m == "DELETE":
            k = self.find(kid)
            if not k:
                return tresp(404, "Not found.")
            st["keys"].remove(k)
            st["deleted"].append(dict(k, deleted_at=iso_ms()))
            self.save()
            return empty(204)
        return nope

    def groups_view(self):
        keys = self.state["keys"]
        out = []
        for g in self.state["groups"]:
            n = sum(1 for k in keys if k["group_id"] == g["id"])
            if g.get("magic_group_type") == "all-internal-users":
                n = len(keys) + 1  # + the admin user
            elif self.is_admin_group(g["id"]):
                n += 1
            e = {"id": g["id"], "name": g["name"], "member_count": n}
            if self.args.metabase_version != "old":
                e["magic_group_type"] = g.get("magic_group_type")
            out.append(e)
        return out

    def graph(self):
        if isinstance(self.state.get("graph"), dict):
            return self.state["graph"]
        out = {}
        for g in self.state["groups"]:
            if self.is_admin_group(g["id"]):
                p = {"view-data": "unrestricted", "create-queries": "query-builder-and-native",
                     "download": {"schemas": "full"}, "data-model": {"schemas": "all"},
                     "details": "yes"}
            elif g.get("magic_group_type") == "all-internal-users":
                p = {"view-data": "unrestricted", "create-queries": "no",
                     "download": {"schemas": "none"}}
            else:
                p = {"view-data": "unrestricted", "create-queries": "query-builder",
                     "download": {"schemas": "limited"}}
            out[str(g["id"])] = {"1": p}
        return out


# ---------------------------------------------------------------------------------------
class SeaTable(Store):
    product = "seatable"

    def default(self):
        return {"account_token": secrets.token_hex(20), "admin_token": secrets.token_hex(20),
                "bases": []}

    def normalise(self):
        st = self.state
        st.setdefault("account_token", secrets.token_hex(20))
        st.setdefault("admin_token", secrets.token_hex(20))
        st.setdefault("account_email", "owner@example.com")
        st.setdefault("bases", [])
        st.setdefault("deleted", [])
        now = iso_tz()
        for b in st["bases"]:
            b.setdefault("tokens", [])
            for t in b["tokens"]:
                t.setdefault("permission", "rw")
                t.setdefault("generated_by", st["account_email"])
                t.setdefault("generated_at", now)
                t.setdefault("last_access", t["generated_at"])

    @staticmethod
    def norm_uuid(u):
        return str(u).replace("-", "").lower()

    def owner_token(self, b):
        return b.get("account_token") or self.state["account_token"]

    def caller(self, req):
        h = (req.header("Authorization") or "").strip()
        m = re.fullmatch(r"(?i:token|bearer)\s+(\S+)", h)
        return m.group(1) if m else None

    def is_account(self, t):
        st = self.state
        cands = [st["account_token"], st["admin_token"]] + [b.get("account_token") for b in st["bases"]]
        return any(same(t, c) for c in cands if c)

    @staticmethod
    def tok_obj(t):
        return {k: t.get(k) for k in ("app_name", "api_token", "generated_by", "generated_at",
                                      "last_access", "permission")}

    def handle(self, req):
        s, m = req.segs, req.method
        bad = jresp(401, {"detail": "Invalid token"})
        route = None
        if len(s) >= 7 and s[:3] == ["api", "v2.1", "workspace"] and s[4] == "dtable" \
                and s[6] == "api-tokens" and re.fullmatch(r"[0-9]+", s[3]) and len(s) <= 8:
            route = "tokens" if len(s) == 7 else "token"
        elif len(s) in (6, 7) and s[:3] == ["api", "v2.1", "admin"] and s[3] == "dtables" \
                and s[5] == "api-tokens":
            route = "admin-tokens" if len(s) == 6 else "admin-token"
        elif s == ["api", "v2.1", "dtable", "app-access-token"]:
            route = "access"
        if route is None:
            return jresp(404, {"detail": "Not found."})
        if not req.slash:
            loc = req.path + "/" + ("?" + req.rawquery if req.rawquery else "")
            return Response(301, b"", "text/html; charset=utf-8", [("Location", loc)])
        t = self.caller(req)
        with self.lock:
            if route == "access":
                return self.access(req, t, bad)
            if not t or not self.is_account(t):
                return bad
            if route.startswith("admin"):
                return self.admin(req, s, m, t)
            return self.workspace(req, s, m, t)

    def access(self, req, t, bad):
        if req.method != "GET":
            return jresp(405, {"detail": 'Method "%s" not allowed.' % req.method})
        if not t:
            return bad
        for b in self.state["bases"]:
            for tok in b["tokens"]:
                if same(tok["api_token"], t):
                    tok["last_access"] = iso_tz()
                    self.save()
                    host = req.header("Host") or "127.0.0.1"
                    return jresp(200, {
                        "app_name": tok["app_name"], "access_token": self.jwt(b, tok),
                        "dtable_uuid": b["dtable_uuid"],
                        "dtable_server": "http://%s/dtable-server/" % host,
                        "dtable_socket": "http://%s/" % host,
                        "dtable_name": b["base_name"], "workspace_id": b["workspace_id"],
                        "use_api_gateway": False})
        return bad

    JWT_SECRET = secrets.token_bytes(32)

    def jwt(self, b, tok):
        def enc(obj):
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        head = enc({"alg": "HS256", "typ": "JWT"})
        body = enc({"exp": int(time.time()) + 3 * 86400, "dtable_uuid": b["dtable_uuid"],
                    "app_name": tok["app_name"], "permission": tok["permission"],
                    "username": "", "id_in_org": ""})
        sig = hmac.new(self.JWT_SECRET, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
        return "%s.%s.%s" % (head, body, base64.urlsafe_b64encode(sig).rstrip(b"=").decode())

    def workspace(self, req, s, m, t):
        st = self.state
        ws, name = s[3], s[5]
        in_ws = [b for b in st["bases"] if str(b["workspace_id"]) == ws]
        if not in_ws:
            return jresp(404, {"error_msg": "Workspace %s not found." % ws})
        base = next((b for b in in_ws if b["base_name"] == name), None)
        if base is None:
            return jresp(404, {"error_msg": "Base %s not found." % name})
        if not same(t, self.owner_token(base)):
            return jresp(403, {"error_msg": "Permission denied."})
        if len(s) == 7:
            if m == "GET":
                return jresp(200, {"api_tokens": [self.tok_obj(x) for x in base["tokens"]]})
            if m != "POST":
                return jresp(405, {"detail": 'Method "%s" not allowed.' % m})
            try:
                form = req.form()
            except BadBody as e:
                return jresp(400, {"error_msg": str(e)})
            app = (form.get("app_name") or "").strip()
            perm = form.get("permission") or ""
            if not app:
                return jresp(400, {"error_msg": "app_name invalid."})
            if perm not in ("r", "rw"):
                return jresp(400, {"error_msg": "permission invalid."})
            if any(x["app_name"] == app for x in base["tokens"]):
                return jresp(400, {"error_msg": "api token already exist."})
            taken = {x["api_token"] for b in st["bases"] for x in b["tokens"]}
            tok = secrets.token_hex(20)
            while tok in taken:
                tok = secrets.token_hex(20)
            now = iso_tz()
            rec = {"app_name": app, "api_token": tok,
                   "generated_by": base.get("owner_email") or st["account_email"],
                   "generated_at": now, "last_access": now, "permission": perm}
            base["tokens"].append(rec)
            self.save()
            return jresp(201, self.tok_obj(rec))
        app = s[7]
        tok = next((x for x in base["tokens"] if x["app_name"] == app), None)
        if m not in ("PUT", "DELETE"):
            return jresp(405, {"detail": 'Method "%s" not allowed.' % m})
        if tok is None:
            return jresp(404, {"error_msg": "api token not found."})
        if m == "PUT":
            try:
                form = req.form()
            except BadBody as e:
                return jresp(400, {"error_msg": str(e)})
            perm = form.get("permission") or ""
            if perm not in ("r", "rw"):
                return jresp(400, {"error_msg": "permission invalid."})
            tok["permission"] = perm
            self.save()
            return jresp(200, self.tok_obj(tok))
        self.remove(base, tok, "owner")
        return jresp(200, {"success": True})

    def remove(self, base, tok, by):
        base["tokens"].remove(tok)
        self.state["deleted"].append(dict(tok, workspace_id=base["workspace_id"],
                                          base_name=base["base_name"],
                                          dtable_uuid=base["dtable_uuid"],
                                          deleted_at=iso_tz(), by=by))
        self.save()

    def admin(self, req, s, m, t):
        if not same(t, self.state["admin_token"]):
            return jresp(403, {"error_msg": "Permission denied."})
        u = self.norm_uuid(s[4])
        base = next((b for b in self.state["bases"] if self.norm_uuid(b["dtable_uuid"]) == u), None)
        if len(s) == 6:
            if m != "GET":
                return jresp(405, {"detail": 'Method "%s" not allowed.' % m})
            if base is None:
                return jresp(404, {"error_msg": "Base %s not found." % s[4]})
            return jresp(200, {"api_tokens": [self.tok_obj(x) for x in base["tokens"]]})
        if m != "DELETE":
            return jresp(405, {"detail": 'Method "%s" not allowed.' % m})
        if base is None:
            return jresp(404, {"error_msg": "Base %s not found." % s[4]})
        tok = next((x for x in base["tokens"] if same(x["api_token"], s[6])), None)
        if tok is None:
            return jresp(404, {"error_msg": "api token not found."})
        self.remove(base, tok, "admin")
        return jresp(200, {"success": True})


# ---------------------------------------------------------------------------------------
class Kong(Store):
    product = "kong"
    ADMIN = ("key-auths", "consumers", "status")
    ALNUM = string.ascii_letters + string.digits

    def default(self):
        return {"admin_token": None, "consumers": [], "key_auths": []}

    def normalise(self):
        st = self.state
        st.setdefault("admin_token", None)
        st.setdefault("consumers", [])
        st.setdefault("key_auths", [])
        st.setdefault("deleted", [])
        st.setdefault("rotated", [])
        now = int(time.time())
        for c in st["consumers"]:
            c.setdefault("id", str(uuid.uuid4()))
            c.setdefault("username", None)
            c.setdefault("created_at", now)
        for k in st["key_auths"]:
            k.setdefault("id", str(uuid.uuid4()))
            k.setdefault("created_at", now)

    @staticmethod
    def cred(k):
        return {"id": k["id"], "key": k["key"], "consumer": {"id": k["consumer_id"]},
                "created_at": k["created_at"], "ttl": k.get("ttl"), "tags": k.get("tags")}

    @staticmethod
    def consumer_obj(c):
        return {"id": c["id"], "username": c.get("username"), "custom_id": c.get("custom_id"),
                "created_at": c.get("created_at"), "tags": c.get("tags")}

    def find_cred(self, x, pool=None):
        pool = self.state["key_auths"] if pool is None else pool
        for k in pool:
            if k["id"] == x:
                return k
        for k in pool:
            if same(k["key"], x):
                return k
        return None

    def find_consumer(self, x):
        for c in self.state["consumers"]:
            if c["id"] == x:
                return c
        for c in self.state["consumers"]:
            if c.get("username") is not None and c["username"] == x:
                return c
        return None

    def new_key(self):
        taken = {k["key"] for k in self.state["key_auths"]}
        while True:
            k = "".join(secrets.choice(self.ALNUM) for _ in range(32))
            if k not in taken:
                return k

    def page(self, req, items, base_path, conv):
        size_raw = req.q("size")
        size = 100
        if size_raw is not None:
            try:
                size = int(size_raw)
            except ValueError:
                return jresp(400, {"code": 11, "name": "invalid size",
                                   "message": "size must be a number"})
            if not 1 <= size <= 1000:
                return jresp(400, {"code": 11, "name": "invalid size",
                                   "message": "size must be an integer between 1 and 1000"})
        items = sorted(items, key=lambda i: i["id"])
        off = req.q("offset")
        if off is not None:
            try:
                last = json.loads(base64.b64decode(off, validate=True).decode())
                assert isinstance(last, list) and len(last) == 1 and isinstance(last[0], str)
            except Exception:
                return jresp(400, {"code": 7, "name": "invalid offset",
                                   "message": "'%s' is not a valid offset: bad base64 encoding" % off[:64]})
            items = [i for i in items if i["id"] > last[0]]
        pg = items[:size]
        out = {"data": [conv(i) for i in pg], "next": None}
        if len(items) > size:
            o = base64.b64encode(json.dumps([pg[-1]["id"]]).encode()).decode()
            out["offset"] = o
            out["next"] = "%s?offset=%s%s" % (base_path, quote(o, safe=""),
                                              "&size=%s" % size_raw if size_raw is not None else "")
        return jresp(200, out)

    def handle(self, req):
        s = req.segs
        with self.lock:
            if s and s[0] in self.ADMIN:
                tok = self.state.get("admin_token")
                if tok and not same(req.header("Kong-Admin-Token") or "", tok):
                    return jresp(401, {"message": "Unauthorized"})
                return self.admin(req, s, req.method)
            return self.proxy(req)

    def proxy(self, req):
        raw = req.header("apikey")
        if raw is None:
            raw = req.q("apikey")
        hdr = [("WWW-Authenticate", 'Key realm="kong"')]
        if not raw:
            return jresp(401, {"message": "No API key found in request"}, hdr)
        k = None
        for c in self.state["key_auths"]:
            if same(c["key"], raw):
                k = c
                break
        if k is None:
            return jresp(401, {"message": "Unauthorized"}, hdr)
        cons = self.find_consumer(k["consumer_id"]) or {}
        headers = {"X-Consumer-ID": k["consumer_id"], "X-Credential-Identifier": k["id"]}
        if cons.get("username"):
            headers["X-Consumer-Username"] = cons["username"]
        return jresp(200, {"ok": True, "method": req.method, "path": req.path, "headers": headers})

    def body(self, req):
        ct = (req.header("Content-Type") or "").lower()
        if ct.startswith("application/json") or (not ct and req.body.strip()[:1] == b"{"):
            b = req.json()
            if not isinstance(b, dict):
                raise BadBody("body must be an object")
            return b
        return req.form()

    def delete(self, k):
        st = self.state
        st["key_auths"].remove(k)
        st["deleted"].append(dict(k, deleted_at=int(time.time())))
        self.save()
        return empty(204)

    def patch(self, req, k):
        try:
            b = self.body(req)
        except BadBody as e:
            return jresp(400, {"code": 2, "name": "schema violation", "message": str(e)})
        if "key" in b:
            nk = b["key"]
            if not isinstance(nk, str) or not nk:
                return jresp(400, {"code": 2, "name": "schema violation",
                                   "message": "schema violation (key: expected a non-empty string)",
                                   "fields": {"key": "expected a non-empty string"}})
            if any(o is not k and same(o["key"], nk) for o in self.state["key_auths"]):
                return jresp(409, {"code": 5, "name": "unique constraint violation",
                                   "message": "UNIQUE violation detected on '{key}'"})
            if nk != k["key"]:
                k["key"] = nk
                self.state["rotated"].append({"id": k["id"], "at": int(time.time())})
        for f in ("ttl", "tags"):
            if f in b:
                k[f] = b[f]
        self.save()
        return jresp(200, self.cred(k))

    def admin(self, req, s, m):
        st = self.state
        nf = jresp(404, {"message": "Not found"})
        na = jresp(405, {"message": "Method not allowed"})
        if s == ["status"]:
            return jresp(200, {"database": {"reachable": True},
                               "server": {"connections_accepted": 0}}) if m == "GET" else na
        if s[0] == "key-auths":
            if len(s) == 1:
                return self.page(req, st["key_auths"], "/key-auths", self.cred) if m == "GET" else na
            if len(s) != 2:
                return nf
            k = self.find_cred(s[1])
            if m == "GET":
                return jresp(200, self.cred(k)) if k else nf
            if m == "DELETE":
                if not k:
                    return empty(204) if self.args.kong_delete_unknown == "204" else nf
                return self.delete(k)
            if m == "PATCH":
                return self.patch(req, k) if k else nf
            return na
        # consumers
        if len(s) == 1:
            return self.page(req, st["consumers"], "/consumers", self.consumer_obj) if m == "GET" else na
        c = self.find_consumer(s[1])
        if len(s) == 2:
            if m != "GET":
                return na
            return jresp(200, self.consumer_obj(c)) if c else nf
        if s[2] != "key-auth" or len(s) > 4:
            return nf
        if c is None:
            return nf
        mine = [k for k in st["key_auths"] if k["consumer_id"] == c["id"]]
        if len(s) == 3:
            if m == "GET":
                return self.page(req, mine, "/consumers/%s/key-auth" % c["id"], self.cred)
            if m != "POST":
                return na
            try:
                b = self.body(req)
            except BadBody as e:
                return jresp(400, {"code": 2, "name": "schema violation", "message": str(e)})
            nk = b.get("key") or self.new_key()
            if not isinstance(nk, str):
                return jresp(400, {"code": 2, "name": "schema violation",
                                   "message": "schema violation (key: expected a string)"})
            if any(same(o["key"], nk) for o in st["key_auths"]):
                return jresp(409, {"code": 5, "name": "unique constraint violation",
                                   "message": "UNIQUE violation detected on '{key}'"})
            k = {"id": str(uuid.uuid4()), "key": nk, "consumer_id": c["id"],
                 "created_at": int(time.time())}
            st["key_auths"].append(k)
            self.save()
            return jresp(201, self.cred(k))
        k = self.find_cred(s[3], mine)
        if k is None:
            return nf
        if m == "GET":
            return jresp(200, self.cred(k))
        if m == "DELETE":
            return self.delete(k)
        if m == "PATCH":
            return self.patch(req, k)
        return na


# ---------------------------------------------------------------------------------------
class Generic(Store):
    product = "generic"

    def default(self):
        return {"token": secrets.token_hex(16), "credentials": []}

    def normalise(self):
        st = self.state
        st.setdefault("token", secrets.token_hex(16))
        st.setdefault("credentials", [])
        st.setdefault("changes", [])
        for c in st["credentials"]:
            c.setdefault("enabled", True)
            c.setdefault("label", "")

    @staticmethod
    def item(c):
        return {k: c.get(k) for k in ("id", "key_prefix", "label", "enabled")}

    def handle(self, req):
        s, m = req.segs, req.method
        h = (req.header("Authorization") or "").strip()
        mt = re.fullmatch(r"Bearer\s+(\S+)", h)
        with self.lock:
            if not mt or not same(mt.group(1), self.state["token"]):
                return jresp(401, {"error": "unauthorized"})
            nf = jresp(404, {"error": "not found"})
            na = jresp(405, {"error": "method not allowed"})
            if not s or s[0] != "credentials" or len(s) > 3:
                return nf
            if len(s) == 1:
                return jresp(200, {"items": [self.item(c) for c in self.state["credentials"]]}) \
                    if m == "GET" else na
            c = next((c for c in self.state["credentials"] if c["id"] == s[1]), None)
            if len(s) == 2:
                if m != "GET":
                    return na
                return jresp(200, self.item(c)) if c else jresp(404, {"error": "no such credential"})
            if s[2] != "status":
                return nf
            if m != "PUT":
                return na
            if c is None:
                return jresp(404, {"error": "no such credential"})
            try:
                b = req.json() if req.body.strip() else None
            except BadBody:
                return jresp(400, {"error": "body is not JSON"})
            if not isinstance(b, dict) or not isinstance(b.get("status"), bool):
                return jresp(400, {"error": "status must be a boolean"})
            c["enabled"] = b["status"]
            self.state["changes"].append({"id": c["id"], "status": b["status"], "at": iso_ms()})
            self.save()
            return jresp(200, {"id": c["id"], "status": c["enabled"]})


PRODUCTS = {"metabase": Metabase, "seatable": SeaTable, "kong": Kong, "generic": Generic}


# ---------------------------------------------------------------------------------------
class Emu:
    def __init__(self, store, log_path):
        self.store = store
        self.lock = threading.Lock()
        self.fault = None
        self.requests = []
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None

    def record(self, rec):
        with self.lock:
            self.requests.append(rec)
            if self.log:
                self.log.write(json.dumps(rec) + "\n")
                self.log.flush()

    def take_fault(self, path):
        with self.lock:
            f = self.fault
            if not f:
                return None
            if f["until"] is not None and time.monotonic() >= f["until"]:
                self.fault = None
                return None
            if f["path_prefix"] and not path.startswith(f["path_prefix"]):
                return None
            if f["count"] is not None:
                f["count"] -= 1
                if f["count"] <= 0:
                    self.fault = None
            return dict(f)

    def fault_view(self):
        f = self.fault
        if not f:
            return None
        v = {k: f[k] for k in ("mode", "count", "path_prefix", "hold_seconds")}
        v["seconds_left"] = None if f["until"] is None else max(0.0, round(f["until"] - time.monotonic(), 3))
        return v

    def control(self, req):
        s, m = req.segs, req.method
        if s == ["_emu", "fail"]:
            if m == "GET":
                with self.lock:
                    return jresp(200, {"fault": self.fault_view()})
            if m != "POST":
                return jresp(405, {"error": "method not allowed"})
            try:
                b = req.json()
            except BadBody as e:
                return jresp(400, {"error": str(e)})
            if not isinstance(b, dict):
                return jresp(400, {"error": "body must be a JSON object"})
            mode = str(b.get("mode"))
            if mode not in ("500", "503", "timeout", "close", "none"):
                return jresp(400, {"error": "mode must be 500, 503, timeout, close or none"})
            count, secs = b.get("count"), b.get("seconds")
            hold = b.get("hold_seconds", 30)
            pp = b.get("path_prefix")
            if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
                return jresp(400, {"error": "count must be a positive integer"})
            for name, v in (("seconds", secs), ("hold_seconds", hold)):
                if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
                    return jresp(400, {"error": "%s must be a positive number" % name})
            if pp is not None and not isinstance(pp, str):
                return jresp(400, {"error": "path_prefix must be a string"})
            with self.lock:
                if mode == "none":
                    self.fault = None
                else:
                    self.fault = {"mode": mode, "count": count, "path_prefix": pp or None,
                                  "hold_seconds": hold,
                                  "until": None if secs is None else time.monotonic() + secs}
                return jresp(200, {"fault": self.fault_view()})
        if s == ["_emu", "state"] and m == "GET":
            return Response(200, self.store.dump().encode(), JSON_CT)
        if s == ["_emu", "requests"]:
            if m == "GET":
                with self.lock:
                    return jresp(200, self.requests)
            if m == "DELETE":
                with self.lock:
                    self.requests = []
                return jresp(200, {"ok": True})
        return jresp(404, {"error": "no such control endpoint"})


EMU = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keystore-emu"

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *a):  # quiet: stdout/stderr stay clean
        pass

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(n)
                self.rfile.readline(65537)
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, r):
        self.send_response(r.status)
        if r.status not in (204, 304):
            if r.ctype:
                self.send_header("Content-Type", r.ctype)
            self.send_header("Content-Length", str(len(r.body)))
        for k, v in r.headers:
            self.send_header(k, v)
        self.end_headers()
        if r.status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(r.body)

    def dispatch(self):
        t0 = time.monotonic()
        ts = time.time()
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        req = Request(self.command, self.path, self.headers, body)
        if req.path == "/_emu" or req.path.startswith("/_emu/"):
            try:
                self.send(EMU.control(req))
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        rec = {"ts": round(ts, 6), "method": req.method, "path": req.path,
               "query": req.rawquery, "status": 0, "duration_ms": 0.0}
        f = EMU.take_fault(req.path)
        if f and f["mode"] in ("timeout", "close"):
            rec["fault"] = f["mode"]
            EMU.record(rec)
            if f["mode"] == "timeout":
                STOP.wait(f["hold_seconds"])
            self.close_connection = True
            return
        if f:
            resp = tresp(int(f["mode"]), "emulated %s error" % f["mode"])
            rec["fault"] = f["mode"]
        else:
            try:
                resp = EMU.store.handle(req)
            except Exception as e:  # a bug in the emulator: say so, answer 500
                err("internal error on %s %s: %s: %s" % (req.method, req.path,
                                                         e.__class__.__name__, e))
                resp = tresp(500, "emulator internal error")
        try:
            self.send(resp)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        rec["status"] = resp.status
        rec["duration_ms"] = round((time.monotonic() - t0) * 1000, 3)
        EMU.record(rec)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = dispatch


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, TimeoutError)):
            return
        err("error while serving a request: %s: %s" % (e.__class__.__name__, e))


def main():
    global EMU
    ap = argparse.ArgumentParser(description="key-store emulator for keywatch's tests")
    ap.add_argument("--product", required=True, choices=sorted(PRODUCTS))
    ap.add_argument("--state", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--metabase-version", choices=("new", "old"), default="new")
    ap.add_argument("--kong-delete-unknown", choices=("404", "204"), default="404")
    args = ap.parse_args()

    try:
        store = PRODUCTS[args.product](args.state, args)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        err("cannot use state file %s: %s: %s" % (args.state, e.__class__.__name__, e))
        return 2
    try:
        EMU = Emu(store, args.log)
    except OSError as e:
        err("cannot open log %s: %s" % (args.log, e))
        return 2

    def on_signal(signum, frame):
        STOP.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        srv = Server(("127.0.0.1", args.port), Handler)
    except OSError as e:
        err("cannot listen on 127.0.0.1:%d: %s" % (args.port, e))
        return 2
    try:
        if args.port_file:
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % srv.server_address[1])
            os.rename(tmp, args.port_file)
        srv.serve_forever(poll_interval=0.05)
    except SystemExit:
        pass
    finally:
        STOP.set()
        srv.server_close()
        # let a state write in progress finish before the process goes
        if store.lock.acquire(timeout=2):
            store.lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
