/* keystore_http.c — the "http" key store: any admin API that revokes (or disables) a key
 * with one HTTP call, described entirely by configuration (KEYSTORES.md, last section).
 *
 *   [lookup configured, no store_ref]
 *     lookup.method lookup.url ──► JSON answer ──► the array at lookup.items ──► the one
 *     item whose lookup.match_field matches the key:
 *        match: prefix          the field and the display prefix, either a start of the other
 *        match: fingerprint     the field is the raw key (fingerprinted, then compared)
 *        match: fingerprint_hex the field is keywatch's fingerprint in hex
 *     ──► ${key_id} = the item's lookup.id_field (string or integer)
 *        none → GONE        several → FAIL (not guessing)
 *   method url [headers] [body] ──► status in success → DONE, in gone → GONE, else RETRY
 *
 * Placeholders ${key_id}, ${key_prefix}, ${key_fingerprint}, ${rule}, ${revocation_id},
 * ${action} are percent-encoded in URLs, JSON-escaped in the body (write the quotes in
 * the template: {"id": "${key_id}"}), and inserted as they are in plain header values
 * (CR/LF refused).  Templates are checked at create: an unknown placeholder, or
 * ${key_id} with no lookup, is a configuration error.  Header secrets come from the
 * environment or a file and are never part of a summary; summaries show the method and
 * the URL's path with placeholders expanded (the query is left out).
 * Thread: the loop's.
 */
#include "keystore_int.h"

#include "../sidecar/err.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define URL_MAX 2048
#define BODY_MAX 8192

static const unsigned default_ok[] = {200, 201, 202, 204};
static const unsigned default_gone[] = {404, 410};

struct hs {
  const struct kw_keystore_env *env;
  const struct kw_keystore_cfg *cfg;
  char **headers;   /* "Name: value" lines; secrets included (wiped at close) */
  size_t nheaders;
  bool *templated;  /* headers[i] holds placeholders (expanded per request) */
};

struct hs_op {
  struct kw__ks_op op; /* first */
  struct hs *hs;
  char prefix[64], fphex[2 * KW_FP_LEN + 1], rule[128], revid[24], action[16];
  uint8_t fp[KW_FP_LEN];
  char ref[256];
  char detail[300];
};

/* ---- templates ---------------------------------------------------------------------- */

enum where { IN_URL, IN_BODY, IN_HEADER };

static const char *placeholder(const struct hs_op *o, const char *name, size_t n) {
  static const struct {
    const char *name;
    size_t off;
  } vars[] = {
      {"key_id", offsetof(struct hs_op, ref)},
      {"key_prefix", offsetof(struct hs_op, prefix)},
      {"key_fingerprint", offsetof(struct hs_op, fphex)},
      {"rule", offsetof(struct hs_op, rule)},
      {"revocation_id", offsetof(struct hs_op, revid)},
      {"action", offsetof(struct hs_op, action)},
  };
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    if (strlen(vars[i].name) == n && memcmp(vars[i].name, name, n) == 0)
      return (const char *)o + vars[i].off;
  return NULL;
}

static int put(char *out, size_t len, size_t *o, const char *s, size_t n) {
  if (*o + n + 1 > len)
    return KW_ETOOLONG;
  memcpy(out + *o, s, n);
  *o += n;
  out[*o] = '\0';
  return 0;
}

static int put_json(char *out, size_t len, size_t *o, const char *s) {
  char esc[8];
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    int r;
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      r = put(out, len, o, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof(esc), "\\u%04x", c);
      r = put(out, len, o, esc, 6);
    } else {
      r = put(out, len, o, (const char *)&c, 1);
    }
    if (r != 0)
      return r;
  }
  return 0;
}

/* Expands tpl into out.  KW_EPARSE names the bad placeholder in *bad (a pointer into
 * tpl, *badlen bytes). */
static int expand(const struct hs_op *o, const char *tpl, enum where w, char *out, size_t len,
                  const char **bad, size_t *badlen) {
  size_t n = 0;
  int r = 0;
  out[0] = '\0';
  for (const char *p = tpl; *p && r == 0;) {
    const char *start = strstr(p, "${"), *end, *v;
    if (start == NULL) {
      r = put(out, len, &n, p, strlen(p));
      break;
    }
    if ((r = put(out, len, &n, p, (size_t)(start - p))) != 0)
      break;
    if ((end = strchr(start + 2, '}')) == NULL ||
        (v = placeholder(o, start + 2, (size_t)(end - start - 2))) == NULL) {
      *bad = start;
      *badlen = end ? (size_t)(end - start + 1) : strlen(start);
      return KW_EPARSE;
    }
    if (w == IN_URL) {
      r = kw__ks_append_escaped(out, len, v);
      n = strlen(out);
    } else if (w == IN_BODY) {
      r = put_json(out, len, &n, v);
    } else {
      r = strpbrk(v, "\r\n") ? KW_EINVAL : put(out, len, &n, v, strlen(v));
    }
    p = end + 1;
  }
  return r;
}

/* Checks a template at create: known placeholders, ${key_id} only with a lookup. */
static int check_template(const struct hs *h, const char *tpl, const char *field, char *err,
                          size_t errlen) {
  struct hs_op probe = {0};
  char out[BODY_MAX];
  const char *bad = NULL;
  size_t badlen = 0;
  snprintf(probe.ref, sizeof(probe.ref), "1");
  if (tpl == NULL)
    return 0;
  if (expand(&probe, tpl, IN_BODY, out, sizeof(out), &bad, &badlen) == KW_EPARSE) {
    snprintf(err, errlen,
             "%s: unknown placeholder '%.*s' (known: ${key_id}, ${key_prefix}, "
             "${key_fingerprint}, ${rule}, ${revocation_id}, ${action})",
             field, (int)(badlen > 40 ? 40 : badlen), bad);
    return KW_ECONFIG;
  }
  if (h->cfg->lookup == NULL && strstr(tpl, "${key_id}") != NULL) {
    snprintf(err, errlen, "%s: ${key_id} needs a 'lookup' that finds the key's id", field);
    return KW_ECONFIG;
  }
  return 0;
}

/* ---- create / close ------------------------------------------------------------------ */

static void free_hs(struct hs *h) {
  for (size_t i = 0; i < h->nheaders; i++)
    kw__ks_secret_free(h->headers[i]);
  free(h->headers);
  free(h->templated);
  free(h);
}

static int hs_create(const struct kw_keystore_env *env, const struct kw_keystore_cfg *cfg,
                     void **ctx, char *err, size_t errlen) {
  struct hs *h = calloc(1, sizeof(*h));
  char field[64];
  int r = 0;

  if (h == NULL)
    return KW_ENOMEM;
  h->env = env;
  h->cfg = cfg;
  if (cfg->headers_count > 0 &&
      ((h->headers = calloc(cfg->headers_count, sizeof(char *))) == NULL ||
       (h->templated = calloc(cfg->headers_count, sizeof(bool))) == NULL)) {
    r = KW_ENOMEM;
    goto fail;
  }
  for (unsigned i = 0; i < cfg->headers_count; i++) {
    const struct kw_store_header_cfg *hd = &cfg->headers[i];
    char *secret = NULL;
    snprintf(field, sizeof(field), "headers.%u", i);
    if (hd->secret != NULL) {
      snprintf(field, sizeof(field), "headers.%u.secret", i);
      if ((r = kw__ks_secret_read(hd->secret, field, &secret, err, errlen)) != 0)
        goto fail;
      h->headers[i] = kw__ks_header(hd->name, hd->prefix, secret);
      kw__ks_secret_free(secret);
    } else {
      snprintf(field, sizeof(field), "headers.%u.value", i);
      if ((r = check_template(h, hd->value, field, err, errlen)) != 0)
        goto fail;
      h->templated[i] = strstr(hd->value, "${") != NULL;
      h->headers[i] = kw__ks_header(hd->name, hd->prefix, hd->value);
    }
    if (h->headers[i] == NULL) {
      snprintf(err, errlen, "%s: a header value must be one line", field);
      r = KW_ECONFIG;
      goto fail;
    }
    h->nheaders++;
  }
  if ((r = check_template(h, cfg->url, "url", err, errlen)) != 0 ||
      (r = check_template(h, cfg->body, "body", err, errlen)) != 0 ||
      (cfg->lookup && (r = check_template(h, cfg->lookup->url, "lookup.url", err, errlen))))
    goto fail;
  *ctx = h;
  return 0;
fail:
  free_hs(h);
  return r;
}

static void hs_close(void *ctx, void (*cb)(void *arg), void *arg) {
  free_hs(ctx);
  cb(arg);
}

/* ---- one attempt --------------------------------------------------------------------- */

static void finish(struct hs_op *o, enum kw_revoke_outcome oc) {
  kw__ks_finish(&o->op, oc, o->ref[0] ? o->ref : NULL, "%s", o->detail);
  OPENSSL_cleanse(o, sizeof(*o));
  free(o);
}

/* The request headers: secrets as they are, templated values expanded.  *own collects
 * the lines this call allocated. */
static int headers_for(struct hs_op *o, const char **out, char **own) {
  struct hs *h = o->hs;
  size_t n = 0;
  for (size_t i = 0; i < h->nheaders; i++) {
    own[i] = NULL;
    if (!h->templated[i]) {
      out[n++] = h->headers[i];
      continue;
    }
    char value[1024];
    const char *bad;
    size_t badlen;
    if (expand(o, h->cfg->headers[i].value, IN_HEADER, value, sizeof(value), &bad,
               &badlen) != 0 ||
        (own[i] = kw__ks_header(h->cfg->headers[i].name, h->cfg->headers[i].prefix, value)) ==
            NULL)
      return KW_EINVAL;
    out[n++] = own[i];
  }
  out[n] = NULL;
  return 0;
}

/* The URL's path (no scheme, host or query) for summaries. */
static void url_path(const char *url, char *out, size_t len) {
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : NULL;
  snprintf(out, len, "%.*s", p ? (int)strcspn(p, "?#") : 1, p ? p : "/");
}

static void on_revoked(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct hs_op *o = (struct hs_op *)op;
  const struct kw_keystore_cfg *c = o->hs->cfg;
  enum kw_revoke_outcome oc;
  char why[200];

  if (resp->status == KW_ECANCELED) {
    snprintf(o->detail, sizeof(o->detail), "canceled");
    finish(o, KW_REVOKE_FAIL);
    return;
  }
  oc = kw__ks_outcome(resp, c->success_count ? c->success : default_ok,
                      c->success_count ? c->success_count : 4,
                      c->gone_count ? c->gone : default_gone, c->gone_count ? c->gone_count : 2);
  kw__ks_describe(resp, why, sizeof(why));
  snprintf(o->detail, sizeof(o->detail), "%s%s", why,
           oc == KW_REVOKE_DONE ? " (revoked)" : oc == KW_REVOKE_GONE ? " (already gone)" : "");
  finish(o, oc);
}

static int send_revoke(struct hs_op *o) {
  const struct kw_keystore_cfg *c = o->hs->cfg;
  const char *hdrs[32];
  char *own[32] = {0}, url[URL_MAX], body[BODY_MAX], path[URL_MAX];
  const char *bad;
  size_t badlen;
  int r;

  if (o->hs->nheaders > 31)
    return KW_EINVAL;
  if ((r = expand(o, c->url, IN_URL, url, sizeof(url), &bad, &badlen)) != 0 ||
      (c->body && (r = expand(o, c->body, IN_BODY, body, sizeof(body), &bad, &badlen)) != 0) ||
      (r = headers_for(o, hdrs, own)) != 0)
    goto out;
  struct kw_http_req req = {
      .method = c->method ? c->method : "DELETE",
      .url = url,
      .headers = hdrs,
      .body = c->body ? body : NULL,
      .body_len = c->body ? strlen(body) : 0,
  };
  o->op.ok = c->success_count ? c->success : default_ok;
  o->op.nok = c->success_count ? c->success_count : 4;
  o->op.gone = c->gone_count ? c->gone : default_gone;
  o->op.ngone = c->gone_count ? c->gone_count : 2;
  url_path(url, path, sizeof(path));
  r = kw__ks_send(&o->op, &req, on_revoked, "%s %s", req.method, path);
out:
  for (size_t i = 0; i < o->hs->nheaders && i < 32; i++)
    kw__ks_secret_free(own[i]);
  return r;
}

/* Walks a dotted path ("data.items"; "" or NULL: v itself). */
static json_t *walk(json_t *v, const char *path) {
  char part[128];
  while (v != NULL && path != NULL && *path) {
    size_t n = strcspn(path, ".");
    snprintf(part, sizeof(part), "%.*s", (int)(n < sizeof(part) - 1 ? n : sizeof(part) - 1),
             path);
    v = json_object_get(v, part);
    path += n + (path[n] == '.');
  }
  return v;
}

static bool item_matches(struct hs_op *o, json_t *item) {
  const struct kw_lookup_cfg *l = o->hs->cfg->lookup;
  const char *v = json_string_value(walk(item, l->match_field));
  const char *mode = l->match ? l->match : "prefix";
  if (v == NULL)
    return false;
  if (strcmp(mode, "fingerprint") == 0)
    return kw__ks_fp_equal(o->hs->env, v, o->fp);
  if (strcmp(mode, "fingerprint_hex") == 0)
    return strcasecmp(v, o->fphex) == 0;
  return kw__ks_prefix_match(v, o->prefix);
}

static void on_looked_up(struct kw__ks_op *op, const struct kw_http_resp *resp) {
  struct hs_op *o = (struct hs_op *)op;
  const struct kw_lookup_cfg *l = o->hs->cfg->lookup;
  json_t *root, *items, *item;
  size_t i;
  int n = 0, r;
  char why[200];

  if (resp->status == KW_ECANCELED) {
    snprintf(o->detail, sizeof(o->detail), "canceled");
    finish(o, KW_REVOKE_FAIL);
    return;
  }
  if (resp->status != 0 || resp->code / 100 != 2) {
    kw__ks_describe(resp, why, sizeof(why));
    snprintf(o->detail, sizeof(o->detail), "lookup: %s", why);
    finish(o, KW_REVOKE_RETRY);
    return;
  }
  root = kw__ks_json(resp);
  items = walk(root, l->items);
  if (!json_is_array(items)) {
    snprintf(o->detail, sizeof(o->detail), "lookup: no JSON array at '%s' in the answer",
             l->items ? l->items : "");
    json_decref(root);
    finish(o, KW_REVOKE_RETRY);
    return;
  }
  json_array_foreach(items, i, item) {
    json_t *id;
    if (!item_matches(o, item))
      continue;
    if (++n > 1)
      continue;
    id = walk(item, l->id_field);
    if (json_is_string(id))
      snprintf(o->ref, sizeof(o->ref), "%s", json_string_value(id));
    else if (json_is_integer(id))
      snprintf(o->ref, sizeof(o->ref), "%lld", (long long)json_integer_value(id));
    else
      n = -1000; /* matched, but no usable id */
  }
  json_decref(root);
  if (n == 0) {
    snprintf(o->detail, sizeof(o->detail), "lookup: no key matching %s at the store",
             o->prefix);
    finish(o, KW_REVOKE_GONE);
  } else if (n < 0) {
    o->ref[0] = '\0';
    snprintf(o->detail, sizeof(o->detail), "lookup: the matching item has no '%s'",
             l->id_field);
    finish(o, KW_REVOKE_FAIL);
  } else if (n > 1) {
    o->ref[0] = '\0';
    snprintf(o->detail, sizeof(o->detail), "lookup: %d items match %s: not guessing which", n,
             o->prefix);
    finish(o, KW_REVOKE_FAIL);
  } else if ((r = send_revoke(o)) != 0) {
    snprintf(o->detail, sizeof(o->detail), "cannot send: %s", kw_strerror(r));
    finish(o, KW_REVOKE_RETRY);
  }
}

static int hs_revoke(void *ctx, const struct kw_revoke_target *t, kw_keystore_call_cb on_call,
                     kw_keystore_done_cb done, void *arg) {
  struct hs *h = ctx;
  struct hs_op *o = calloc(1, sizeof(*o));
  const struct kw_lookup_cfg *l = h->cfg->lookup;
  int r = 0;

  if (o == NULL)
    return KW_ENOMEM;
  o->hs = h;
  o->op.store = h->cfg->name;
  o->op.http = h->env->http;
  o->op.timeout_ms = (long)(h->cfg->timeout_us / 1000);
  o->op.on_call = on_call;
  o->op.done = done;
  o->op.arg = arg;
  snprintf(o->prefix, sizeof(o->prefix), "%s", t->prefix ? t->prefix : "");
  memcpy(o->fp, t->fp, KW_FP_LEN);
  for (int i = 0; i < KW_FP_LEN; i++)
    snprintf(o->fphex + 2 * i, 3, "%02x", t->fp[i]);
  snprintf(o->rule, sizeof(o->rule), "%s", t->rule ? t->rule : "manual");
  snprintf(o->revid, sizeof(o->revid), "%lld", (long long)t->id);
  snprintf(o->action, sizeof(o->action), "%s", t->action);
  if (l == NULL || (t->store_ref != NULL && t->store_ref[0] != '\0')) {
    if (t->store_ref)
      snprintf(o->ref, sizeof(o->ref), "%s", t->store_ref);
    if ((r = send_revoke(o)) != 0)
      free(o);
    return r;
  }
  char url[URL_MAX], path[URL_MAX];
  const char *hdrs[32];
  char *own[32] = {0};
  const char *bad;
  size_t badlen;
  if (h->nheaders > 31 ||
      (r = expand(o, l->url, IN_URL, url, sizeof(url), &bad, &badlen)) != 0 ||
      (r = headers_for(o, hdrs, own)) != 0) {
    for (size_t i = 0; i < h->nheaders && i < 32; i++)
      kw__ks_secret_free(own[i]);
    free(o);
    return r ? r : KW_EINVAL;
  }
  struct kw_http_req req = {.method = l->method ? l->method : "GET", .url = url,
                            .headers = hdrs, .max_body = 16u << 20};
  o->op.ok = NULL, o->op.nok = 0, o->op.gone = NULL, o->op.ngone = 0;
  url_path(url, path, sizeof(path));
  r = kw__ks_send(&o->op, &req, on_looked_up, "%s %s", req.method, path);
  for (size_t i = 0; i < h->nheaders; i++)
    kw__ks_secret_free(own[i]);
  if (r != 0)
    free(o);
  return r;
}

const struct kw_keystore_ops kw__keystore_http_ops = {
    .type = "http",
    .create = hs_create,
    .revoke = hs_revoke,
    .close = hs_close,
};
