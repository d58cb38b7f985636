/* keystore_int.h — what keystore.c shares with the adapters (keystore_*.c), inside
 * analyzer/ only.
 *
 * kw__ks_op is the start of every adapter's per-attempt state: it carries the callbacks
 * of the attempt and sends one HTTP exchange at a time, reporting each to on_call (the
 * audit) before the adapter's continuation sees the answer.
 */
#ifndef KW_KEYSTORE_INT_H
#define KW_KEYSTORE_INT_H

#include "httpc.h"
#include "keystore.h"

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>

/* The registry (one ops table per file). */
extern const struct kw_keystore_ops kw__keystore_metabase_ops;
extern const struct kw_keystore_ops kw__keystore_seatable_ops;
extern const struct kw_keystore_ops kw__keystore_kong_ops;
extern const struct kw_keystore_ops kw__keystore_http_ops;
extern const struct kw_keystore_ops kw__keystore_command_ops;

/* ---- secrets ---------------------------------------------------------------------- */

/* Reads the secret s names: the variable's value, or the file's content (the file must
 * be a regular file not readable or writable by group or others; at most 4 KiB; one
 * trailing newline is dropped).  Returns 0 and a new NUL-terminated buffer (free with
 * kw__ks_secret_free()), or KW_ECONFIG / -errno with "FIELD: problem" in err — never the
 * value. */
int kw__ks_secret_read(const struct kw_secret_cfg *s, const char *field, char **out,
                       char *err, size_t errlen);

/* Wipes and frees a secret (NULL is a no-op). */
void kw__ks_secret_free(char *s);

/* "Name: <prefix><value>" in a new buffer (free with kw__ks_secret_free()); NULL when out
 * of memory or when the value holds CR or LF. */
char *kw__ks_header(const char *name, const char *prefix, const char *value);

/* A copy of a store's base URL without its trailing slashes (paths are appended with a
 * leading one); NULL when out of memory. */
char *kw__ks_base(const char *url);

/* ---- URLs and matching -------------------------------------------------------------- */

/* Appends s to buf (of size len, holding a NUL-terminated string) percent-encoded as one
 * path segment or query value (RFC 3986 unreserved characters kept, except the dots of
 * a "." or ".." segment).  Returns 0, or
 * KW_ETOOLONG when it does not fit (buf is then unchanged). */
int kw__ks_append_escaped(char *buf, size_t len, const char *s);

/* Formats into buf; KW_ETOOLONG when truncated. */
int kw__ks_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Whether the raw key value (as a store lists it in clear) has fingerprint fp. */
bool kw__ks_fp_equal(const struct kw_keystore_env *env, const char *value, const uint8_t *fp);

/* Whether one of a, b is a start of the other and both are non-empty (a display prefix
 * may be shorter or longer than what a store shows). */
bool kw__ks_prefix_match(const char *a, const char *b);

/* Parses an answer body as JSON (NULL when it is not). */
json_t *kw__ks_json(const struct kw_http_resp *resp);

/* ---- one attempt --------------------------------------------------------------------- */

struct kw__ks_op;
typedef void (*kw__ks_next)(struct kw__ks_op *op, const struct kw_http_resp *resp);

struct kw__ks_op {
  const char *store;             /* the store's name (borrowed from the config) */
  struct kw_httpc *http;
  long timeout_ms;
  kw_keystore_call_cb on_call;
  kw_keystore_done_cb done;
  void *arg;
  kw__ks_next next;              /* continuation of the exchange in flight */
  char summary[256];             /* of the exchange in flight: no secret */
  const unsigned *ok, *gone;     /* status codes the audit calls "ok" / "gone" */
  size_t nok, ngone;
};

/* Sends req (copied); when it completes, reports it to op->on_call — result "ok" (a code
 * in op->ok, else any 2xx), "gone" (a code in op->gone), "refused" (401/403), "error" —
 * and then calls next(op, resp).  summary (a printf format) describes the request
 * without secrets.  Returns 0 or the error of kw_httpc_request() (no callback then). */
int kw__ks_send(struct kw__ks_op *op, const struct kw_http_req *req, kw__ks_next next,
                const char *summary, ...) __attribute__((format(printf, 4, 5)));

/* Calls op->done with the outcome, ref (may be NULL) and a formatted detail. */
void kw__ks_finish(struct kw__ks_op *op, enum kw_revoke_outcome o, const char *ref,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The outcome an answer means for a revoking call: 2xx or a code in ok → DONE, a code
 * in gone → GONE, anything else (transport error, 401/403, 5xx…) → RETRY. */
enum kw_revoke_outcome kw__ks_outcome(const struct kw_http_resp *resp, const unsigned *ok,
                                      size_t nok, const unsigned *gone, size_t ngone);

/* The detail of a revoking call's answer in buf: "canceled", "<done> <noun> <ref>",
 * "HTTP 404 for <noun> <ref>: already gone", or "<noun> <ref>: <what went wrong>". */
void kw__ks_revoke_detail(const struct kw_http_resp *resp, enum kw_revoke_outcome oc,
                          const char *done, const char *noun, const char *ref, char *buf,
                          size_t len);

/* A short description of a failed exchange for a detail line ("HTTP 503", "timed out"). */
void kw__ks_describe(const struct kw_http_resp *resp, char *buf, size_t len);

#endif
