/* keyview.h — what the HTTP API shows of one key, and keys page by page: lookups by
 * display prefix or fingerprint, calls per hour, top endpoints and clients.
 * Thread: a kw_store's thread.
 */
#ifndef KW_KEYVIEW_H
#define KW_KEYVIEW_H

#include "call.h"
#include "store.h"

#include <stdint.h>

struct kw_key_info {
  int64_t id;
  uint8_t fp[KW_FP_LEN];
  const char *prefix, *name;
  int64_t calls, errors, first_us, last_us, endpoints, clients;
  const char *store, *group, *permission; /* from the inventory; NULL when none */
};

/* The one key whose fingerprint is k (32 hex) or whose display prefix starts with k.
 * Returns 0 (cb called once), KW_ENOTFOUND, KW_EINVAL (several keys match), KW_ESTORE. */
int kw_store_key_find(struct kw_store *st, const char *k,
                      void (*cb)(const struct kw_key_info *key, void *ctx), void *ctx);

/* Keys, most calls first, from position offset, at most limit. */
int kw_store_key_page(struct kw_store *st, int64_t offset, int64_t limit,
                      int (*cb)(const struct kw_key_info *key, void *ctx), void *ctx);

/* Calls and errors (status >= 400 or none) per hour of key_id since since_us (hours
 * with calls only, oldest first). */
int kw_store_key_hours(struct kw_store *st, int64_t key_id, int64_t since_us,
                       int (*cb)(int64_t hour_us, int64_t calls, int64_t errors, void *ctx),
                       void *ctx);

/* The key's endpoints (most calls first, at most limit). */
int kw_store_key_endpoints(struct kw_store *st, int64_t key_id, int64_t limit,
                           int (*cb)(const char *method, const char *tmpl, int64_t calls,
                                     int64_t errors, int64_t last_us, void *ctx),
                           void *ctx);

/* The key's client addresses (most calls first, at most limit). */
int kw_store_key_clients(struct kw_store *st, int64_t key_id, int64_t limit,
                         int (*cb)(const struct kw_addr *a, int64_t calls, int64_t last_us,
                                   void *ctx),
                         void *ctx);

/* Stored reviews, newest first. */
int kw_store_reviews(struct kw_store *st,
                     int (*cb)(int64_t id, int64_t created_us, int64_t since_us,
                               int64_t until_us, int64_t keys, int64_t findings, void *ctx),
                     void *ctx);

#endif
