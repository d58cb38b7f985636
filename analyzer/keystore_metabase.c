/* keystore_metabase.c — the "metabase" key store: Metabase's /api/api-key (KEYSTORES.md).
 *
 * Metabase keeps only a bcrypt hash and the first 7 characters of a key (unique), and
 * shows them as masked_key = prefix + 40 '*'.  An attempt:
 *
 *   [no store_ref] GET /api/api-key ──► the one key whose masked_key[0:7] matches the
 *        display prefix (either is a start of the other) ──► its id
 *        none → GONE ("not there": already deleted)     several → FAIL (ambiguous)
 *        keywatch's own admin key → FAIL (never revoked)
 *   DELETE /api/api-key/:id          204 → DONE, 404 → GONE, else RETRY
 *   or, with action regenerate:
 *   PUT /api/api-key/:id/regenerate  200 → DONE (the new key in the answer is dropped
 *                                    unread and wiped), 404 → GONE, else RETRY
 *
 * Admin calls carry X-API-Key (auth: api_key, a key of the Administrators group) or
 * X-Metabase-Session (auth: session).  With api_key, that key's fingerprint and 7-char
 * prefix are kept so owns_key() protects it.  The inventory is the same list.
 * Thread: the loop's.
 */
#include "keystore_int.h"

#include "../sidecar/err.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB_PREFIX 7

struct mb {
  const struct kw_keystore_env *env;
  const struct kw_keystore_cfg *cfg;
  char *base;         /* url without trailing '/' */
  char *auth_header;  /* "X-API-Key: …" or "X-Metabase-Session: …" (secret) */
  bool own_known;
  uint8_t own_fp[KW_FP_LEN];
  char own_prefix[MB_PREFIX + 1];
};

struct mb_op {
  struct kw__ks_op op; /* first: the shared attempt state */
  struct mb *mb;
  bool regenerate;
  char prefix[64];
  uint8_t fp[KW_FP_LEN];
  char ref[32];
  char found[MB_PREFIX + 1]; /* masked_key[0:7] of the key found */
  char detail[200];
  /* list */
  kw_keystore_item_cb item;
};

static const unsigned delete_ok[] = {204, 200}, regen_ok[] = {200}, gone[] = {404};

static int mb_create(const struct kw_keystore_env *env, const struct kw_keystore_cfg *cfg,
                     void **ctx, char *err, size_t errlen) {
  struct mb *m = calloc(1, sizeof(*m));
  char *secret = NULL;
  int r;

  if (m == NULL)
    return KW_ENOMEM;
  m->env = env;
  m->cfg = cfg;
  if (cfg->credential == NULL) {
    snprintf(err, errlen, "credential: a metabase store needs the admin credential "
                          "({env: VAR} or {file: PATH})");
    r = KW_ECONFIG;
    goto fail;
  }
  if ((r = kw__ks_secret_read(cfg->credential, "credential", &secret, err, errlen)) != 0)
    goto fail;
  if ((m->base = kw__ks_base(cfg->url)) == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  if (strcmp(cfg->auth, "session") == 0) {
    m->auth_header = kw__ks_header("X-Metabase-Session", NULL, secret);
  } else {
    m->auth_header = kw__ks_header("X-API-Key", NULL, secret);
    kw_fingerprint_key(env->fpr, secret, strlen(secret), m->own_fp);
    snprintf(m->own_prefix, sizeof(m->own_prefix), "%.*s", MB_PREFIX, secret);
    m->own_known = true;
  }
  if (m->auth_header == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  kw__ks_secret_free(secret);
  *ctx = m;
  return 0;
fail:
  kw__ks_secret_free(secret);
  free(m->base);
  free(m);
  return r;
}

static void mb_close(void *ctx, void (*cb)(void *arg), void *arg) {
  struct mb *m = ctx;
  kw__ks_secret_free(m->auth_header);
  free(m->base);
  free(m);
  cb(arg);
}

static bool mb_owns(void *ctx, const uint8_t *fp, const char *prefix) {
  struct mb *m = ctx;
  if (!m->own_known)
    return false;
  if (fp != NULL && CRYPTO_memcmp(fp, m->own_fp, KW_FP_LEN) == 0)
    return true;
  /* A display prefix as long as Metabase's names one key (key_prefix is unique). */
  return prefix != NULL && strlen(prefix) >= MB_PREFIX &&
         strncmp(prefix, m->own_prefix, MB_PREFIX) == 0;
}

static struct mb_op *op_new(struct mb *m, kw_keystore_call_cb on_call,
                            kw_keystore_done_cb done, void *arg) {
  struct mb_op *o = calloc(1, sizeof(*o));
  if (o == NULL)
    return NULL;
  o->mb = m;
  o->op.store = m->cfg->name;
  o->op.http = m->env->http;
  o->op.timeout_ms = (long)(m->cfg->timeout_us / 1000);
  o->op.on_call = on_call;
  o->op.done = done;
  o->op.arg = arg;
  return o; /* ok/gone codes are set for the revoking call only: a 404 listing is an error */
}

static void finish(struct mb_op *o, enum kw_revoke_outcome oc, const char *ref,
                   const char *detail) {
  kw__ks_finish(&o->op, oc, ref, "%s", detail);
  OPENSSL_cleanse(o, sizeof(*o));
  free(o);
}

static void on_revoked(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct mb_op *o = (struct mb_op *)op;
  enum kw_revoke_outcome oc = kw__ks_outcome(resp, o->regenerate ? regen_ok : delete_ok,
                                             o->regenerate ? 1 : 2, gone, 1);

  if (o->regenerate && resp->status == 0 && resp->body != NULL)
    OPENSSL_cleanse((char *)resp->body, resp->len); /* the new key: never kept */
  kw__ks_revoke_detail(resp, oc, o->regenerate ? "regenerated" : "deleted", "key", o->ref,
                       o->detail, sizeof(o->detail));
  finish(o, resp->status == KW_ECANCELED ? KW_REVOKE_FAIL : oc, o->ref, o->detail);
}

/* Sends the revoking call.  Returns 0 or an error (no callback then). */
static int send_revoke(struct mb_op *o) {
  struct mb *m = o->mb;
  const char *hdrs[] = {m->auth_header, NULL};
  char url[1024];
  if (kw__ks_fmt(url, sizeof(url), "%s/api/api-key/%s%s", m->base, o->ref,
                 o->regenerate ? "/regenerate" : "") != 0)
    return KW_ETOOLONG;
  struct kw_http_req req = {.method = o->regenerate ? "PUT" : "DELETE", .url = url,
                            .headers = hdrs};
  o->op.ok = o->regenerate ? regen_ok : delete_ok;
  o->op.nok = o->regenerate ? 1 : 2;
  o->op.gone = gone;
  o->op.ngone = 1;
  return kw__ks_send(&o->op, &req, on_revoked, "%s /api/api-key/%s%s", req.method, o->ref,
                     o->regenerate ? "/regenerate" : "");
}

/* Counts the keys matching o->prefix in the list; the first one's id and prefix go to
 * o->ref and o->found. */
static void match(struct mb_op *o, json_t *list, int *matches) {
  size_t i;
  json_t *k;
  *matches = 0;
  json_array_foreach(list, i, k) {
    const char *masked = json_string_value(json_object_get(k, "masked_key"));
    json_t *id = json_object_get(k, "id");
    char p[MB_PREFIX + 1];
    if (masked == NULL || !json_is_integer(id))
      continue;
    snprintf(p, sizeof(p), "%.*s", MB_PREFIX, masked);
    if (!kw__ks_prefix_match(p, o->prefix))
      continue;
    if (++*matches == 1) {
      snprintf(o->ref, sizeof(o->ref), "%lld", (long long)json_integer_value(id));
      memcpy(o->found, p, sizeof(p));
    }
  }
}

static void on_listed(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct mb_op *o = (struct mb_op *)op;
  json_t *list;
  int n = 0, r;
  char why[200];

  if (resp->status == KW_ECANCELED) {
    finish(o, KW_REVOKE_FAIL, NULL, "canceled");
    return;
  }
  if (resp->status != 0 || resp->code != 200) {
    kw__ks_describe(resp, why, sizeof(why));
    snprintf(o->detail, sizeof(o->detail), "listing keys: %s", why);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
    return;
  }
  if ((list = kw__ks_json(resp)) == NULL || !json_is_array(list)) {
    json_decref(list);
    finish(o, KW_REVOKE_RETRY, NULL, "GET /api/api-key: the answer is not a JSON array");
    return;
  }
  match(o, list, &n);
  json_decref(list);
  if (n == 0) {
    snprintf(o->detail, sizeof(o->detail), "no key with prefix %s at the store (already deleted)",
             o->prefix);
    finish(o, KW_REVOKE_GONE, NULL, o->detail);
  } else if (n > 1) {
    snprintf(o->detail, sizeof(o->detail),
             "prefix %s matches %d keys at the store: not guessing which", o->prefix, n);
    finish(o, KW_REVOKE_FAIL, NULL, o->detail);
  } else if (o->mb->own_known && strcmp(o->found, o->mb->own_prefix) == 0) {
    /* A short display prefix led to the key keywatch itself uses: refuse. */
    snprintf(o->detail, sizeof(o->detail), "key %s is keywatch's own admin key", o->ref);
    finish(o, KW_REVOKE_FAIL, o->ref, o->detail);
  } else if ((r = send_revoke(o)) != 0) {
    snprintf(o->detail, sizeof(o->detail), "cannot send: %s", kw_strerror(r));
    finish(o, KW_REVOKE_RETRY, o->ref, o->detail);
  }
}

static int mb_revoke(void *ctx, const struct kw_revoke_target *t, kw_keystore_call_cb on_call,
                     kw_keystore_done_cb done, void *arg) {
  struct mb *m = ctx;
  struct mb_op *o;
  int r;

  if (mb_owns(m, t->fp, t->prefix))
    return KW_EINVAL; /* the responder checks owns_key() first; never reached */
  if ((o = op_new(m, on_call, done, arg)) == NULL)
    return KW_ENOMEM;
  o->regenerate = strcmp(t->action, "regenerate") == 0;
  snprintf(o->prefix, sizeof(o->prefix), "%s", t->prefix ? t->prefix : "");
  memcpy(o->fp, t->fp, KW_FP_LEN);
  if (t->store_ref != NULL && t->store_ref[0] != '\0') {
    snprintf(o->ref, sizeof(o->ref), "%s", t->store_ref);
    if ((r = send_revoke(o)) != 0)
      free(o);
    return r;
  }
  if (o->prefix[0] == '\0') {
    free(o);
    return KW_EINVAL;
  }
  char url[1024];
  const char *hdrs[] = {m->auth_header, NULL};
  if (kw__ks_fmt(url, sizeof(url), "%s/api/api-key", m->base) != 0) {
    free(o);
    return KW_ETOOLONG;
  }
  struct kw_http_req req = {.method = "GET", .url = url, .headers = hdrs,
                            .max_body = 16u << 20};
  if ((r = kw__ks_send(&o->op, &req, on_listed, "GET /api/api-key")) != 0)
    free(o);
  return r;
}

/* ---- inventory ---------------------------------------------------------------------- */

static void on_inventory(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct mb_op *o = (struct mb_op *)op;
  json_t *list = NULL, *k;
  size_t i, n = 0;
  char why[200];

  if (resp->status != 0 || resp->code != 200 || (list = kw__ks_json(resp)) == NULL ||
      !json_is_array(list)) {
    kw__ks_describe(resp, why, sizeof(why));
    json_decref(list);
    snprintf(o->detail, sizeof(o->detail), "listing keys: %s%s", why,
             resp->status == 0 && resp->code == 200 ? " (not a JSON array)" : "");
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
    return;
  }
  json_array_foreach(list, i, k) {
    const char *masked = json_string_value(json_object_get(k, "masked_key"));
    json_t *id = json_object_get(k, "id");
    char ref[32], p[MB_PREFIX + 1];
    if (masked == NULL || !json_is_integer(id))
      continue;
    snprintf(ref, sizeof(ref), "%lld", (long long)json_integer_value(id));
    snprintf(p, sizeof(p), "%.*s", MB_PREFIX, masked);
    struct kw_inventory_item it = {
        .store = o->mb->cfg->name,
        .ref = ref,
        .name = json_string_value(json_object_get(k, "name")),
        .group = json_string_value(json_object_get(json_object_get(k, "group"), "name")),
        .created = json_string_value(json_object_get(k, "created_at")),
        .prefix = p,
        .own = o->mb->own_known && strcmp(p, o->mb->own_prefix) == 0,
    };
    o->item(&it, o->op.arg);
    n++;
  }
  json_decref(list);
  finish(o, KW_REVOKE_DONE, NULL, n ? "listed" : "listed (no keys)");
}

static int mb_list(void *ctx, kw_keystore_item_cb item, kw_keystore_call_cb on_call,
                   kw_keystore_done_cb done, void *arg) {
  struct mb *m = ctx;
  struct mb_op *o = op_new(m, on_call, done, arg);
  char url[1024];
  const char *hdrs[] = {m->auth_header, NULL};
  int r;
  if (o == NULL)
    return KW_ENOMEM;
  o->item = item;
  if (kw__ks_fmt(url, sizeof(url), "%s/api/api-key", m->base) != 0) {
    free(o);
    return KW_ETOOLONG;
  }
  struct kw_http_req req = {.method = "GET", .url = url, .headers = hdrs,
                            .max_body = 16u << 20};
  if ((r = kw__ks_send(&o->op, &req, on_inventory, "GET /api/api-key")) != 0)
    free(o);
  return r;
}

const struct kw_keystore_ops kw__keystore_metabase_ops = {
    .type = "metabase",
    .create = mb_create,
    .revoke = mb_revoke,
    .list = mb_list,
    .owns_key = mb_owns,
    .close = mb_close,
};
