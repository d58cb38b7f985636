/* store.h — the SQLite store: calls, keys, sources.
 *
 * One writer (the thread that ingests) and any number of read-only connections (CLI
 * queries, later the HTTP API), each its own kw_store.  WAL mode; statements prepared once
 * at open; calls are buffered into one open transaction that kw_store_commit() ends (group
 * commit: the caller decides when, by rows or time).  Dictionary tables (endpoints,
 * clients, user agents, hosts) keep rows compact; their ids are cached in memory.  Per-key
 * totals (calls, errors, bytes, first/last seen) are kept up to date at each commit so
 * `keywatch keys` never scans the calls.
 *
 * Schema changes are migrations: user_version N → N+1, each idempotent, in store.c.
 * Thread: a kw_store belongs to the thread that opened it.
 */
#ifndef KW_STORE_H
#define KW_STORE_H

#include "call.h"

#include <stddef.h>
#include <stdint.h>

#define KW_STORE_SCHEMA 1

enum kw_store_flags {
  KW_STORE_RDONLY = 1, /* open an existing database read-only */
};

struct kw_store;

/* Opens (creating and migrating unless KW_STORE_RDONLY) the database at path; a new file
 * is created 0600.  Returns 0 and a new store (free with kw_store_close()), or KW_ESTORE,
 * KW_ESCHEMA or KW_ENOTFOUND with a message in err. */
int kw_store_open(const char *path, int flags, struct kw_store **out, char *err,
                  size_t errlen);

/* Commits anything pending, closes; NULL is a no-op. Returns 0 or KW_ESTORE. */
int kw_store_close(struct kw_store *st);

/* Last SQLite error text of st (for messages). */
const char *kw_store_errmsg(const struct kw_store *st);

/* Finds or creates the source named name (a file path, "stdin", a socket); sets *id. */
int kw_store_source(struct kw_store *st, const char *name, const char *kind,
                    const char *format, uint32_t *id);

/* Adds one call to the open batch (opening one if needed).  Borrows call. */
int kw_store_add_call(struct kw_store *st, const struct kw_call *call);

/* Adds line counters to a source, committed with the batch. */
int kw_store_add_lines(struct kw_store *st, uint32_t source_id, int64_t lines,
                       int64_t malformed, int64_t bytes);

/* Calls buffered since the last commit. */
size_t kw_store_pending(const struct kw_store *st);

/* Commits the open batch with its key totals and source counters. */
int kw_store_commit(struct kw_store *st);

/* Names a key (from configuration or a key store): by fingerprint when fp is not NULL,
 * else every key whose display prefix equals prefix.  Returns the number of keys named. */
int kw_store_name_key(struct kw_store *st, const uint8_t *fp, const char *prefix,
                      const char *name);

/* ---- queries ---------------------------------------------------------------------- */

struct kw_key_row {
  uint8_t fp[KW_FP_LEN];
  const char *prefix;
  const char *name; /* NULL when unnamed */
  int64_t calls, errors, bytes;
  int64_t first_us, last_us;
  int64_t endpoints, clients; /* distinct */
};

/* Calls cb for each key, most calls first; the anonymous calls, if any, come as one row
 * with prefix NULL.  cb returns nonzero to stop. Strings valid during cb only. */
int kw_store_keys(struct kw_store *st,
                  int (*cb)(const struct kw_key_row *row, void *ctx), void *ctx);

struct kw_calls_query {
  const char *key;    /* display prefix (leading match) or 32-hex fingerprint; NULL: all */
  int anonymous_only; /* only calls without a key */
  int64_t since_us, until_us; /* 0: unbounded */
  int64_t limit;      /* 0: unlimited */
};

struct kw_call_row {
  int64_t ts_us;
  const char *prefix; /* NULL for anonymous */
  const uint8_t *fp;  /* NULL for anonymous */
  struct kw_addr client;
  const char *method, *path, *endpoint, *user_agent, *host, *source;
  int status;
  int64_t resp_bytes, req_bytes, latency_us; /* -1 unknown */
};

/* Calls cb for each matching call in time order (oldest first, the newest `limit` when
 * limited). */
int kw_store_calls(struct kw_store *st, const struct kw_calls_query *q,
                   int (*cb)(const struct kw_call_row *row, void *ctx), void *ctx);

struct kw_count {
  char *label; /* "200", "GET", "GET /api/card/{id}" */
  int64_t n;
};

struct kw_stats {
  int64_t calls, keys, clients, bytes, malformed, lines, anonymous;
  int64_t first_us, last_us;
  struct kw_count *by_status, *by_method, *top_endpoints;
  size_t n_status, n_method, n_endpoints;
};

/* Fills s (free with kw_store_stats_free()); top_n endpoints. */
int kw_store_stats(struct kw_store *st, size_t top_n, struct kw_stats *s);
void kw_store_stats_free(struct kw_stats *s);

#endif
