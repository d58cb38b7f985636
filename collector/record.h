/* record.h — kw_rec: one parsed log line, before key identity is applied.
 *
 * Every log-format parser (nginx log_format, JSON lines) fills a kw_rec; keyid.c then
 * turns it into a kw_call (fingerprint, redaction), so parsers never decide what a key is.
 *
 * Strings borrow from the input line or from the parser's scratch buffer (after unescaping)
 * and stay valid until the next call into the same parser.  Absent text fields are
 * {NULL, 0}; a "-" that nginx writes for an empty variable is reported as absent.
 * Thread: plain data.
 */
#ifndef KW_RECORD_H
#define KW_RECORD_H

#include "../sidecar/call.h"

#define KW_REC_MAX_HDRS 16 /* request headers a record can carry */

struct kw_hdr {
  struct kw_str name;  /* lower-case, '-' separated: "x-api-key", "authorization" */
  struct kw_str value;
};

struct kw_rec {
  int64_t ts_us;         /* -1 when absent */
  struct kw_str addr;    /* client address text (IPv4/IPv6, maybe with :port) */
  struct kw_str method;
  struct kw_str uri;     /* path with optional "?query", as sent (percent-encoded) */
  struct kw_str proto;   /* "HTTP/1.1" */
  struct kw_str host;
  struct kw_str user_agent;
  struct kw_str referer;
  struct kw_str key_id;  /* a key-store id of the credential (Kong), not a secret */
  struct kw_str key;     /* a field the format declares to be the raw key itself */
  int status;            /* 0 when absent */
  int64_t req_bytes;     /* -1 when absent */
  int64_t resp_bytes;    /* -1 when absent */
  int64_t latency_us;    /* -1 when absent */
  size_t nhdrs;
  struct kw_hdr hdrs[KW_REC_MAX_HDRS]; /* request headers the line carries */
};

/* Resets rec to "everything absent". */
static inline void kw_rec_clear(struct kw_rec *rec) {
  rec->ts_us = -1;
  rec->addr = rec->method = rec->uri = rec->proto = KW_STR_NULL;
  rec->host = rec->user_agent = rec->referer = rec->key_id = rec->key = KW_STR_NULL;
  rec->status = 0;
  rec->req_bytes = rec->resp_bytes = rec->latency_us = -1;
  rec->nhdrs = 0;
}

/* Appends a header; silently ignores headers past KW_REC_MAX_HDRS (callers count them
 * as a bound hit if they care).  name must already be lower-case. */
static inline void kw_rec_add_hdr(struct kw_rec *rec, struct kw_str name,
                                  struct kw_str value) {
  if (rec->nhdrs < KW_REC_MAX_HDRS)
    rec->hdrs[rec->nhdrs++] = (struct kw_hdr){name, value};
}

/* A log-format parser instance: {ops, ctx}, see format.h. */
struct kw_format_ops {
  const char *kind; /* "nginx", "json" */
  /* Parses one line (no trailing newline).  Returns 0 or KW_EPARSE; on error, if err is
   * not NULL, writes a short reason ("expected '\"' at column 42"). */
  int (*parse)(void *ctx, const char *line, size_t len, struct kw_rec *rec, char *err,
               size_t errlen);
  void (*destroy)(void *ctx);
};

#endif
