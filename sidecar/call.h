/* call.h — the kw_call record: one API call, as every source produces it.
 *
 * A kw_call is the unit that flows collector → analyzer → store.  It never holds a raw
 * API key: by the time a kw_call exists, the key has become a fingerprint (HMAC-SHA256
 * truncated to 128 bits) and a short display prefix.
 *
 * Ownership: string members borrow memory from whoever filled the record (a parser's
 * line buffer or scratch space); they are valid until that producer is called again.
 * Consumers that keep a call beyond that copy what they need.
 * Thread: plain data, no locking.
 */
#ifndef KW_CALL_H
#define KW_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A borrowed byte string; not NUL-terminated. */
struct kw_str {
  const char *p;
  size_t n;
};

#define KW_STR_NULL ((struct kw_str){NULL, 0})

static inline struct kw_str kw_str_make(const char *p, size_t n) {
  return (struct kw_str){p, n};
}

/* A client address.  family is 0 (unknown), 4 or 6; IPv4 uses the first 4 bytes. */
struct kw_addr {
  uint8_t family;
  uint8_t a[16];
};

#define KW_FP_LEN 16     /* fingerprint bytes (128 bits of HMAC-SHA256) */
#define KW_PREFIX_MAX 16 /* longest display prefix */

struct kw_call {
  int64_t ts_us;                  /* µs since the epoch, UTC; 0 when the source had none */
  bool has_key;                   /* false: anonymous call */
  uint8_t fp[KW_FP_LEN];          /* key fingerprint, valid when has_key */
  char prefix[KW_PREFIX_MAX + 1]; /* display prefix ("mb_AbCd"), NUL-terminated */
  struct kw_addr client;
  struct kw_str method;
  struct kw_str path;     /* raw path, query secrets redacted */
  struct kw_str endpoint; /* normalised template: /api/card/{id}/query */
  bool has_query;
  int status;             /* HTTP status; 0 when no response was seen */
  int64_t req_bytes;      /* -1 when unknown */
  int64_t resp_bytes;     /* -1 when unknown */
  int64_t latency_us;     /* -1 when unknown */
  struct kw_str user_agent;
  struct kw_str host;
  uint32_t source_id;     /* store id of the source (file, socket, capture) */
};

/* Parses a textual IPv4/IPv6 address (optionally "[v6]" or with a ":port" on IPv4).
 * Returns 0, or KW_EPARSE leaving *out with family 0. Thread: any. */
int kw_addr_parse(const char *s, size_t n, struct kw_addr *out);

/* Formats addr into buf (at least 46 bytes); "" for family 0. Returns buf. */
const char *kw_addr_format(const struct kw_addr *addr, char *buf, size_t len);

#endif
