/* chain.c — canonical encoding and SHA-256 of the audit hash chain (see chain.h).
 *
 * Encoding of one call (little-endian integers, length-prefixed strings):
 *   i64 id, i64 ts, u8 has_key, [16] fp (zeros when anonymous), u8 family, [16] address,
 *   str method, str endpoint, str path, i32 status, i64 req, i64 resp, i64 latency,
 *   str user_agent, str host, u32 source, u8 flags;     str = u32 length + bytes.
 * The encoding is versioned by the migration that introduced the chain: changing it
 * needs a new one.
 */
#include "chain.h"
#include "err.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct kw_chain {
  EVP_MD_CTX *md;
};

int kw_chain_create(struct kw_chain **out) {
  struct kw_chain *c = calloc(1, sizeof(*c));
  *out = NULL;
  if (c == NULL || (c->md = EVP_MD_CTX_new()) == NULL) {
    free(c);
    return KW_ENOMEM;
  }
  *out = c;
  return 0;
}

void kw_chain_destroy(struct kw_chain *c) {
  if (c == NULL)
    return;
  EVP_MD_CTX_free(c->md);
  free(c);
}

int kw_chain_begin(struct kw_chain *c, const uint8_t *prev) {
  if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1 ||
      EVP_DigestUpdate(c->md, prev, KW_CHAIN_HASH) != 1)
    return KW_ENOMEM;
  return 0;
}

/* The row is gathered into a buffer and hashed with as few digest calls as possible (one
 * per call for the common short row: the EVP call overhead dominates small updates). */
struct enc {
  EVP_MD_CTX *md;
  uint8_t buf[1024];
  size_t n;
  int err;
};

static void flush(struct enc *e) {
  if (e->n > 0 && EVP_DigestUpdate(e->md, e->buf, e->n) != 1)
    e->err = KW_ENOMEM;
  e->n = 0;
}

static void put(struct enc *e, const void *p, size_t n) {
  if (e->n + n > sizeof(e->buf)) {
    flush(e);
    if (n > sizeof(e->buf)) {
      if (EVP_DigestUpdate(e->md, p, n) != 1)
        e->err = KW_ENOMEM;
      return;
    }
  }
  memcpy(e->buf + e->n, p, n);
  e->n += n;
}

static void put_i64(struct enc *e, int64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)((uint64_t)v >> (8 * i));
  put(e, b, 8);
}

static void put_u32(struct enc *e, uint32_t v) {
  uint8_t b[4];
  for (int i = 0; i < 4; i++)
    b[i] = (uint8_t)(v >> (8 * i));
  put(e, b, 4);
}

static void put_str(struct enc *e, struct kw_str s) {
  put_u32(e, (uint32_t)s.n);
  if (s.n > 0)
    put(e, s.p, s.n);
}

int kw_chain_add(struct kw_chain *c, const struct kw_chain_row *r) {
  static const uint8_t zeros[KW_FP_LEN];
  struct enc e = {.md = c->md};
  uint8_t b;

  put_i64(&e, r->id);
  put_i64(&e, r->ts_us);
  b = r->fp != NULL;
  put(&e, &b, 1);
  put(&e, r->fp != NULL ? r->fp : zeros, KW_FP_LEN);
  put(&e, &r->client.family, 1);
  put(&e, r->client.a, 16);
  put_str(&e, r->method);
  put_str(&e, r->endpoint);
  put_str(&e, r->path);
  put_u32(&e, (uint32_t)r->status);
  put_i64(&e, r->req_bytes);
  put_i64(&e, r->resp_bytes);
  put_i64(&e, r->latency_us);
  put_str(&e, r->user_agent);
  put_str(&e, r->host);
  put_u32(&e, r->source_id);
  b = (uint8_t)r->flags;
  put(&e, &b, 1);
  flush(&e);
  return e.err;
}

int kw_chain_end(struct kw_chain *c, uint8_t *out) {
  unsigned int n = 0;
  return EVP_DigestFinal_ex(c->md, out, &n) == 1 && n == KW_CHAIN_HASH ? 0 : KW_ENOMEM;
}
