/* keyid.c — key identity and redaction (see keyid.h).
 *
 * Hot path: runs once per line.  Lookups are over a handful of configured names, so they
 * are linear scans with length checks first.  The raw key is copied only where it must be
 * decoded (Basic auth, percent-encoded query values) into a scratch buffer that is wiped
 * as soon as the fingerprint exists.
 */
#include "keyid.h"
#include "../sidecar/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TEXT_MAX (64 * 1024 + 16) /* a user agent is at most a line */
#define PATH_MAX_STORED 8192 /* longer paths are cut (and marked "…") before storage */

enum { SCHEME_BEARER = 1, SCHEME_TOKEN = 2, SCHEME_APIKEY = 4, SCHEME_BASIC = 8 };

struct kw_keyid {
  const struct kw_identity_cfg *cfg;
  const struct kw_fingerprint *fp;
  unsigned schemes;
  char keybuf[KW_KEY_MAX + 4]; /* decoded key; wiped after use */
  char path[PATH_MAX_STORED + 16]; /* redacted path */
  char dec[PATH_MAX_STORED + 16];  /* the path percent-decoded, to find an encoded key */
  uint16_t at[PATH_MAX_STORED + 17]; /* dec[i] came from path[at[i]] */
  char agent[TEXT_MAX];            /* user agent with the key removed, when it held it */
};

int kw_keyid_create(const struct kw_identity_cfg *cfg, const struct kw_fingerprint *fp,
                    struct kw_keyid **out) {
  struct kw_keyid *kid = calloc(1, sizeof(*kid));

  *out = NULL;
  if (kid == NULL)
    return KW_ENOMEM;
  kid->cfg = cfg;
  kid->fp = fp;
  for (unsigned i = 0; i < cfg->auth_schemes_count; i++) {
    const char *s = cfg->auth_schemes[i];
    kid->schemes |= strcmp(s, "bearer") == 0   ? SCHEME_BEARER
                    : strcmp(s, "token") == 0  ? SCHEME_TOKEN
                    : strcmp(s, "apikey") == 0 ? SCHEME_APIKEY
                    : strcmp(s, "basic") == 0  ? SCHEME_BASIC
                                               : 0;
  }
  *out = kid;
  return 0;
}

void kw_keyid_destroy(struct kw_keyid *kid) {
  if (kid == NULL)
    return;
  OPENSSL_cleanse(kid, sizeof(*kid));
  free(kid);
}

static int name_eq(struct kw_str a, const char *b) {
  size_t n = strlen(b);
  return a.n == n && strncasecmp(a.p, b, n) == 0;
}

static int hexv(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Trims spaces and tabs. */
static struct kw_str trim(struct kw_str s) {
  while (s.n > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
    s.p++;
    s.n--;
  }
  while (s.n > 0 && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
    s.n--;
  return s;
}

size_t kw_keyid_from_authorization(const struct kw_keyid *kid, const char *v, size_t n,
                                   char *out, size_t outlen) {
  struct kw_str s = trim(kw_str_make(v, n)), scheme, cred;
  const char *sp = s.n > 0 ? memchr(s.p, ' ', s.n) : NULL; /* v may be NULL when n is 0 */
  unsigned bit;

  if (sp == NULL)
    return 0;
  scheme = kw_str_make(s.p, (size_t)(sp - s.p));
  cred = trim(kw_str_make(sp + 1, s.n - scheme.n - 1));
  bit = name_eq(scheme, "bearer")   ? SCHEME_BEARER
        : name_eq(scheme, "token")  ? SCHEME_TOKEN
        : name_eq(scheme, "apikey") ? SCHEME_APIKEY
        : name_eq(scheme, "basic")  ? SCHEME_BASIC
                                    : 0;
  if (!(kid->schemes & bit) || cred.n == 0)
    return 0;
  if (bit == SCHEME_TOKEN && cred.n > 7 && strncasecmp(cred.p, "token=", 6) == 0) {
    /* Token token="abc", realm=… (Rails style) */
    cred.p += 6;
    cred.n -= 6;
    if (cred.p[0] == '"') {
      const char *q = memchr(cred.p + 1, '"', cred.n - 1);
      if (q == NULL)
        return 0;
      cred = kw_str_make(cred.p + 1, (size_t)(q - cred.p - 1));
    } else {
      const char *c = memchr(cred.p, ',', cred.n);
      if (c != NULL)
        cred.n = (size_t)(c - cred.p);
    }
  }
  if (bit == SCHEME_BASIC) {
    unsigned char dec[KW_KEY_MAX + 4];
    int len;
    const char *colon;
    if (cred.n % 4 != 0 || cred.n / 4 * 3 > KW_KEY_MAX)
      return 0;
    len = EVP_DecodeBlock(dec, (const unsigned char *)cred.p, (int)cred.n);
    if (len < 0)
      return 0;
    /* EVP_DecodeBlock counts padding as zero bytes. */
    if (cred.n >= 1 && cred.p[cred.n - 1] == '=')
      len--;
    if (cred.n >= 2 && cred.p[cred.n - 2] == '=')
      len--;
    colon = memchr(dec, ':', (size_t)len);
    size_t ulen = colon ? (size_t)(colon - (const char *)dec) : (size_t)len;
    if (ulen == 0 || ulen >= outlen || memchr(dec, '\0', ulen) != NULL) {
      OPENSSL_cleanse(dec, sizeof(dec));
      return 0;
    }
    memcpy(out, dec, ulen);
    OPENSSL_cleanse(dec, sizeof(dec));
    return ulen;
  }
  if (cred.n >= outlen)
    return 0;
  memcpy(out, cred.p, cred.n);
  return cred.n;
}

/* Percent-decodes s into out; returns the length or 0 if it does not fit. */
static size_t pct_decode(struct kw_str s, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < s.n; i++) {
    int hi, lo;
    if (o + 1 >= outlen)
      return 0;
    if (s.p[i] == '%' && i + 2 < s.n + 0 && (hi = hexv((unsigned char)s.p[i + 1])) >= 0 &&
        (lo = hexv((unsigned char)s.p[i + 2])) >= 0) {
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else if (s.p[i] == '+') {
      out[o++] = ' ';
    } else {
      out[o++] = s.p[i];
    }
  }
  return o;
}

static int in_list(struct kw_str name, char **list, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (name_eq(name, list[i]))
      return 1;
  return 0;
}

/* Finds the first query parameter of uri named in list; its raw value into *val. */
static int query_param(struct kw_str uri, char **list, unsigned n, struct kw_str *val) {
  const char *q = uri.n > 0 ? memchr(uri.p, '?', uri.n) : NULL;
  const char *end;

  if (q == NULL || n == 0)
    return 0;
  end = uri.p + uri.n; /* uri.p is not NULL here: a NULL uri has no '?' */
  for (const char *p = q + 1; p < end;) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    if (eq != NULL && in_list(kw_str_make(p, (size_t)(eq - p)), list, n)) {
      *val = kw_str_make(eq + 1, (size_t)(stop - eq - 1));
      return val->n > 0;
    }
    p = stop + 1;
  }
  return 0;
}

/* Finds the raw key of rec; returns its length in kid->keybuf (0: none).  *is_id tells
 * whether it is a key-store id ("id:<id>") rather than a secret. */
static size_t find_key(struct kw_keyid *kid, const struct kw_rec *rec, bool *is_id) {
  const struct kw_identity_cfg *cfg = kid->cfg;
  struct kw_str v;

  *is_id = false;
  if (rec->key.n > 0 && rec->key.n <= KW_KEY_MAX) {
    memcpy(kid->keybuf, rec->key.p, rec->key.n);
    return rec->key.n;
  }
  if (rec->key_id.n > 0 && rec->key_id.n + 3 <= KW_KEY_MAX) {
    memcpy(kid->keybuf, "id:", 3);
    memcpy(kid->keybuf + 3, rec->key_id.p, rec->key_id.n);
    *is_id = true;
    return rec->key_id.n + 3;
  }
  for (unsigned h = 0; h < cfg->headers_count; h++) {
    for (size_t i = 0; i < rec->nhdrs; i++) {
      if (name_eq(rec->hdrs[i].name, cfg->headers[h])) {
        v = trim(rec->hdrs[i].value);
        if (v.n > 0 && v.n <= KW_KEY_MAX) {
          memcpy(kid->keybuf, v.p, v.n);
          return v.n;
        }
      }
    }
  }
  if (kid->schemes) {
    for (size_t i = 0; i < rec->nhdrs; i++) {
      if (name_eq(rec->hdrs[i].name, "authorization")) {
        size_t n = kw_keyid_from_authorization(kid, rec->hdrs[i].value.p,
                                               rec->hdrs[i].value.n, kid->keybuf,
                                               KW_KEY_MAX + 1);
        if (n > 0)
          return n;
      }
    }
  }
  for (unsigned q = 0; q < cfg->query_params_count; q++) {
    for (size_t i = 0; i < rec->nhdrs; i++) {
      struct kw_str nm = rec->hdrs[i].name;
      if (nm.n > 4 && memcmp(nm.p, "arg:", 4) == 0 &&
          name_eq(kw_str_make(nm.p + 4, nm.n - 4), cfg->query_params[q]) &&
          rec->hdrs[i].value.n > 0) {
        size_t n = pct_decode(rec->hdrs[i].value, kid->keybuf, KW_KEY_MAX + 1);
        if (n > 0)
          return n;
      }
    }
  }
  if (query_param(rec->uri, cfg->query_params, cfg->query_params_count, &v))
    return pct_decode(v, kid->keybuf, KW_KEY_MAX + 1);
  return 0;
}

/* A key that is the marker itself is stored as the marker: nothing leaks. */
static bool is_marker(const char *key, size_t keylen) {
  return keylen == 8 && memcmp(key, "REDACTED", 8) == 0;
}

/* Replaces every percent-encoded occurrence of key in kid->path[0..o) — some or all of
 * its bytes written %XX, as in /api/keys/mb_abc%2Fdef%3D — with REDACTED; returns the new
 * length.  Linear: the path is decoded once with a map back to its offsets and searched
 * with memmem.  An encoded key is at least as long as REDACTED, so the path never grows. */
static size_t redact_encoded(struct kw_keyid *kid, size_t o, const char *key, size_t keylen) {
  char *out = kid->path, *dec = kid->dec;
  uint16_t *at = kid->at;
  size_t n = 0, d = 0, r = 0, w = 0;
  const char *hit;

  for (size_t i = 0; i < o; n++) {
    int h, l;
    at[n] = (uint16_t)i;
    if (out[i] == '%' && i + 2 < o && (h = hexv((unsigned char)out[i + 1])) >= 0 &&
        (l = hexv((unsigned char)out[i + 2])) >= 0) {
      dec[n] = (char)(h << 4 | l);
      i += 3;
    } else {
      dec[n] = out[i++];
    }
  }
  at[n] = (uint16_t)o;
  while (d < n && (hit = memmem(dec + d, n - d, key, keylen)) != NULL) {
    size_t s = (size_t)(hit - dec), a = at[s], b = at[s + keylen];
    memmove(out + w, out + r, a - r);
    w += a - r;
    memcpy(out + w, "REDACTED", 8);
    w += 8;
    r = b;
    d = s + keylen;
  }
  if (r == 0)
    return o;
  memmove(out + w, out + r, o - r);
  return w + (o - r);
}

/* Copies uri into kid->path with the values of redact_params and query_params (a key
 * carrier is never stored, even when redact_params omits it) redacted and, if key is not
 * empty, every occurrence of the key replaced.  A uri longer than PATH_MAX_STORED is cut,
 * never inside a redacted value, and marked with "…"; what a cut leaves of the key at the
 * end goes too. */
static struct kw_str redact_path(struct kw_keyid *kid, struct kw_str uri, const char *key,
                                 size_t keylen) {
  const struct kw_identity_cfg *cfg = kid->cfg;
  const char *end, *q;
  char *out = kid->path;
  size_t o = 0, cap = PATH_MAX_STORED;
  bool cut = false;

  if (uri.n == 0) /* uri.p may be NULL */
    return kw_str_make(out, 0);
  end = uri.p + uri.n;
  q = memchr(uri.p, '?', uri.n);
  size_t plen = q ? (size_t)(q - uri.p) : uri.n;
  if (plen > cap) {
    plen = cap;
    cut = true;
  }
  memcpy(out, uri.p, plen);
  o = plen;
  if (q != NULL) {
    for (const char *p = q; p < end && !cut;) {
      const char *amp = memchr(p + 1, '&', (size_t)(end - p - 1));
      const char *stop = amp ? amp : end;
      const char *name = p + 1;
      const char *eq = memchr(name, '=', (size_t)(stop - name));
      struct kw_str nm = kw_str_make(name, eq ? (size_t)(eq - name) : 0);
      size_t take;
      if (o >= cap) {
        cut = true;
      } else if (eq != NULL &&
                 (in_list(nm, cfg->redact_params, cfg->redact_params_count) ||
                  in_list(nm, cfg->query_params, cfg->query_params_count))) {
        take = (size_t)(eq + 1 - p);
        if (o + take + 8 > cap) {
          cut = true;
        } else {
          memcpy(out + o, p, take);
          o += take;
          memcpy(out + o, "REDACTED", 8);
          o += 8;
        }
      } else {
        take = (size_t)(stop - p);
        if (o + take > cap) {
          take = cap - o;
          cut = true;
        }
        memcpy(out + o, p, take);
        o += take;
      }
      p = stop;
    }
  }
  /* The key anywhere else in the path (as a path segment, an unlisted parameter…).  The
   * search resumes after each replacement: a key that reads "REDACTED" must end. */
  if (keylen >= 8) {
    size_t from = 0;
    char *hit;
    while ((hit = memmem(out + from, o - from, key, keylen)) != NULL) {
      memcpy(hit, "REDACTED", 8);
      memmove(hit + 8, hit + keylen, o - (size_t)(hit - out) - keylen);
      o -= keylen - 8;
      from = (size_t)(hit - out) + 8;
    }
    if (memchr(out, '%', o) != NULL)
      o = redact_encoded(kid, o, key, keylen);
    /* A cut through the key leaves its start at the end: drop it (at most keylen - 1
     * candidates, each one memcmp, and only on cut paths). */
    for (size_t k = keylen - 1 < o ? keylen - 1 : o; cut && k > 0; k--) {
      if (out[o - k] == key[0] && memcmp(out + o - k, key, k) == 0) {
        o -= k;
        break;
      }
    }
  }
  if (cut) {
    memcpy(out + o, "\xe2\x80\xa6", 3); /* room: path holds PATH_MAX_STORED + 16 */
    o += 3;
  }
  /* A key built around the marker ("=REDACTE") can re-form across a replacement, raw or
   * percent-encoded: then nothing of the path is kept.  (redact_encoded() changes the
   * length exactly when it finds an encoded key: an encoded span is longer than 8.) */
  if (keylen >= 8 && !is_marker(key, keylen) && o >= keylen &&
      (memmem(out, o, key, keylen) != NULL ||
       (memchr(out, '%', o) != NULL && redact_encoded(kid, o, key, keylen) != o))) {
    memcpy(out, "REDACTED", 8);
    o = 8;
  }
  return kw_str_make(out, o);
}

/* s with every occurrence of key replaced by REDACTED (copied into buf only on a hit). */
static struct kw_str redact_text(struct kw_str s, const char *key, size_t keylen, char *buf,
                                 size_t cap) {
  size_t o = 0, i = 0;
  const char *hit;

  if (keylen < 8 || s.n < keylen || s.n >= cap ||
      (hit = memmem(s.p, s.n, key, keylen)) == NULL)
    return s;
  while (hit != NULL) {
    size_t before = (size_t)(hit - (s.p + i));
    memcpy(buf + o, s.p + i, before);
    o += before;
    memcpy(buf + o, "REDACTED", 8);
    o += 8;
    i += before + keylen;
    hit = memmem(s.p + i, s.n - i, key, keylen);
  }
  memcpy(buf + o, s.p + i, s.n - i);
  o += s.n - i;
  if (!is_marker(key, keylen) && memmem(buf, o, key, keylen) != NULL) { /* re-formed */
    memcpy(buf, "REDACTED", 8);
    o = 8;
  }
  return kw_str_make(buf, o);
}

/* The client's address: the first of a list ("a, b" from X-Forwarded-For). */
static struct kw_str first_addr(struct kw_str a) {
  const char *comma = a.n ? memchr(a.p, ',', a.n) : NULL;
  if (comma != NULL)
    a.n = (size_t)(comma - a.p);
  while (a.n > 0 && a.p[a.n - 1] == ' ')
    a.n--;
  return a;
}

int kw_keyid_apply(struct kw_keyid *kid, const struct kw_rec *rec, struct kw_call *call) {
  bool is_id;
  size_t keylen = find_key(kid, rec, &is_id);

  call->ts_us = rec->ts_us > 0 ? rec->ts_us : 0;
  call->has_key = keylen > 0;
  if (keylen > 0) {
    kw_fingerprint_key(kid->fp, kid->keybuf, keylen, call->fp);
    if (is_id)
      kw_fingerprint_prefix(kid->keybuf + 3, keylen - 3, kid->cfg->prefix_length * 4,
                            call->prefix); /* ids are not secret: show more */
    else
      kw_fingerprint_prefix(kid->keybuf, keylen, kid->cfg->prefix_length, call->prefix);
  } else {
    memset(call->fp, 0, sizeof(call->fp));
    call->prefix[0] = '\0';
  }
  struct kw_str addr = first_addr(rec->addr);
  if (addr.n == 0 || kw_addr_parse(addr.p, addr.n, &call->client) != 0)
    memset(&call->client, 0, sizeof(call->client));
  call->method = rec->method;
  call->path = redact_path(kid, rec->uri, kid->keybuf, keylen);
  call->has_query = memchr(rec->uri.p ? rec->uri.p : "", '?', rec->uri.n) != NULL;
  call->status = rec->status;
  call->req_bytes = rec->req_bytes;
  call->resp_bytes = rec->resp_bytes;
  call->latency_us = rec->latency_us;
  /* A client that puts its key in its User-Agent must not get it stored there. */
  call->user_agent = redact_text(rec->user_agent, kid->keybuf, keylen, kid->agent,
                                 sizeof(kid->agent));
  call->host = rec->host;
  if (keylen > 0)
    OPENSSL_cleanse(kid->keybuf, keylen);
  return keylen > 0;
}
