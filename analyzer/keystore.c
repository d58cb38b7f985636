/* keystore.c — the key-store registry, default slots, and helpers adapters share
 * (keystore.h, keystore_int.h).
 *
 * Thread: the loop's (helpers: any).
 */
#include "keystore_int.h"

#include "../sidecar/err.h"
#include "../sidecar/secret.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DETAIL_BODY 120 /* bytes of an error answer kept in the audit */

static const struct kw_keystore_ops *const registry[] = {
    &kw__keystore_metabase_ops, &kw__keystore_seatable_ops, &kw__keystore_kong_ops,
    &kw__keystore_http_ops,     &kw__keystore_command_ops,
};

const char *kw_revoke_outcome_name(enum kw_revoke_outcome o) {
  switch (o) {
  case KW_REVOKE_DONE: return "done";
  case KW_REVOKE_GONE: return "gone";
  case KW_REVOKE_RETRY: return "retry";
  case KW_REVOKE_FAIL: return "fail";
  }
  return "?";
}

/* ---- defaults for optional slots ---------------------------------------------------- */

static int no_list(void *ctx, kw_keystore_item_cb item, kw_keystore_call_cb on_call,
                   kw_keystore_done_cb done, void *arg) {
  (void)ctx, (void)item, (void)on_call, (void)done, (void)arg;
  return KW_EINVAL;
}

static bool owns_nothing(void *ctx, const uint8_t *fp, const char *prefix) {
  (void)ctx, (void)fp, (void)prefix;
  return false;
}

static struct kw_keystore_ops with_defaults(const struct kw_keystore_ops *o) {
  struct kw_keystore_ops v = *o;
  if (v.list == NULL)
    v.list = no_list;
  if (v.owns_key == NULL)
    v.owns_key = owns_nothing;
  return v;
}

/* Filled once per type at first open: the registry's tables with defaults applied. */
static struct kw_keystore_ops filled[sizeof(registry) / sizeof(registry[0])];

int kw_keystore_open(const struct kw_keystore_env *env, const struct kw_config *cfg,
                     unsigned index, struct kw_keystore *out, char *err, size_t errlen) {
  const struct kw_keystore_cfg *k = &cfg->responder.stores[index];
  char field[64], msg[400] = "";
  int r;

  memset(out, 0, sizeof(*out));
  for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
    if (strcmp(registry[i]->type, k->type) != 0)
      continue;
    filled[i] = with_defaults(registry[i]); /* const data: idempotent */
    r = filled[i].create(env, k, &out->ctx, msg, sizeof(msg));
    if (r != 0) {
      /* msg is "FIELD: problem" with FIELD relative to the store, or a bare problem. */
      const char *colon = strstr(msg, ": ");
      if (colon != NULL && memchr(msg, ' ', (size_t)(colon - msg)) == NULL) {
        snprintf(field, sizeof(field), "responder.stores.%u.%.*s", index,
                 (int)(colon - msg), msg);
        kw_config_error(cfg, field, err, errlen, "%s", colon + 2);
      } else {
        snprintf(field, sizeof(field), "responder.stores.%u", index);
        kw_config_error(cfg, field, err, errlen, "%s", msg[0] ? msg : kw_strerror(r));
      }
      return r == KW_ENOMEM ? KW_ENOMEM : KW_ECONFIG;
    }
    out->ops = &filled[i];
    out->cfg = k;
    return 0;
  }
  snprintf(field, sizeof(field), "responder.stores.%u.type", index);
  return kw_config_error(cfg, field, err, errlen, "unknown key store type '%s'", k->type);
}

bool kw_keystore_handles(const struct kw_keystore *ks, const char *prefix) {
  if (ks->cfg->prefixes_count == 0)
    return true;
  for (unsigned i = 0; i < ks->cfg->prefixes_count; i++) {
    size_t n = strlen(ks->cfg->prefixes[i]);
    if (prefix != NULL && strncmp(prefix, ks->cfg->prefixes[i], n) == 0)
      return true;
  }
  return false;
}

char *kw__ks_base(const char *url) {
  char *b = strdup(url);
  size_t n = b ? strlen(b) : 0;
  while (n > 0 && b[n - 1] == '/')
    b[--n] = '\0';
  return b;
}

/* ---- secrets ------------------------------------------------------------------------ */

void kw__ks_secret_free(char *s) { kw_secret_free(s); }

int kw__ks_secret_read(const struct kw_secret_cfg *s, const char *field, char **out,
                       char *err, size_t errlen) {
  return kw_secret_read(s, field, out, err, errlen);
}

char *kw__ks_header(const char *name, const char *prefix, const char *value) {
  size_t n;
  char *line;
  if (prefix == NULL)
    prefix = "";
  if (strpbrk(value, "\r\n") != NULL || strpbrk(prefix, "\r\n") != NULL)
    return NULL;
  n = strlen(name) + 2 + strlen(prefix) + strlen(value) + 1;
  if ((line = malloc(n)) == NULL)
    return NULL;
  snprintf(line, n, "%s: %s%s", name, prefix, value);
  return line;
}

/* ---- URLs and matching -------------------------------------------------------------- */

int kw__ks_append_escaped(char *buf, size_t len, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = strlen(buf), start = o;
  /* "." and ".." would be dot segments that URL normalisation removes: encode them. */
  bool dots = strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    bool plain = isalnum(c) || c == '-' || (c == '.' && !dots) || c == '_' || c == '~';
    if (o + (plain ? 1 : 3) + 1 > len) {
      buf[start] = '\0';
      return KW_ETOOLONG;
    }
    if (plain) {
      buf[o++] = (char)c;
    } else {
      buf[o++] = '%';
      buf[o++] = hex[c >> 4];
      buf[o++] = hex[c & 15];
    }
  }
  buf[o] = '\0';
  return 0;
}

int kw__ks_fmt(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= len ? KW_ETOOLONG : 0;
}

bool kw__ks_fp_equal(const struct kw_keystore_env *env, const char *value, const uint8_t *fp) {
  uint8_t got[KW_FP_LEN];
  if (value == NULL || value[0] == '\0')
    return false;
  kw_fingerprint_key(env->fpr, value, strlen(value), got);
  return CRYPTO_memcmp(got, fp, KW_FP_LEN) == 0;
}

bool kw__ks_prefix_match(const char *a, const char *b) {
  size_t na = a ? strlen(a) : 0, nb = b ? strlen(b) : 0;
  if (na == 0 || nb == 0)
    return false;
  return strncmp(a, b, na < nb ? na : nb) == 0;
}

json_t *kw__ks_json(const struct kw_http_resp *resp) {
  if (resp->status != 0 || resp->body == NULL)
    return NULL;
  return json_loadb(resp->body, resp->len, JSON_REJECT_DUPLICATES, NULL);
}

/* ---- one attempt -------------------------------------------------------------------- */

static bool in(long code, const unsigned *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((long)v[i] == code)
      return true;
  return false;
}

enum kw_revoke_outcome kw__ks_outcome(const struct kw_http_resp *resp, const unsigned *ok,
                                      size_t nok, const unsigned *gone, size_t ngone) {
  if (resp->status != 0)
    return KW_REVOKE_RETRY;
  if (in(resp->code, gone, ngone))
    return KW_REVOKE_GONE;
  if (nok > 0 ? in(resp->code, ok, nok) : resp->code >= 200 && resp->code <= 299)
    return KW_REVOKE_DONE;
  return KW_REVOKE_RETRY;
}

void kw__ks_revoke_detail(const struct kw_http_resp *resp, enum kw_revoke_outcome oc,
                          const char *done, const char *noun, const char *ref, char *buf,
                          size_t len) {
  char why[200];
  if (resp->status == KW_ECANCELED) {
    snprintf(buf, len, "canceled");
  } else if (oc == KW_REVOKE_DONE) {
    snprintf(buf, len, "%s %s %s", done, noun, ref);
  } else if (oc == KW_REVOKE_GONE) {
    snprintf(buf, len, "HTTP 404 for %s %s: already gone", noun, ref);
  } else {
    kw__ks_describe(resp, why, sizeof(why));
    snprintf(buf, len, "%s %s: %s", noun, ref, why);
  }
}

void kw__ks_describe(const struct kw_http_resp *resp, char *buf, size_t len) {
  if (resp->status != 0)
    snprintf(buf, len, "%s", resp->error ? resp->error : kw_strerror(resp->status));
  else if (resp->code == 401 || resp->code == 403)
    snprintf(buf, len, "HTTP %ld: the store refused keywatch's admin credential", resp->code);
  else
    snprintf(buf, len, "HTTP %ld", resp->code);
}

static void on_exchange(const struct kw_http_resp *resp, void *arg) {
  struct kw__ks_op *op = arg;
  char detail[DETAIL_BODY + 64] = "";
  const char *result;

  if (resp->status == -ETIMEDOUT)
    result = "timeout";
  else if (resp->status == KW_ECANCELED)
    result = "canceled";
  else if (resp->status != 0)
    result = "error";
  else if (in(resp->code, op->gone, op->ngone))
    result = "gone";
  else if (op->nok > 0 ? in(resp->code, op->ok, op->nok) : resp->code / 100 == 2)
    result = "ok";
  else if (resp->code == 401 || resp->code == 403)
    result = "refused";
  else
    result = "error";
  if (resp->status != 0) {
    snprintf(detail, sizeof(detail), "%s", resp->error ? resp->error : kw_strerror(resp->status));
  } else if (strcmp(result, "ok") != 0 && resp->len > 0) {
    /* A refusal's body says why; a success's body may hold a new key: never kept. */
    size_t n = resp->len < DETAIL_BODY ? resp->len : DETAIL_BODY;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)resp->body[i];
      detail[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    detail[n] = '\0';
  }
  struct kw_revocation_call c = {
      .store = op->store,
      .request = op->summary,
      .status = resp->status != 0 ? resp->status : (int)resp->code,
      .duration_us = resp->duration_us,
      .result = result,
      .detail = detail[0] ? detail : NULL,
  };
  if (resp->status != KW_ECANCELED)
    op->on_call(&c, op->arg);
  op->next(op, resp);
}

int kw__ks_send(struct kw__ks_op *op, const struct kw_http_req *req, kw__ks_next next,
                const char *summary, ...) {
  struct kw_http_req r = *req;
  va_list ap;
  va_start(ap, summary);
  vsnprintf(op->summary, sizeof(op->summary), summary, ap);
  va_end(ap);
  if (r.timeout_ms == 0)
    r.timeout_ms = op->timeout_ms;
  op->next = next;
  return kw_httpc_request(op->http, &r, on_exchange, op);
}

void kw__ks_finish(struct kw__ks_op *op, enum kw_revoke_outcome o, const char *ref,
                   const char *fmt, ...) {
  char detail[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  struct kw_revoke_result res = {.outcome = o, .store_ref = ref, .detail = detail};
  op->done(&res, op->arg);
}
