/* store.h — the SQLite store: calls, keys, sources.
 *
 * One writer (the thread that ingests) and any number of read-only connections (CLI
 * queries, later the HTTP API), each its own kw_store.  WAL mode; statements prepared once
 * at open; calls are buffered into one open transaction that kw_store_commit() ends (group
 * commit: the caller decides when, by rows or time).  Dictionary tables (endpoints,
 * clients, user agents, hosts) keep rows compact; their ids are cached in memory.  Per-key
 * totals (calls, errors, bytes, first/last seen) are kept up to date at each commit so
 * `keywatch keys` never scans the calls; so are the calls per source and status class.
 *
 * Schema changes are migrations: user_version N → N+1, each idempotent, in store.c.
 * Thread: a kw_store belongs to the thread that opened it.
 */
#ifndef KW_STORE_H
#define KW_STORE_H

#include "call.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KW_STORE_SCHEMA 9

/* Status classes of the per-source rollup (table source_classes, /metrics):
 * 0 no answer seen (status 0), 1-5 the 1xx-5xx classes, 6 any other status (1-99,
 * 600-999: not HTTP, kept so that the classes of a source add up to its calls). */
#define KW_STATUS_CLASSES 7

static inline int kw_store_status_class(int status) {
  if (status == 0)
    return 0;
  return status >= 100 && status <= 599 ? status / 100 : 6;
}

enum kw_store_flags {
  KW_STORE_RDONLY = 1, /* open an existing database read-only */
};

struct kw_store;

/* Opens (creating and migrating unless KW_STORE_RDONLY) the database at path; a new file
 * is created 0600.  Returns 0 and a new store (free with kw_store_close()), or KW_ESTORE,
 * KW_ESCHEMA, KW_ENOTFOUND, KW_ENOMEM or -errno with a message in err. */
int kw_store_open(const char *path, int flags, struct kw_store **out, char *err,
                  size_t errlen);

/* Closes; an open batch that was not committed is rolled back.  NULL is a no-op.
 * Returns 0 or KW_ESTORE. */
int kw_store_close(struct kw_store *st);

/* Turns off SQLite's automatic checkpoints on this writer: the owner runs
 * kw_store_checkpoint() elsewhere (a worker thread), so that copying the WAL into the
 * database never stalls the writer's commits.  Returns 0 or KW_ESTORE. */
int kw_store_manual_checkpoints(struct kw_store *st);

/* Opens its own connection to path and runs a PASSIVE checkpoint (which never blocks the
 * writer or readers).  Thread: any — this is meant for a worker thread.  Returns 0 or
 * KW_ESTORE. */
int kw_store_checkpoint(const char *path);

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

/* Whether a batch is open (anything written since the last commit). */
bool kw_store_in_batch(const struct kw_store *st);

/* Calls buffered since the last commit. */
size_t kw_store_pending(const struct kw_store *st);

/* Commits the open batch with its key totals and source counters. */
int kw_store_commit(struct kw_store *st);

/* Names a key (from configuration or a key store): by fingerprint when fp is not NULL,
 * else every key whose display prefix equals prefix.  Returns the number of keys named. */
int kw_store_name_key(struct kw_store *st, const uint8_t *fp, const char *prefix,
                      const char *name);

/* ---- daemon state (each write joins the open batch, committed with its calls) ---- */

/* A read position in a file: see collector/tail.h. */
struct kw_store_pos {
  uint64_t dev, ino;
  int64_t offset;
  uint64_t hash;
  uint32_t hash_len;
};

/* The committed positions of a source (at most max), in *n. */
int kw_store_get_positions(struct kw_store *st, uint32_t source_id, struct kw_store_pos *out,
                           size_t max, size_t *n);

/* Replaces the positions of a source. */
int kw_store_set_positions(struct kw_store *st, uint32_t source_id,
                           const struct kw_store_pos *pos, size_t n);

/* Records data that was lost before it could be read (bytes -1: unknown). Borrows detail. */
int kw_store_add_gap(struct kw_store *st, uint32_t source_id, int64_t bytes,
                     const char *detail);

struct kw_source_status {
  const char *state;  /* "reading", "waiting", "listening", "error" … */
  int64_t backlog;    /* bytes not yet read */
  int64_t drops;      /* messages lost (UDP receive overflow), cumulative */
  double rate;        /* lines per second over the last interval */
  int64_t lag_p50_us, lag_p99_us; /* -1 unknown */
  const char *detail;
};

int kw_store_set_status(struct kw_store *st, uint32_t source_id,
                        const struct kw_source_status *ss);

/* The daemon's liveness row. Borrows config. */
int kw_store_heartbeat(struct kw_store *st, int64_t pid, int64_t started_us,
                       const char *config);

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
  int64_t before_us, before_id; /* paging: only calls before (ts, id); before_id 0: none */
  int64_t key_id;     /* one stored key by row id (instead of key: walks its index in
                       * time order, no sort); 0: none */
};

struct kw_call_row {
  int64_t ts_us;
  const char *prefix; /* NULL for anonymous */
  const uint8_t *fp;  /* NULL for anonymous */
  struct kw_addr client;
  const char *method, *path, *endpoint, *user_agent, *host, *source;
  int status;
  int64_t resp_bytes, req_bytes, latency_us; /* -1 unknown */
  int64_t id;         /* the call's row id (paging) */
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

struct kw_status_row {
  const char *name, *kind, *format;
  int64_t lines, calls, malformed, bytes;
  const char *state;  /* NULL: never run by the daemon */
  int64_t updated_us, backlog, drops;
  double rate;
  int64_t lag_p50_us, lag_p99_us; /* -1 unknown */
  const char *detail;
  int64_t gaps, gap_bytes;        /* gap_bytes counts only gaps of known size */
  int64_t offset;                 /* sum of the offsets of its open files; -1 none */
  int64_t files;                  /* files with a saved position */
};

struct kw_daemon_row {
  int64_t pid, started_us, heartbeat_us; /* 0 when no daemon ever ran */
  char config[1024];
};

/* The daemon's liveness row into *row (zeroed when none). */
int kw_store_daemon(struct kw_store *st, struct kw_daemon_row *row);

/* Calls cb for each source with its counters, status, gaps and positions. */
int kw_store_status(struct kw_store *st,
                    int (*cb)(const struct kw_status_row *row, void *ctx), void *ctx);

/* ---- verification of the hash chain (chain.h) ---------------------------------------- */

struct kw_verify {
  int64_t batches, calls;     /* links checked, calls covered */
  int64_t uncovered;          /* calls outside every link (before the chain existed, or
                                 inserted afterwards) */
  int64_t bad_batch;          /* first link that fails (0: none) */
  int64_t bad_first, bad_last; /* its call ids */
  int64_t bad_committed_us;
  const char *reason;         /* static text: why it fails */
  /* retention: the anchor the remaining links follow (anchor_batch 0: never pruned) */
  int64_t anchor_batch, pruned_calls, anchor_moved_us;
  bool has_head;              /* head is set: the hash of the last link (or the anchor) */
  uint8_t head[32];
};

/* Recomputes every link from the stored calls, starting from the anchor when older links
 * were pruned, and names the first that fails (bad_batch -1: no single link — the anchor
 * or calls outside every link).  Returns 0 (see v->bad_batch) or KW_ESTORE. */
int kw_store_verify(struct kw_store *st, struct kw_verify *v);

/* ---- retention ------------------------------------------------------------------------ */

struct kw_prune {
  int64_t batches, calls; /* links and calls removed */
  int64_t anchor_batch;   /* the anchor afterwards (0: nothing was ever pruned) */
  bool more;              /* stopped at max_calls with older links left */
  int64_t bad_batch;      /* a link that failed its check: nothing from it on is removed */
  const char *reason;     /* static text, when bad_batch */
};

/* Removes, oldest first, whole links of the hash chain whose calls are all older than
 * cutoff_us — each recomputed and found intact first, and never the newest link (the
 * chain keeps its head; call ids keep counting) — with their calls, their alerts'
 * references to them, and older calls stored before the chain existed; then moves the
 * chain's anchor to the last link removed and logs the prune (table prunes).  At most
 * max_calls calls (0: no limit; at least one link).  Aggregates (keys, rollups) are kept.
 * Joins the open batch: the caller commits.  Returns 0 or KW_ESTORE / KW_ENOMEM. */
int kw_store_prune(struct kw_store *st, int64_t cutoff_us, int64_t max_calls,
                   struct kw_prune *p);

/* ---- resource bounds ------------------------------------------------------------------ */

/* Adds n hits of the bound called name (README "Limits"), at now; joins the open batch. */
int kw_store_add_limit_hits(struct kw_store *st, const char *name, int64_t n);

/* Calls cb for each bound that was ever hit, by name. */
int kw_store_limit_hits(struct kw_store *st,
                        int (*cb)(const char *name, int64_t hits, int64_t last_hit_us,
                                  void *ctx),
                        void *ctx);

/* Fills s (free with kw_store_stats_free()); top_n endpoints. */
int kw_store_stats(struct kw_store *st, size_t top_n, struct kw_stats *s);
void kw_store_stats_free(struct kw_stats *s);

#endif
