/* keystore_seatable.c — the "seatable" key store: SeaTable's per-base API tokens
 * (KEYSTORES.md).
 *
 * SeaTable lists a base's API tokens in clear, so a key seen in traffic is found by
 * fingerprinting every listed token with keywatch's secret and comparing (kw__ks_fp_equal);
 * the clear tokens are wiped from the parsed answer as soon as they have been compared
 * and are never copied (the answer's body itself is wiped by httpc).  An attempt:
 *
 *   [no store_ref] for each configured base in order:
 *     GET /api/v2.1/workspace/{ws}/dtable/{base}/api-tokens/ ──► token with fingerprint fp?
 *        yes → revoke it          no → next base
 *        404 (no such base/workspace) → next base, noted      other failure → next, noted
 *     not found anywhere → GONE (already deleted); RETRY when a base could not be listed;
 *     FAIL when no configured base exists at all (a configuration mistake, not a deletion)
 *   DELETE /api/v2.1/workspace/{ws}/dtable/{base}/api-tokens/{app_name}/
 *        200 {"success": true} → DONE, 404 → GONE, else RETRY
 *
 * store_ref is "<workspace_id>/<base_name>/<app_name>" with base_name and app_name
 * percent-encoded as path segments (so a '/' in a name cannot make it ambiguous; plain
 * names read as they are).  The same form is the inventory's ref.
 *
 * system_admin: the credential is a system admin's account token; tokens are listed with
 * GET /api/v2.1/admin/dtables/{dtable_uuid}/api-tokens/ and revoked with
 * DELETE /api/v2.1/admin/dtables/{dtable_uuid}/api-tokens/{token}/, which names the clear
 * token: that call is only ever made right after a lookup, its URL buffer is wiped once
 * httpc has copied it (httpc wipes its copy), and the audit shows "<token>" instead.  A
 * store_ref from an earlier attempt does not hold the token, so this mode always looks up.
 *
 * Authorisation: "Authorization: Token <account token>" (the base owner's, or the system
 * admin's).  owns_key() protects that token's fingerprint.
 * Thread: the loop's.
 */
#include "keystore_int.h"

#include "../sidecar/err.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAX 512
#define LIST_MAX (16u << 20)

struct st {
  const struct kw_keystore_env *env;
  const struct kw_keystore_cfg *cfg;
  char *base;        /* url without trailing '/' */
  char *auth_header; /* "Authorization: Token …" (secret) */
  uint8_t own_fp[KW_FP_LEN];
};

struct st_op {
  struct kw__ks_op op; /* first: the shared attempt state */
  struct st *st;
  uint8_t fp[KW_FP_LEN];
  unsigned base_i;        /* the base being listed */
  unsigned missing;       /* bases that answered 404 */
  unsigned failed;        /* bases that could not be listed */
  char why[160];          /* the first listing failure */
  char ref[REF_MAX];      /* store_ref of the token found */
  char detail[REF_MAX + 200];
  /* list */
  kw_keystore_item_cb item;
  size_t listed;
};

static const unsigned delete_ok[] = {200}, list_ok[] = {200}, gone[] = {404};

/* ---- paths -------------------------------------------------------------------------- */

/* Appends s as it is; KW_ETOOLONG (buf unchanged) when it does not fit. */
static int append_text(char *buf, size_t len, const char *s) {
  size_t o = strlen(buf);
  return kw__ks_fmt(buf + o, len - o, "%s", s) == 0 ? 0 : (buf[o] = '\0', KW_ETOOLONG);
}

/* "<ws>/<base>/<app>" (names encoded) into ref. */
static int make_ref(char *ref, size_t len, unsigned ws, const char *base, const char *app) {
  int r;
  if ((r = kw__ks_fmt(ref, len, "%u/", ws)) != 0 || (r = kw__ks_append_escaped(ref, len, base)) != 0)
    return r;
  if ((r = append_text(ref, len, "/")) != 0)
    return r;
  return kw__ks_append_escaped(ref, len, app);
}

/* Whether ref has the store_ref form: digits '/' segment '/' segment, every segment made
 * of unreserved characters and %XX only, and not a dot segment. */
static bool ref_valid(const char *ref) {
  const char *p = ref;
  int parts = 0;
  if (*p < '0' || *p > '9')
    return false;
  while (*p >= '0' && *p <= '9')
    p++;
  while (*p == '/') {
    const char *seg = ++p;
    while (*p && *p != '/') {
      char c = *p;
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
      if (!ok)
        return false;
      p++;
    }
    size_t n = (size_t)(p - seg);
    if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
      return false;
    parts++;
  }
  return *p == '\0' && parts == 2;
}

/* ---- life ---------------------------------------------------------------------------- */

static int st_create(const struct kw_keystore_env *env, const struct kw_keystore_cfg *cfg,
                     void **ctx, char *err, size_t errlen) {
  struct st *s = calloc(1, sizeof(*s));
  char *secret = NULL;
  int r;

  if (s == NULL)
    return KW_ENOMEM;
  s->env = env;
  s->cfg = cfg;
  if (cfg->credential == NULL) {
    snprintf(err, errlen, "credential: a seatable store needs the %s account token "
                          "({env: VAR} or {file: PATH})",
             cfg->system_admin ? "system admin's" : "base owner's");
    r = KW_ECONFIG;
    goto fail;
  }
  if ((r = kw__ks_secret_read(cfg->credential, "credential", &secret, err, errlen)) != 0)
    goto fail;
  if ((s->base = kw__ks_base(cfg->url)) == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  if ((s->auth_header = kw__ks_header("Authorization", "Token ", secret)) == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  kw_fingerprint_key(env->fpr, secret, strlen(secret), s->own_fp);
  kw__ks_secret_free(secret);
  *ctx = s;
  return 0;
fail:
  kw__ks_secret_free(secret);
  free(s->base);
  free(s);
  return r;
}

static void st_close(void *ctx, void (*cb)(void *arg), void *arg) {
  struct st *s = ctx;
  kw__ks_secret_free(s->auth_header);
  free(s->base);
  OPENSSL_cleanse(s, sizeof(*s));
  free(s);
  cb(arg);
}

static bool st_owns(void *ctx, const uint8_t *fp, const char *prefix) {
  struct st *s = ctx;
  (void)prefix; /* hex tokens: a prefix names nothing for sure */
  return fp != NULL && CRYPTO_memcmp(fp, s->own_fp, KW_FP_LEN) == 0;
}

static struct st_op *op_new(struct st *s, kw_keystore_call_cb on_call,
                            kw_keystore_done_cb done, void *arg) {
  struct st_op *o = calloc(1, sizeof(*o));
  if (o == NULL)
    return NULL;
  o->st = s;
  o->op.store = s->cfg->name;
  o->op.http = s->env->http;
  o->op.timeout_ms = (long)(s->cfg->timeout_us / 1000);
  o->op.on_call = on_call;
  o->op.done = done;
  o->op.arg = arg;
  return o;
}

static void finish(struct st_op *o, enum kw_revoke_outcome oc, const char *ref,
                   const char *detail) {
  kw__ks_finish(&o->op, oc, ref, "%s", detail);
  OPENSSL_cleanse(o, sizeof(*o));
  free(o);
}

/* Wipes the clear tokens of a parsed list (jansson owns the strings; they are plain heap
 * buffers of json_string_length() bytes). */
static void wipe_tokens(json_t *tokens) {
  size_t i;
  json_t *t, *v;
  json_array_foreach(tokens, i, t) {
    if ((v = json_object_get(t, "api_token")) != NULL && json_is_string(v))
      OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
  }
}

/* The api_tokens array of a listing answer (a new reference), or NULL. */
static json_t *tokens_of(const struct kw_http_resp *resp, json_t **doc) {
  json_t *t;
  *doc = kw__ks_json(resp);
  t = json_object_get(*doc, "api_tokens");
  if (!json_is_array(t)) {
    json_decref(*doc);
    *doc = NULL;
    return NULL;
  }
  return t;
}

/* Sends the listing call of base o->base_i.  Returns 0 or an error (no callback then). */
static int send_list(struct st_op *o, kw__ks_next next) {
  struct st *s = o->st;
  const struct kw_seatable_base_cfg *b = &s->cfg->bases[o->base_i];
  const char *hdrs[] = {s->auth_header, NULL};
  char url[1024], path[768] = "";
  int r;

  if (s->cfg->system_admin) {
    r = kw__ks_fmt(path, sizeof(path), "/api/v2.1/admin/dtables/");
    r = r ? r : kw__ks_append_escaped(path, sizeof(path), b->dtable_uuid);
  } else {
    r = kw__ks_fmt(path, sizeof(path), "/api/v2.1/workspace/%u/dtable/", b->workspace_id);
    r = r ? r : kw__ks_append_escaped(path, sizeof(path), b->base_name);
  }
  if (r != 0 || (r = append_text(path, sizeof(path), "/api-tokens/")) != 0)
    return r;
  if ((r = kw__ks_fmt(url, sizeof(url), "%s%s", s->base, path)) != 0)
    return r;
  struct kw_http_req req = {.method = "GET", .url = url, .headers = hdrs,
                            .max_body = LIST_MAX};
  o->op.ok = list_ok;
  o->op.nok = 1;
  o->op.gone = NULL; /* a 404 while listing is an error, not "gone" */
  o->op.ngone = 0;
  return kw__ks_send(&o->op, &req, next, "GET %s", path);
}

/* Notes why base o->base_i could not be listed; 404 counts as a missing base. */
static void note_failure(struct st_op *o, const struct kw_http_resp *resp, const char *what) {
  char d[128];
  if (resp->status == 0 && resp->code == 404) {
    o->missing++;
    return;
  }
  o->failed++;
  if (o->why[0] == '\0') {
    if (what != NULL)
      snprintf(d, sizeof(d), "%s", what);
    else
      kw__ks_describe(resp, d, sizeof(d));
    snprintf(o->why, sizeof(o->why), "base %s: %s", o->st->cfg->bases[o->base_i].base_name, d);
  }
}

/* ---- revoke -------------------------------------------------------------------------- */

static void on_revoked(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct st_op *o = (struct st_op *)op;
  enum kw_revoke_outcome oc = kw__ks_outcome(resp, delete_ok, 1, gone, 1);
  kw__ks_revoke_detail(resp, oc, "deleted", "token", o->ref, o->detail, sizeof(o->detail));
  finish(o, resp->status == KW_ECANCELED ? KW_REVOKE_FAIL : oc, o->ref, o->detail);
}

/* DELETE by store_ref (owner mode).  Returns 0 or an error (no callback then). */
static int send_delete_ref(struct st_op *o) {
  struct st *s = o->st;
  const char *hdrs[] = {s->auth_header, NULL};
  const char *slash1 = strchr(o->ref, '/'), *slash2 = strrchr(o->ref, '/');
  char url[1024];

  if (kw__ks_fmt(url, sizeof(url), "%s/api/v2.1/workspace/%.*s/dtable/%.*s/api-tokens/%s/",
                 s->base, (int)(slash1 - o->ref), o->ref, (int)(slash2 - slash1 - 1),
                 slash1 + 1, slash2 + 1) != 0)
    return KW_ETOOLONG;
  struct kw_http_req req = {.method = "DELETE", .url = url, .headers = hdrs};
  o->op.ok = delete_ok;
  o->op.nok = 1;
  o->op.gone = gone;
  o->op.ngone = 1;
  return kw__ks_send(&o->op, &req, on_revoked, "DELETE %s", url + strlen(s->base));
}

/* DELETE through the system admin API; token is the clear token (wiped here). */
static int send_delete_admin(struct st_op *o, const char *uuid, const char *token) {
  struct st *s = o->st;
  const char *hdrs[] = {s->auth_header, NULL};
  char url[1024], shown[512] = "";
  int r;

  r = kw__ks_fmt(url, sizeof(url), "%s/api/v2.1/admin/dtables/", s->base);
  r = r ? r : kw__ks_append_escaped(url, sizeof(url), uuid);
  r = r ? r : kw__ks_append_escaped(shown, sizeof(shown), uuid);
  r = r ? r : append_text(url, sizeof(url), "/api-tokens/");
  r = r ? r : kw__ks_append_escaped(url, sizeof(url), token);
  r = r ? r : append_text(url, sizeof(url), "/");
  if (r == 0) {
    struct kw_http_req req = {.method = "DELETE", .url = url, .headers = hdrs};
    o->op.ok = delete_ok;
    o->op.nok = 1;
    o->op.gone = gone;
    o->op.ngone = 1;
    r = kw__ks_send(&o->op, &req, on_revoked,
                    "DELETE /api/v2.1/admin/dtables/%s/api-tokens/<token>/", shown);
  }
  OPENSSL_cleanse(url, sizeof(url));
  return r;
}

static void on_looked_up(struct kw__ks_op *op, const struct kw_http_resp *resp);

/* Sends the listing of the next base that can be asked (true), or counts the ones that
 * could not and returns false when none is left. */
static bool list_next(struct st_op *o, kw__ks_next next) {
  const struct kw_keystore_cfg *cfg = o->st->cfg;
  int r;
  while (++o->base_i < cfg->bases_count) {
    if ((r = send_list(o, next)) == 0)
      return true;
    o->failed++;
    if (o->why[0] == '\0')
      snprintf(o->why, sizeof(o->why), "base %s: cannot send: %s",
               cfg->bases[o->base_i].base_name, kw_strerror(r));
  }
  return false;
}

/* Lists the next base, or ends the search. */
static void next_base(struct st_op *o) {
  const struct kw_keystore_cfg *cfg = o->st->cfg;

  if (list_next(o, on_looked_up))
    return;
  if (o->failed > 0) {
    snprintf(o->detail, sizeof(o->detail),
             "token not found in the bases listed; %u of %u could not be listed (%s)",
             o->failed, cfg->bases_count, o->why);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
  } else if (o->missing == cfg->bases_count) {
    snprintf(o->detail, sizeof(o->detail),
             "none of the %u configured bases exists at the store (HTTP 404): check the "
             "store's bases", cfg->bases_count);
    finish(o, KW_REVOKE_FAIL, NULL, o->detail);
  } else {
    snprintf(o->detail, sizeof(o->detail),
             "no token with this fingerprint in %u base%s (already deleted)%s",
             cfg->bases_count - o->missing, cfg->bases_count - o->missing == 1 ? "" : "s",
             o->missing ? "; some configured bases do not exist" : "");
    finish(o, KW_REVOKE_GONE, NULL, o->detail);
  }
}

static void on_looked_up(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct st_op *o = (struct st_op *)op;
  const struct kw_seatable_base_cfg *b = &o->st->cfg->bases[o->base_i];
  json_t *doc = NULL, *tokens, *t;
  const char *app = NULL, *token = NULL;
  size_t i;
  int r;

  if (resp->status == KW_ECANCELED) {
    finish(o, KW_REVOKE_FAIL, NULL, "canceled");
    return;
  }
  if (resp->status != 0 || resp->code != 200) {
    note_failure(o, resp, NULL);
    next_base(o);
    return;
  }
  if ((tokens = tokens_of(resp, &doc)) == NULL) {
    note_failure(o, resp, "the answer has no api_tokens array");
    next_base(o);
    return;
  }
  json_array_foreach(tokens, i, t) {
    const char *v = json_string_value(json_object_get(t, "api_token"));
    const char *name = json_string_value(json_object_get(t, "app_name"));
    if (name != NULL && name[0] != '\0' && kw__ks_fp_equal(o->st->env, v, o->fp)) {
      app = name;
      token = v;
      break;
    }
  }
  if (app == NULL) {
    wipe_tokens(tokens);
    json_decref(doc);
    next_base(o);
    return;
  }
  if ((r = make_ref(o->ref, sizeof(o->ref), b->workspace_id, b->base_name, app)) != 0) {
    wipe_tokens(tokens);
    json_decref(doc);
    finish(o, KW_REVOKE_FAIL, NULL, "the token's app_name is too long for a store id");
    return;
  }
  if (o->st->cfg->system_admin)
    r = send_delete_admin(o, b->dtable_uuid, token);
  else
    r = send_delete_ref(o);
  wipe_tokens(tokens);
  json_decref(doc);
  if (r != 0) {
    snprintf(o->detail, sizeof(o->detail), "cannot send: %s", kw_strerror(r));
    finish(o, KW_REVOKE_RETRY, o->ref, o->detail);
  }
}

static int st_revoke(void *ctx, const struct kw_revoke_target *t, kw_keystore_call_cb on_call,
                     kw_keystore_done_cb done, void *arg) {
  struct st *s = ctx;
  struct st_op *o;
  int r;

  if (t->fp == NULL)
    return KW_EINVAL;
  if ((o = op_new(s, on_call, done, arg)) == NULL)
    return KW_ENOMEM;
  memcpy(o->fp, t->fp, KW_FP_LEN);
  if (!s->cfg->system_admin && t->store_ref != NULL && t->store_ref[0] != '\0') {
    if (!ref_valid(t->store_ref) ||
        kw__ks_fmt(o->ref, sizeof(o->ref), "%s", t->store_ref) != 0) {
      free(o);
      return KW_EINVAL;
    }
    if ((r = send_delete_ref(o)) != 0)
      free(o);
    return r;
  }
  o->base_i = 0;
  if ((r = send_list(o, on_looked_up)) != 0)
    free(o);
  return r;
}

/* ---- inventory ---------------------------------------------------------------------- */

static void on_inventory(struct kw__ks_op *op, const struct kw_http_resp *resp);

static void inventory_next(struct st_op *o) {
  const struct kw_keystore_cfg *cfg = o->st->cfg;

  if (list_next(o, on_inventory))
    return;
  if (o->failed > 0) {
    snprintf(o->detail, sizeof(o->detail), "listed %zu tokens; %u of %u bases could not be "
             "listed (%s)", o->listed, o->failed, cfg->bases_count, o->why);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
    return;
  }
  if (o->missing == cfg->bases_count) {
    /* Most likely a configuration mistake: do not let the inventory sweep every token. */
    snprintf(o->detail, sizeof(o->detail),
             "none of the %u configured bases exists at the store (HTTP 404)",
             cfg->bases_count);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
    return;
  }
  snprintf(o->detail, sizeof(o->detail), "listed %zu tokens%s", o->listed,
           o->missing ? "; some configured bases do not exist" : "");
  finish(o, KW_REVOKE_DONE, NULL, o->detail);
}

static void on_inventory(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct st_op *o = (struct st_op *)op;
  const struct kw_seatable_base_cfg *b = &o->st->cfg->bases[o->base_i];
  const struct kw_keystore_env *env = o->st->env;
  json_t *doc = NULL, *tokens, *t;
  size_t i;

  if (resp->status == KW_ECANCELED) {
    finish(o, KW_REVOKE_FAIL, NULL, "canceled");
    return;
  }
  if (resp->status != 0 || resp->code != 200) {
    note_failure(o, resp, NULL);
    inventory_next(o);
    return;
  }
  if ((tokens = tokens_of(resp, &doc)) == NULL) {
    note_failure(o, resp, "the answer has no api_tokens array");
    inventory_next(o);
    return;
  }
  json_array_foreach(tokens, i, t) {
    json_t *tok = json_object_get(t, "api_token");
    const char *app = json_string_value(json_object_get(t, "app_name"));
    const char *perm = json_string_value(json_object_get(t, "permission"));
    char ref[REF_MAX], prefix[KW_PREFIX_MAX + 1] = "";
    uint8_t fp[KW_FP_LEN];
    bool has_key = json_is_string(tok) && json_string_length(tok) > 0;

    if (app == NULL || app[0] == '\0' ||
        make_ref(ref, sizeof(ref), b->workspace_id, b->base_name, app) != 0)
      continue;
    if (has_key) {
      kw_fingerprint_key(env->fpr, json_string_value(tok), json_string_length(tok), fp);
      kw_fingerprint_prefix(json_string_value(tok), json_string_length(tok),
                            env->prefix_length, prefix);
      OPENSSL_cleanse((char *)json_string_value(tok), json_string_length(tok));
    }
    struct kw_inventory_item it = {
        .store = o->st->cfg->name,
        .ref = ref,
        .name = app,
        .group = b->base_name,
        .created = json_string_value(json_object_get(t, "generated_at")),
        .permission = perm != NULL && (strcmp(perm, "r") == 0 || strcmp(perm, "rw") == 0)
                          ? perm : NULL,
        .prefix = has_key ? prefix : NULL,
        .fp = has_key ? fp : NULL,
    };
    o->item(&it, o->op.arg);
    o->listed++;
    OPENSSL_cleanse(fp, sizeof(fp));
  }
  wipe_tokens(tokens);
  json_decref(doc);
  inventory_next(o);
}

static int st_list(void *ctx, kw_keystore_item_cb item, kw_keystore_call_cb on_call,
                   kw_keystore_done_cb done, void *arg) {
  struct st *s = ctx;
  struct st_op *o = op_new(s, on_call, done, arg);
  int r;
  if (o == NULL)
    return KW_ENOMEM;
  o->item = item;
  o->base_i = 0;
  if ((r = send_list(o, on_inventory)) != 0)
    free(o);
  return r;
}

const struct kw_keystore_ops kw__keystore_seatable_ops = {
    .type = "seatable",
    .create = st_create,
    .revoke = st_revoke,
    .list = st_list,
    .owns_key = st_owns,
    .close = st_close,
};
