/* usage.h — what permission reviews read from the store: per key, the endpoints it called
 * in a period (from the daily rollups, key_endpoint_days, never the raw calls), what its
 * key store says of it, and the reviews made before.
 *
 * Periods are whole UTC days: a period [since, until) covers the days from since's day to
 * until's day, both included (a review "over the last 30 days" is 31 calendar days at
 * most).  Keys a key store lists but that were never seen in traffic come too (has_fp
 * false, no endpoints).
 * Thread: a kw_store's thread (reviews run on a read-only connection of their own).
 */
#ifndef KW_USAGE_H
#define KW_USAGE_H

#include "call.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct kw_usage_endpoint {
  const char *method, *template;
  int64_t calls, ok, denied; /* ok: 2xx/3xx; denied: 401/403 */
  int64_t first_us, last_us;
};

struct kw_key_usage {
  bool has_fp;                     /* false: only known from a key store's listing */
  uint8_t fp[KW_FP_LEN];
  const char *prefix, *name;
  const char *store, *store_ref, *group, *permission; /* NULL when no store lists it */
  bool own;                        /* keywatch's own admin credential at that store */
  int64_t created_us;              /* at the store (0: unknown) */
  int64_t first_us, last_us;       /* all-time traffic (0: never) */
  int64_t last_before_us;          /* last call before the period (0: none) */
  int64_t first_in_us;             /* first call in the period (0: none) */
  int64_t clients;                 /* distinct client addresses used in the period */
  const struct kw_usage_endpoint *endpoints;
  size_t nendpoints;
};

/* Calls cb once per key (seen in traffic, or listed by a key store), in no particular
 * order; key: a display-prefix start to restrict to (NULL: all).  Strings valid during
 * cb.  cb returns nonzero to stop.  Returns 0, KW_ENOMEM or KW_ESTORE. */
int kw_store_usage(struct kw_store *st, int64_t since_us, int64_t until_us, const char *key,
                   int (*cb)(const struct kw_key_usage *k, void *ctx), void *ctx);

/* Stores a review's JSON document; *id receives its id.  Commits at once. */
int kw_store_review_save(struct kw_store *st, int64_t created_us, int64_t since_us,
                         int64_t until_us, int64_t keys, int64_t findings, const char *doc,
                         int64_t *id);

/* The latest stored review made before before_us (0: any), or at exactly id when id > 0:
 * its document in a new buffer (free()) and when it was made.  KW_ENOTFOUND when none. */
int kw_store_review_load(struct kw_store *st, int64_t id, int64_t before_us, char **doc,
                         int64_t *created_us);

#endif
