/* keystore_kong.c — the "kong" key store: Kong Gateway's key-auth credentials through the
 * Admin API (KEYSTORES.md).
 *
 * Kong lists credentials with their keys in clear, so a key seen in traffic is found by
 * fingerprinting each listed key with keywatch's secret and comparing.  Kong's logs name
 * the credential by id (authenticated_entity.id), so keywatch may hold the fingerprint of
 * a credential id instead: ids are compared the same way.  An attempt:
 *
 *   [no store_ref] GET /key-auths?size=1000 ──► credential whose key or id has
 *        fingerprint fp? ──► its id        no: follow "offset" (else "next") to the next
 *        page, at most MAX_PAGES pages; last page and no match → GONE (already deleted)
 *   DELETE /key-auths/{id}      204 → DONE, 404 → GONE, else RETRY
 *
 * store_ref is the credential's id (a UUID).  A key never appears in a URL or a summary:
 * lookups are by listing, the revoke is by id.  (Kong's generic DELETE answers 204 for an
 * unknown id too, so a retried attempt with a store_ref may see DONE where GONE is true;
 * both count as done.)
 *
 * Authorisation: optional, "Kong-Admin-Token: <credential>" (Enterprise RBAC); the
 * open-source Admin API has none.  The inventory is the same listing.
 * Thread: the loop's.
 */
#include "keystore_int.h"

#include "../sidecar/err.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_SIZE 1000
#define MAX_PAGES 1000
#define ID_MAX 128
#define OFFSET_MAX 512
#define LIST_MAX (16u << 20)

struct kong {
  const struct kw_keystore_env *env;
  const struct kw_keystore_cfg *cfg;
  char *base;        /* url without trailing '/' */
  char *auth_header; /* "Kong-Admin-Token: …" (secret), or NULL */
  bool own_known;
  uint8_t own_fp[KW_FP_LEN];
};

struct kong_op {
  struct kw__ks_op op; /* first: the shared attempt state */
  struct kong *k;
  uint8_t fp[KW_FP_LEN];
  unsigned page;           /* pages fetched */
  char next[OFFSET_MAX];   /* the next page: "offset" value, or "next" path when from_next */
  bool from_next;
  char ref[ID_MAX];
  char detail[300];
  /* list */
  kw_keystore_item_cb item;
  size_t listed;
};

static const unsigned delete_ok[] = {204}, list_ok[] = {200}, gone[] = {404};

/* ---- life ---------------------------------------------------------------------------- */

static int kong_create(const struct kw_keystore_env *env, const struct kw_keystore_cfg *cfg,
                       void **ctx, char *err, size_t errlen) {
  struct kong *k = calloc(1, sizeof(*k));
  char *secret = NULL;
  int r;

  if (k == NULL)
    return KW_ENOMEM;
  k->env = env;
  k->cfg = cfg;
  if (cfg->credential != NULL &&
      (r = kw__ks_secret_read(cfg->credential, "credential", &secret, err, errlen)) != 0)
    goto fail;
  if ((k->base = kw__ks_base(cfg->url)) == NULL) {
    r = KW_ENOMEM;
    goto fail;
  }
  if (secret != NULL) {
    if ((k->auth_header = kw__ks_header("Kong-Admin-Token", NULL, secret)) == NULL) {
      r = KW_ENOMEM;
      goto fail;
    }
    kw_fingerprint_key(env->fpr, secret, strlen(secret), k->own_fp);
    k->own_known = true;
  }
  kw__ks_secret_free(secret);
  *ctx = k;
  return 0;
fail:
  kw__ks_secret_free(secret);
  free(k->base);
  free(k);
  return r;
}

static void kong_close(void *ctx, void (*cb)(void *arg), void *arg) {
  struct kong *k = ctx;
  kw__ks_secret_free(k->auth_header);
  free(k->base);
  OPENSSL_cleanse(k, sizeof(*k));
  free(k);
  cb(arg);
}

static bool kong_owns(void *ctx, const uint8_t *fp, const char *prefix) {
  struct kong *k = ctx;
  (void)prefix;
  return k->own_known && fp != NULL && CRYPTO_memcmp(fp, k->own_fp, KW_FP_LEN) == 0;
}

static struct kong_op *op_new(struct kong *k, kw_keystore_call_cb on_call,
                              kw_keystore_done_cb done, void *arg) {
  struct kong_op *o = calloc(1, sizeof(*o));
  if (o == NULL)
    return NULL;
  o->k = k;
  o->op.store = k->cfg->name;
  o->op.http = k->env->http;
  o->op.timeout_ms = (long)(k->cfg->timeout_us / 1000);
  o->op.on_call = on_call;
  o->op.done = done;
  o->op.arg = arg;
  return o;
}

static void finish(struct kong_op *o, enum kw_revoke_outcome oc, const char *ref,
                   const char *detail) {
  kw__ks_finish(&o->op, oc, ref, "%s", detail);
  OPENSSL_cleanse(o, sizeof(*o));
  free(o);
}

/* ---- pages ---------------------------------------------------------------------------- */

/* Sends the request for the next page (the first when o->page is 0).  Returns 0 or an
 * error (no callback then). */
static int send_page(struct kong_op *o, kw__ks_next next) {
  struct kong *k = o->k;
  const char *hdrs[] = {k->auth_header, NULL};
  char url[1024 + OFFSET_MAX];
  int r;

  if (o->page == 0)
    r = kw__ks_fmt(url, sizeof(url), "%s/key-auths?size=%d", k->base, PAGE_SIZE);
  else if (o->from_next)
    r = kw__ks_fmt(url, sizeof(url), "%s%s", k->base, o->next);
  else {
    r = kw__ks_fmt(url, sizeof(url), "%s/key-auths?size=%d&offset=", k->base, PAGE_SIZE);
    r = r ? r : kw__ks_append_escaped(url, sizeof(url), o->next);
  }
  if (r != 0)
    return r;
  struct kw_http_req req = {.method = "GET", .url = url, .headers = hdrs,
                            .max_body = LIST_MAX};
  o->op.ok = list_ok;
  o->op.nok = 1;
  o->op.gone = NULL; /* a 404 while listing is an error, not "gone" */
  o->op.ngone = 0;
  o->page++;
  if (o->page == 1)
    return kw__ks_send(&o->op, &req, next, "GET /key-auths?size=%d", PAGE_SIZE);
  return kw__ks_send(&o->op, &req, next, "GET /key-auths?size=%d (page %u)", PAGE_SIZE,
                     o->page);
}

/* The page's data array (the document is returned in *doc, to free), or NULL.  Records
 * where the next page is in o (o->next empty: this was the last). */
static json_t *page_of(struct kong_op *o, const struct kw_http_resp *resp, json_t **doc) {
  json_t *data, *off, *nx;
  *doc = kw__ks_json(resp);
  data = json_object_get(*doc, "data");
  if (!json_is_array(data)) {
    json_decref(*doc);
    *doc = NULL;
    return NULL;
  }
  o->next[0] = '\0';
  o->from_next = false;
  off = json_object_get(*doc, "offset");
  nx = json_object_get(*doc, "next");
  if (json_is_string(off) && json_string_length(off) > 0 &&
      json_string_length(off) < sizeof(o->next)) {
    snprintf(o->next, sizeof(o->next), "%s", json_string_value(off));
  } else if (json_is_string(nx) && json_string_value(nx)[0] == '/' &&
             json_string_length(nx) < sizeof(o->next) &&
             strpbrk(json_string_value(nx), " \r\n#") == NULL) {
    snprintf(o->next, sizeof(o->next), "%s", json_string_value(nx));
    o->from_next = true;
  } else if (!json_is_null(nx) && nx != NULL) {
    /* A next page we cannot follow: reported as an error by the caller. */
    snprintf(o->next, sizeof(o->next), "?");
    o->from_next = true;
  }
  return data;
}

static bool next_unusable(const struct kong_op *o) {
  return o->from_next && o->next[0] == '?';
}

/* Wipes the clear keys of a parsed page. */
static void wipe_keys(json_t *data) {
  size_t i;
  json_t *c, *v;
  json_array_foreach(data, i, c) {
    if ((v = json_object_get(c, "key")) != NULL && json_is_string(v))
      OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
  }
}

/* ---- revoke --------------------------------------------------------------------------- */

static void on_revoked(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct kong_op *o = (struct kong_op *)op;
  enum kw_revoke_outcome oc = kw__ks_outcome(resp, delete_ok, 1, gone, 1);
  kw__ks_revoke_detail(resp, oc, "deleted", "credential", o->ref, o->detail, sizeof(o->detail));
  finish(o, resp->status == KW_ECANCELED ? KW_REVOKE_FAIL : oc, o->ref, o->detail);
}

static int send_delete(struct kong_op *o) {
  struct kong *k = o->k;
  const char *hdrs[] = {k->auth_header, NULL};
  char url[1024], path[ID_MAX * 3 + 16] = "/key-auths/";
  int r;

  if ((r = kw__ks_append_escaped(path, sizeof(path), o->ref)) != 0 ||
      (r = kw__ks_fmt(url, sizeof(url), "%s%s", k->base, path)) != 0)
    return r;
  struct kw_http_req req = {.method = "DELETE", .url = url, .headers = hdrs};
  o->op.ok = delete_ok;
  o->op.nok = 1;
  o->op.gone = gone;
  o->op.ngone = 1;
  return kw__ks_send(&o->op, &req, on_revoked, "DELETE %s", path);
}

/* The data array of a listing page, or NULL when the answer is no page (the attempt is
 * then finished: canceled, or retried later). */
static json_t *page_data(struct kong_op *o, const struct kw_http_resp *resp, json_t **doc) {
  json_t *data;
  char why[200];
  if (resp->status == KW_ECANCELED) {
    finish(o, KW_REVOKE_FAIL, NULL, "canceled");
    return NULL;
  }
  if (resp->status != 0 || resp->code != 200) {
    kw__ks_describe(resp, why, sizeof(why));
    snprintf(o->detail, sizeof(o->detail), "listing credentials (page %u): %s", o->page, why);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
    return NULL;
  }
  if ((data = page_of(o, resp, doc)) == NULL) {
    snprintf(o->detail, sizeof(o->detail),
             "GET /key-auths (page %u): the answer has no data array", o->page);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
    return NULL;
  }
  return data;
}

static void on_page(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct kong_op *o = (struct kong_op *)op;
  const struct kw_keystore_env *env = o->k->env;
  json_t *doc = NULL, *data, *c;
  size_t i;
  int r;

  if ((data = page_data(o, resp, &doc)) == NULL)
    return;
  json_array_foreach(data, i, c) {
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *key = json_string_value(json_object_get(c, "key"));
    if (id == NULL || id[0] == '\0' || strlen(id) >= sizeof(o->ref))
      continue;
    if (kw__ks_fp_equal(env, key, o->fp) || kw__ks_fp_equal(env, id, o->fp)) {
      snprintf(o->ref, sizeof(o->ref), "%s", id);
      break;
    }
  }
  wipe_keys(data);
  json_decref(doc);
  if (o->ref[0] != '\0') {
    if ((r = send_delete(o)) != 0) {
      snprintf(o->detail, sizeof(o->detail), "cannot send: %s", kw_strerror(r));
      finish(o, KW_REVOKE_RETRY, o->ref, o->detail);
    }
    return;
  }
  if (next_unusable(o)) {
    snprintf(o->detail, sizeof(o->detail),
             "GET /key-auths (page %u): cannot follow the answer's next page", o->page);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
  } else if (o->next[0] == '\0') {
    snprintf(o->detail, sizeof(o->detail),
             "no credential with this fingerprint in %u page%s (already deleted)", o->page,
             o->page == 1 ? "" : "s");
    finish(o, KW_REVOKE_GONE, NULL, o->detail);
  } else if (o->page >= MAX_PAGES) {
    snprintf(o->detail, sizeof(o->detail), "not found in the first %d pages of %d credentials: "
             "gave up", MAX_PAGES, PAGE_SIZE);
    finish(o, KW_REVOKE_FAIL, NULL, o->detail);
  } else if ((r = send_page(o, on_page)) != 0) {
    snprintf(o->detail, sizeof(o->detail), "cannot send: %s", kw_strerror(r));
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
  }
}

static int kong_revoke(void *ctx, const struct kw_revoke_target *t,
                       kw_keystore_call_cb on_call, kw_keystore_done_cb done, void *arg) {
  struct kong *k = ctx;
  struct kong_op *o;
  int r;

  if (t->fp == NULL)
    return KW_EINVAL;
  if ((o = op_new(k, on_call, done, arg)) == NULL)
    return KW_ENOMEM;
  memcpy(o->fp, t->fp, KW_FP_LEN);
  if (t->store_ref != NULL && t->store_ref[0] != '\0') {
    if (kw__ks_fmt(o->ref, sizeof(o->ref), "%s", t->store_ref) != 0) {
      free(o);
      return KW_EINVAL;
    }
    r = send_delete(o);
  } else {
    r = send_page(o, on_page);
  }
  if (r != 0)
    free(o);
  return r;
}

/* ---- inventory ------------------------------------------------------------------------ */

/* created_at (epoch seconds) as ISO 8601 UTC, or "" when absent. */
static void created_text(json_t *v, char *buf, size_t len) {
  struct tm tm;
  time_t t;
  buf[0] = '\0';
  if (!json_is_number(v))
    return;
  t = (time_t)json_number_value(v);
  if (gmtime_r(&t, &tm) != NULL)
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void on_inventory(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct kong_op *o = (struct kong_op *)op;
  const struct kw_keystore_env *env = o->k->env;
  json_t *doc = NULL, *data, *c;
  size_t i;
  int r;

  if ((data = page_data(o, resp, &doc)) == NULL)
    return;
  json_array_foreach(data, i, c) {
    json_t *key = json_object_get(c, "key");
    const char *id = json_string_value(json_object_get(c, "id"));
    char created[32], prefix[KW_PREFIX_MAX + 1] = "";
    uint8_t fp[KW_FP_LEN];
    bool has_key = json_is_string(key) && json_string_length(key) > 0;

    if (id == NULL || id[0] == '\0')
      continue;
    if (has_key) {
      kw_fingerprint_key(env->fpr, json_string_value(key), json_string_length(key), fp);
      kw_fingerprint_prefix(json_string_value(key), json_string_length(key),
                            env->prefix_length, prefix);
      OPENSSL_cleanse((char *)json_string_value(key), json_string_length(key));
    }
    created_text(json_object_get(c, "created_at"), created, sizeof(created));
    struct kw_inventory_item it = {
        .store = o->k->cfg->name,
        .ref = id,
        .group = json_string_value(json_object_get(json_object_get(c, "consumer"), "id")),
        .created = created[0] ? created : NULL,
        .prefix = has_key ? prefix : NULL,
        .fp = has_key ? fp : NULL,
    };
    o->item(&it, o->op.arg);
    o->listed++;
    OPENSSL_cleanse(fp, sizeof(fp));
  }
  wipe_keys(data);
  json_decref(doc);
  if (next_unusable(o)) {
    snprintf(o->detail, sizeof(o->detail),
             "GET /key-auths (page %u): cannot follow the answer's next page", o->page);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
  } else if (o->next[0] == '\0') {
    snprintf(o->detail, sizeof(o->detail), "listed %zu credentials", o->listed);
    finish(o, KW_REVOKE_DONE, NULL, o->detail);
  } else if (o->page >= MAX_PAGES) {
    snprintf(o->detail, sizeof(o->detail), "more than %d pages of credentials: incomplete",
             MAX_PAGES);
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
  } else if ((r = send_page(o, on_inventory)) != 0) {
    snprintf(o->detail, sizeof(o->detail), "cannot send: %s", kw_strerror(r));
    finish(o, KW_REVOKE_RETRY, NULL, o->detail);
  }
}

static int kong_list(void *ctx, kw_keystore_item_cb item, kw_keystore_call_cb on_call,
                     kw_keystore_done_cb done, void *arg) {
  struct kong *k = ctx;
  struct kong_op *o = op_new(k, on_call, done, arg);
  int r;
  if (o == NULL)
    return KW_ENOMEM;
  o->item = item;
  if ((r = send_page(o, on_inventory)) != 0)
    free(o);
  return r;
}

const struct kw_keystore_ops kw__keystore_kong_ops = {
    .type = "kong",
    .create = kong_create,
    .revoke = kong_revoke,
    .list = kong_list,
    .owns_key = kong_owns,
    .close = kong_close,
};
