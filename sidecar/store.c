/* store.c — SQLite store (see store.h).
 *
 * Write path, per call: four dictionary lookups in memory (endpoint, client, agent, host;
 * a miss costs one upsert), one key lookup by fingerprint, a row for calls (queued: one
 * INSERT stores CALL_ROWS of them; the hash chain gets each with the id SQLite will give
 * it), and an in-memory update of the batch aggregates (per key × endpoint × day; per
 * key × hour; per key × client; per source, with its calls by status class).
 * kw_store_commit() sums the per-key and per key × endpoint rows from the first two,
 * writes the aggregates with one upsert per distinct row and commits.
 *
 * Invariants:
 *  - st->in_tx is true exactly while a transaction opened by this store is open;
 *  - every id cached in a dict exists in the database (dicts are cleared on rollback);
 *  - each call is stored under the id its chain link hashed, or the batch fails
 *    (flush_calls() checks it; see next_call in struct kw_store);
 *  - keys.calls == count(calls of that key) after each commit (tests check it);
 *  - sum(source_classes.calls of a source) == count(calls of that source) after each
 *    commit (test_metrics checks it).
 */
#include "store.h"
#include "dict.h"
#include "err.h"
#include "fingerprint.h"
#include "chain.h"
#include "store_int.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DICT_MAX 1000000 /* cached ids per dictionary before the cache is forgotten */
#define DAY_US (86400LL * 1000000) /* rollups per UTC day */
#define HOUR_US (3600LL * 1000000)
#define KW_ENDPOINT_KEY_MAX 320 /* "METHOD template" as a cache key */
#define CALL_ROWS 32  /* calls per multi-row INSERT (CALL_ROWS * CALL_COLS bound parameters) */
#define CALL_COLS 13

/* Migrations: entry i moves the schema from version i to i + 1. */
static const char *const migrations[] = {
    /* 0 → 1: calls, keys, sources and dictionaries */
    "CREATE TABLE IF NOT EXISTS sources("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    "  format TEXT, created_us INTEGER NOT NULL,"
    "  lines INTEGER NOT NULL DEFAULT 0, malformed INTEGER NOT NULL DEFAULT 0,"
    "  bytes INTEGER NOT NULL DEFAULT 0, calls INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS keys("
    "  id INTEGER PRIMARY KEY, fingerprint BLOB NOT NULL UNIQUE, prefix TEXT NOT NULL,"
    "  name TEXT, calls INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,"
    "  bytes INTEGER NOT NULL DEFAULT 0, first_seen INTEGER, last_seen INTEGER);"
    "CREATE INDEX IF NOT EXISTS keys_prefix ON keys(prefix);"
    "CREATE TABLE IF NOT EXISTS endpoints("
    "  id INTEGER PRIMARY KEY, method TEXT NOT NULL, template TEXT NOT NULL,"
    "  UNIQUE(method, template));"
    "CREATE TABLE IF NOT EXISTS clients(id INTEGER PRIMARY KEY, addr BLOB NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS agents(id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS hosts(id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS calls("
    "  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key_id INTEGER, client_id INTEGER,"
    "  endpoint_id INTEGER NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,"
    "  req_bytes INTEGER, resp_bytes INTEGER, latency_us INTEGER, agent_id INTEGER,"
    "  host_id INTEGER, source_id INTEGER NOT NULL, flags INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS calls_key_ts ON calls(key_id, ts);"
    "CREATE TABLE IF NOT EXISTS key_endpoints("
    "  key_id INTEGER NOT NULL, endpoint_id INTEGER NOT NULL, calls INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL, first_seen INTEGER, last_seen INTEGER,"
    "  PRIMARY KEY(key_id, endpoint_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS key_clients("
    "  key_id INTEGER NOT NULL, client_id INTEGER NOT NULL, calls INTEGER NOT NULL,"
    "  first_seen INTEGER, last_seen INTEGER,"
    "  PRIMARY KEY(key_id, client_id)) WITHOUT ROWID;",
    /* 1 → 2: the daemon: read positions (exactly once), gaps, live source status */
    "CREATE TABLE IF NOT EXISTS positions("
    "  source_id INTEGER NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
    "  offset INTEGER NOT NULL, hash INTEGER NOT NULL, hash_len INTEGER NOT NULL,"
    "  PRIMARY KEY(source_id, dev, ino)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS gaps("
    "  id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL, ts INTEGER NOT NULL,"
    "  bytes INTEGER, detail TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS source_status("
    "  source_id INTEGER PRIMARY KEY, state TEXT NOT NULL, updated INTEGER NOT NULL,"
    "  backlog INTEGER NOT NULL DEFAULT 0, drops INTEGER NOT NULL DEFAULT 0,"
    "  rate REAL NOT NULL DEFAULT 0, lag_p50_us INTEGER, lag_p99_us INTEGER,"
    "  detail TEXT);"
    "CREATE TABLE IF NOT EXISTS daemon("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL,"
    "  started INTEGER NOT NULL, heartbeat INTEGER NOT NULL, config TEXT);",
    /* 2 → 3: the analyzer: alerts (grouped per rule and key), the calls that made them,
     * the durable outbox for sinks, per-key baselines, recorded response decisions */
    "CREATE TABLE IF NOT EXISTS alerts("
    "  id INTEGER PRIMARY KEY, rule TEXT NOT NULL, type TEXT NOT NULL,"
    "  severity INTEGER NOT NULL, action TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'open',"
    "  key_id INTEGER, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    "  count INTEGER NOT NULL DEFAULT 1, summary TEXT NOT NULL, details TEXT NOT NULL,"
    "  created INTEGER NOT NULL, updated INTEGER NOT NULL,"
    "  state_by TEXT, state_at INTEGER, note TEXT);"
    "CREATE INDEX IF NOT EXISTS alerts_rule_key ON alerts(rule, key_id, last_seen);"
    "CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, last_seen);"
    "CREATE TABLE IF NOT EXISTS alert_calls("
    "  alert_id INTEGER NOT NULL, call_id INTEGER NOT NULL,"
    "  PRIMARY KEY(alert_id, call_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS outbox("
    "  id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, sink TEXT NOT NULL,"
    "  event TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_try INTEGER NOT NULL, last_error TEXT,"
    "  delivered INTEGER);"
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, next_try);"
    "CREATE TABLE IF NOT EXISTS baselines("
    "  key_id INTEGER PRIMARY KEY, data BLOB NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS decisions("
    "  id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, key_id INTEGER,"
    "  action TEXT NOT NULL, decided INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'recorded', detail TEXT);",
    /* 3 → 4: the audit hash chain (chain.h): one link per committed batch of calls */
    "CREATE TABLE IF NOT EXISTS chain("
    "  batch INTEGER PRIMARY KEY, first_call INTEGER NOT NULL, last_call INTEGER NOT NULL,"
    "  calls INTEGER NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL,"
    "  committed INTEGER NOT NULL);",
    /* 4 → 5: the responder (revocations.h): the durable revocation queue with its
     * audit of every key-store call, and the key stores' inventory.  Decisions recorded
     * before the responder existed are kept, as never carried out. */
    "CREATE TABLE IF NOT EXISTS revocations("
    "  id INTEGER PRIMARY KEY, alert_id INTEGER, key_id INTEGER, rule TEXT,"
    "  severity INTEGER NOT NULL DEFAULT 4, origin TEXT NOT NULL, decided_by TEXT NOT NULL,"
    "  store TEXT, reason TEXT, decided INTEGER NOT NULL, event_ts INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'decided', dry_run INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_try INTEGER, give_up_at INTEGER,"
    "  store_ref TEXT, result TEXT, updated INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS revocations_state ON revocations(state, next_try);"
    "CREATE INDEX IF NOT EXISTS revocations_key ON revocations(key_id, decided);"
    "CREATE TABLE IF NOT EXISTS revocation_calls("
    "  id INTEGER PRIMARY KEY, revocation_id INTEGER NOT NULL, ts INTEGER NOT NULL,"
    "  store TEXT NOT NULL, request TEXT NOT NULL, status INTEGER,"
    "  duration_us INTEGER, result TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS revocation_calls_rev ON revocation_calls(revocation_id);"
    "CREATE TABLE IF NOT EXISTS key_inventory("
    "  store TEXT NOT NULL, ref TEXT NOT NULL, name TEXT, grp TEXT, created TEXT,"
    "  prefix TEXT, key_id INTEGER, permission TEXT, synced INTEGER NOT NULL,"
    "  gone INTEGER, own INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(store, ref)) WITHOUT ROWID;"
    "INSERT INTO revocations(alert_id, key_id, rule, severity, origin, decided_by, reason,"
    "  decided, event_ts, state, result, updated)"
    "  SELECT d.alert_id, d.key_id, a.rule, coalesce(a.severity, 4), 'rule',"
    "  'rule:' || coalesce(a.rule, '?'), d.detail, d.decided,"
    "  coalesce(a.first_seen, d.decided), 'expired',"
    "  'recorded before keywatch had a responder; never carried out', d.decided"
    "  FROM decisions d LEFT JOIN alerts a ON a.id = d.alert_id;"
    "DROP TABLE IF EXISTS decisions;",
    /* 5 → 6: rollups for permission reviews — per key, endpoint and UTC day: calls,
     * answered ok (2xx/3xx), denied (401/403), first and last call; filled from the calls
     * already stored — and the reviews made (their JSON documents). */
    "CREATE TABLE IF NOT EXISTS key_endpoint_days("
    "  key_id INTEGER NOT NULL, day INTEGER NOT NULL, endpoint_id INTEGER NOT NULL,"
    "  calls INTEGER NOT NULL, ok INTEGER NOT NULL, denied INTEGER NOT NULL,"
    "  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    "  PRIMARY KEY(key_id, day, endpoint_id)) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO key_endpoint_days"
    "  SELECT key_id, ts / 86400000000, endpoint_id, count(*),"
    "  sum(status >= 200 AND status < 400), sum(status IN (401, 403)), min(ts), max(ts)"
    "  FROM calls WHERE key_id IS NOT NULL GROUP BY key_id, ts / 86400000000, endpoint_id;"
    "CREATE INDEX IF NOT EXISTS key_inventory_prefix ON key_inventory(prefix);"
    "CREATE INDEX IF NOT EXISTS key_inventory_key ON key_inventory(key_id);"
    "CREATE TABLE IF NOT EXISTS reviews("
    "  id INTEGER PRIMARY KEY, created INTEGER NOT NULL, since INTEGER NOT NULL,"
    "  until INTEGER NOT NULL, keys INTEGER NOT NULL, findings INTEGER NOT NULL,"
    "  doc TEXT NOT NULL);",
    /* 6 → 7: calls per source and status class (kw_store_status_class(): 0 no answer,
     * 1-5 for 1xx-5xx, 6 any other status) for /metrics, filled from the calls stored.
     * The CASE must stay the same mapping as kw_store_status_class(). */
    "CREATE TABLE IF NOT EXISTS source_classes("
    "  source_id INTEGER NOT NULL, class INTEGER NOT NULL, calls INTEGER NOT NULL,"
    "  PRIMARY KEY(source_id, class)) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO source_classes"
    "  SELECT source_id, CASE WHEN status = 0 THEN 0"
    "  WHEN status BETWEEN 100 AND 599 THEN status / 100 ELSE 6 END AS class, count(*)"
    "  FROM calls GROUP BY source_id, class;",
    /* 7 → 8: calls and errors (status >= 400 or none) per key and hour, for the
     * dashboard's key page: a key with millions of calls is charted from its hours. */
    "CREATE TABLE IF NOT EXISTS key_hours("
    "  key_id INTEGER NOT NULL, hour INTEGER NOT NULL, calls INTEGER NOT NULL,"
    "  errors INTEGER NOT NULL, PRIMARY KEY(key_id, hour)) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO key_hours SELECT key_id, ts / 3600000000, count(*),"
    "  sum(status >= 400 OR status = 0) FROM calls WHERE key_id IS NOT NULL"
    "  GROUP BY key_id, ts / 3600000000;",
    /* 8 → 9: retention (store_chain.c kw_store_prune()): the anchor the first remaining
     * link of the hash chain follows once older links were pruned, and a log of every
     * prune; and how often each resource bound was hit (kw_store_add_limit_hits()). */
    "CREATE TABLE IF NOT EXISTS chain_anchor("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), batch INTEGER NOT NULL, hash BLOB NOT NULL,"
    "  last_call INTEGER NOT NULL, calls INTEGER NOT NULL, moved INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS prunes("
    "  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, cutoff INTEGER NOT NULL,"
    "  batches INTEGER NOT NULL, calls INTEGER NOT NULL, anchor_batch INTEGER NOT NULL,"
    "  anchor BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS limit_hits("
    "  name TEXT PRIMARY KEY, hits INTEGER NOT NULL, last_hit INTEGER NOT NULL) WITHOUT ROWID;",
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

enum stmt_id {
  S_BEGIN, S_COMMIT, S_ROLLBACK,
  S_INS_CALL, S_UPS_ENDPOINT, S_UPS_CLIENT, S_UPS_AGENT, S_UPS_HOST, S_UPS_KEY,
  S_UPD_KEY, S_UPS_KEY_EP, S_UPS_KEY_CL, S_UPD_SOURCE,
  S_DEL_POS, S_INS_POS, S_INS_GAP, S_UPS_STATUS, S_UPS_DAEMON, S_INS_LINK, S_UPS_KEY_EP_DAY,
  S_UPS_SOURCE_CLASS, S_UPS_KEY_HOUR, S_INS_CALLS,
  S_COUNT
};

/* The CALL_COLS columns a call is inserted with. */
#define CALLS_INTO " INTO calls(ts, key_id, client_id, endpoint_id, path, status," \
                   " req_bytes, resp_bytes, latency_us, agent_id, host_id, source_id, flags)"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_INS_CALL] = "INSERT" CALLS_INTO " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
    /* CALL_ROWS rows: built by calls_sql().  OR FAIL: a failing row leaves the rows before
     * it in the open batch (which the caller then abandons), and so SQLite needs no
     * statement journal for a multi-row INSERT.  No row can fail a constraint: every NOT
     * NULL column is bound a value and the id is SQLite's. */
    [S_INS_CALLS] = NULL,
    [S_UPS_ENDPOINT] = "INSERT INTO endpoints(method, template) VALUES(?, ?)"
                       " ON CONFLICT(method, template) DO UPDATE SET method = excluded.method"
                       " RETURNING id",
    [S_UPS_CLIENT] = "INSERT INTO clients(addr) VALUES(?)"
                     " ON CONFLICT(addr) DO UPDATE SET addr = excluded.addr RETURNING id",
    [S_UPS_AGENT] = "INSERT INTO agents(value) VALUES(?)"
                    " ON CONFLICT(value) DO UPDATE SET value = excluded.value RETURNING id",
    [S_UPS_HOST] = "INSERT INTO hosts(value) VALUES(?)"
                   " ON CONFLICT(value) DO UPDATE SET value = excluded.value RETURNING id",
    [S_UPS_KEY] = "INSERT INTO keys(fingerprint, prefix) VALUES(?, ?)"
                  " ON CONFLICT(fingerprint) DO UPDATE SET prefix = keys.prefix RETURNING id",
    [S_UPD_KEY] = "UPDATE keys SET calls = calls + ?2, errors = errors + ?3,"
                  " bytes = bytes + ?4,"
                  " first_seen = min(coalesce(first_seen, ?5), ?5),"
                  " last_seen = max(coalesce(last_seen, ?6), ?6) WHERE id = ?1",
    [S_UPS_KEY_EP] = "INSERT INTO key_endpoints(key_id, endpoint_id, calls, errors,"
                     " first_seen, last_seen) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
                     " ON CONFLICT DO UPDATE SET calls = calls + ?3, errors = errors + ?4,"
                     " first_seen = min(first_seen, ?5), last_seen = max(last_seen, ?6)",
    [S_UPS_KEY_CL] = "INSERT INTO key_clients(key_id, client_id, calls, first_seen, last_seen)"
                     " VALUES(?1, ?2, ?3, ?4, ?5)"
                     " ON CONFLICT DO UPDATE SET calls = calls + ?3,"
                     " first_seen = min(first_seen, ?4), last_seen = max(last_seen, ?5)",
    [S_UPS_KEY_HOUR] = "INSERT INTO key_hours(key_id, hour, calls, errors) VALUES(?1, ?2, ?3, ?4)"
                       " ON CONFLICT DO UPDATE SET calls = calls + ?3, errors = errors + ?4",
    [S_UPS_KEY_EP_DAY] = "INSERT INTO key_endpoint_days(key_id, day, endpoint_id, calls, ok,"
                         " denied, first_seen, last_seen) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                         " ON CONFLICT DO UPDATE SET calls = calls + ?4, ok = ok + ?5,"
                         " denied = denied + ?6, first_seen = min(first_seen, ?7),"
                         " last_seen = max(last_seen, ?8)",
    [S_UPD_SOURCE] = "UPDATE sources SET lines = lines + ?2, malformed = malformed + ?3,"
                     " bytes = bytes + ?4, calls = calls + ?5 WHERE id = ?1",
    [S_UPS_SOURCE_CLASS] = "INSERT INTO source_classes(source_id, class, calls)"
                           " VALUES(?1, ?2, ?3) ON CONFLICT DO UPDATE SET calls = calls + ?3",
    [S_DEL_POS] = "DELETE FROM positions WHERE source_id = ?",
    [S_INS_POS] = "INSERT INTO positions(source_id, dev, ino, offset, hash, hash_len)"
                  " VALUES(?,?,?,?,?,?)",
    [S_INS_GAP] = "INSERT INTO gaps(source_id, ts, bytes, detail) VALUES(?,?,?,?)",
    [S_UPS_STATUS] = "INSERT INTO source_status(source_id, state, updated, backlog, drops,"
                     " rate, lag_p50_us, lag_p99_us, detail) VALUES(?,?,?,?,?,?,?,?,?)"
                     " ON CONFLICT(source_id) DO UPDATE SET state = excluded.state,"
                     " updated = excluded.updated, backlog = excluded.backlog,"
                     " drops = excluded.drops, rate = excluded.rate,"
                     " lag_p50_us = excluded.lag_p50_us, lag_p99_us = excluded.lag_p99_us,"
                     " detail = excluded.detail",
    /* Batch numbers continue after the anchor even when retention removed every link. */
    [S_INS_LINK] = "INSERT INTO chain(batch, first_call, last_call, calls, prev, hash, committed)"
                   " VALUES(coalesce((SELECT max(batch) FROM chain),"
                   " (SELECT batch FROM chain_anchor), 0) + 1, ?,?,?,?,?,?)",
    [S_UPS_DAEMON] = "INSERT INTO daemon(id, pid, started, heartbeat, config)"
                     " VALUES(1, ?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET pid = ?1,"
                     " started = ?2, heartbeat = ?3, config = ?4",
};

/* Batch aggregate: one row of a rollup table, summed over the open batch. */
struct agg {
  int64_t a, b;       /* the row's ids (see the aggsets in struct kw_store) */
  int64_t calls, errors, bytes;
  int64_t first, last;
  union {
    struct { /* sources only */
      int64_t lines, malformed;
      int64_t classes[KW_STATUS_CLASSES]; /* calls by kw_store_status_class() */
    };
    struct { /* key × endpoint × day only */
      int64_t ok, denied;
    };
  };
};

/* Rows by (a, b): v in order of first use, and an open-addressing index over it.
 * Invariants: nslots is 0 or a power of two with n <= nslots / 2; slots[i] is 0 when
 * empty, else 1 + the position in v of the row whose hash probes through i. */
struct aggset {
  uint32_t *slots;
  size_t nslots;
  struct agg *v;
  size_t n, cap;
};

/* A call waiting for the next multi-row INSERT: its columns, NULL as -1 where optional,
 * and its path in the store's path arena. */
struct pending_call {
  int64_t id, ts, key, client, endpoint, status, req, resp, latency, agent, host, source;
  int flags;
  size_t path_off, path_len;
};

struct kw_store {
  sqlite3 *db;
  sqlite3_stmt *stmt[S_COUNT];
  bool rdonly, in_tx;
  size_t pending;
  struct kw_dict *d_endpoint, *d_client, *d_agent, *d_host, *d_key;
  /* Filled per call: (key, endpoint << 24 | day), (key, hour), (key, client), (source, 0).
   * key_endpoints and keys are summed from the first two at commit, into key_eps
   * (key, endpoint) and keys (key, 0): one lookup per call serves two tables each. */
  struct aggset key_ep_days, key_hours, key_cls, sources;
  struct aggset key_eps, keys;
  /* the hash chain: the link being built for the open batch */
  struct kw_chain *chain;
  uint8_t chain_prev[KW_CHAIN_HASH]; /* hash of the last committed link */
  int64_t link_first, link_last, link_calls;
  /* Calls inserted CALL_ROWS at a time.  next_call is the id SQLite will give the next
   * call (max(id) + 1: calls has no AUTOINCREMENT), learnt from the first call of a batch,
   * which is inserted alone, and forgotten (0) whenever other statements may run
   * (kw__store_db()).  Invariants: npend > 0 only when next_call > 0, and the pending
   * calls' ids are next_call - npend .. next_call - 1; while npend > 0 no statement
   * reads or writes calls (only kw_store_add_call()'s dictionary upserts run, and other
   * files' statements go through kw__store_db(), which flushes); call_err is the first
   * failure of a flush that no caller could be told of, and fails the batch. */
  struct pending_call pend[CALL_ROWS];
  size_t npend;
  char *paths;
  size_t paths_len, paths_cap;
  int64_t next_call;
  int call_err;
  int64_t dict_resets; /* full dictionary caches forgotten, not yet committed as hits */
  char err[256]; /* SQLite's message for the last failed commit (a rollback replaces it) */
};

const char *kw_store_errmsg(const struct kw_store *st) {
  if (st != NULL && st->err[0] != '\0')
    return st->err;
  return st && st->db ? sqlite3_errmsg(st->db) : "no database";
}

/* ---- aggregates -------------------------------------------------------------------- */

/* Ids are small integers: one multiply-add-multiply spreads them over the high bits. */
static inline size_t agg_hash(int64_t a, int64_t b) {
  uint64_t h = ((uint64_t)a * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t)b) *
               UINT64_C(0xc2b2ae3d27d4eb4f);
  return (size_t)(h >> 32 ^ h);
}

/* Rebuilds the index with nslots slots (a power of two). */
static int agg_rehash(struct aggset *s, size_t nslots) {
  uint32_t *slots = calloc(nslots, sizeof(*slots));
  if (slots == NULL)
    return KW_ENOMEM;
  for (size_t p = 0; p < s->n; p++) {
    size_t i = agg_hash(s->v[p].a, s->v[p].b) & (nslots - 1);
    while (slots[i] != 0)
      i = (i + 1) & (nslots - 1);
    slots[i] = (uint32_t)(p + 1);
  }
  free(s->slots);
  s->slots = slots;
  s->nslots = nslots;
  return 0;
}

/* The row (a, b), added zeroed when new; NULL when out of memory.  The pointer is valid
 * until the next agg_get() on s.  A batch holds at most batch_rows (<= 1,000,000) calls,
 * so n stays far below UINT32_MAX. */
static struct agg *agg_get(struct aggset *s, int64_t a, int64_t b) {
  size_t i, mask = s->nslots - 1;

  if (s->nslots > 0) {
    for (i = agg_hash(a, b) & mask; s->slots[i] != 0; i = (i + 1) & mask) {
      struct agg *g = &s->v[s->slots[i] - 1];
      if (g->a == a && g->b == b)
        return g;
    }
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    struct agg *v = realloc(s->v, cap * sizeof(*v));
    if (v == NULL)
      return NULL;
    s->v = v;
    s->cap = cap;
  }
  if ((s->n + 1) * 2 > s->nslots) {
    if (agg_rehash(s, s->nslots ? s->nslots * 2 : 1024) != 0)
      return NULL;
    mask = s->nslots - 1;
  }
  for (i = agg_hash(a, b) & mask; s->slots[i] != 0; i = (i + 1) & mask)
    ;
  s->slots[i] = (uint32_t)(s->n + 1);
  s->v[s->n] = (struct agg){.a = a, .b = b, .first = INT64_MAX, .last = INT64_MIN};
  return &s->v[s->n++];
}

static void agg_reset(struct aggset *s) {
  if (s->n > 0)
    memset(s->slots, 0, s->nslots * sizeof(*s->slots));
  s->n = 0;
}

static void agg_free(struct aggset *s) {
  free(s->slots);
  free(s->v);
}

static void agg_add(struct agg *g, int64_t ts, bool error, int64_t bytes) {
  g->calls++;
  g->errors += error;
  g->bytes += bytes > 0 ? bytes : 0;
  if (ts < g->first)
    g->first = ts;
  if (ts > g->last)
    g->last = ts;
}

/* Adds the calls, errors, bytes and time span of src to g. */
static void agg_merge(struct agg *g, const struct agg *src) {
  g->calls += src->calls;
  g->errors += src->errors;
  g->bytes += src->bytes;
  if (src->first < g->first)
    g->first = src->first;
  if (src->last > g->last)
    g->last = src->last;
}

/* ---- open / close ------------------------------------------------------------------ */

static int exec(struct kw_store *st, const char *sql, char *err, size_t errlen) {
  char *msg = NULL;
  if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return KW_ESTORE;
  }
  return 0;
}

static int user_version(struct kw_store *st, int *v) {
  sqlite3_stmt *s;
  int r = KW_ESTORE;
  if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  if (sqlite3_step(s) == SQLITE_ROW) {
    *v = sqlite3_column_int(s, 0);
    r = 0;
  }
  sqlite3_finalize(s);
  return r;
}

static int migrate(struct kw_store *st, char *err, size_t errlen) {
  char sql[64];
  int v, r;

  if ((r = user_version(st, &v)) != 0) {
    snprintf(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(st->db));
    return r;
  }
  if (v > (int)NMIGRATIONS) {
    snprintf(err, errlen,
             "database schema version %d is newer than this keywatch supports (%d)", v,
             (int)NMIGRATIONS);
    return KW_ESCHEMA;
  }
  for (; v < (int)NMIGRATIONS; v++) {
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
    if ((r = exec(st, "BEGIN IMMEDIATE", err, errlen)) != 0)
      return r;
    if ((r = exec(st, migrations[v], err, errlen)) != 0 ||
        (r = exec(st, sql, err, errlen)) != 0) {
      exec(st, "ROLLBACK", err + strlen(err), 0);
      return r;
    }
    if ((r = exec(st, "COMMIT", err, errlen)) != 0)
      return r;
  }
  return 0;
}

/* The multi-row INSERT of S_INS_CALLS, written into buf. */
static const char *calls_sql(char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "%s", "INSERT OR FAIL" CALLS_INTO " VALUES");
  for (int r = 0; r < CALL_ROWS && n < len; r++) {
    n += (size_t)snprintf(buf + n, len - n, "%s(", r ? "," : "");
    for (int c = 0; c < CALL_COLS && n < len; c++)
      n += (size_t)snprintf(buf + n, len - n, "%s?", c ? "," : "");
    if (n < len)
      n += (size_t)snprintf(buf + n, len - n, ")");
  }
  return buf;
}

int kw_store_open(const char *path, int flags, struct kw_store **out, char *err,
                  size_t errlen) {
  struct kw_store *st;
  int r = KW_ESTORE, v;

  *out = NULL;
  st = calloc(1, sizeof(*st));
  if (st == NULL) {
    snprintf(err, errlen, "cannot open %s: out of memory", path);
    return KW_ENOMEM;
  }
  st->rdonly = flags & KW_STORE_RDONLY;
  if (st->rdonly) {
    if (access(path, F_OK) != 0) {
      snprintf(err, errlen, "no database at %s (run `keywatch ingest` first, or give --db)",
               path);
      r = KW_ENOTFOUND;
      goto fail;
    }
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
      snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(st->db));
      goto fail;
    }
    sqlite3_busy_timeout(st->db, 5000);
    if (user_version(st, &v) != 0) {
      snprintf(err, errlen, "%s is not a keywatch database: %s", path,
               sqlite3_errmsg(st->db));
      goto fail;
    }
    if (v != (int)NMIGRATIONS) {
      snprintf(err, errlen, "%s has schema version %d, this keywatch reads %d%s", path, v,
               (int)NMIGRATIONS, v < (int)NMIGRATIONS ? " (run `keywatch ingest` to migrate)" : "");
      r = KW_ESCHEMA;
      goto fail;
    }
    *out = st;
    return 0;
  }
  /* A new database is private to the user from its first byte (":memory:": no file). */
  if (strcmp(path, ":memory:") != 0) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
      r = -errno;
      goto fail;
    }
    close(fd);
  }
  if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(st->db));
    goto fail;
  }
  sqlite3_busy_timeout(st->db, 5000);
  if ((r = exec(st, "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                    "PRAGMA wal_autocheckpoint = 16384; PRAGMA mmap_size = 268435456;"
                    "PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
                err, errlen)) != 0) {
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", err);
    snprintf(err, errlen, "%s is not usable as a database: %s", path, tmp);
    goto fail;
  }
  if ((r = migrate(st, err, errlen)) != 0)
    goto fail;
  for (int i = 0; i < S_COUNT; i++) {
    char many[sizeof(CALLS_INTO) + 32 + CALL_ROWS * (2 * CALL_COLS + 8)];
    const char *sql = i == S_INS_CALLS ? calls_sql(many, sizeof(many)) : stmt_sql[i];
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                           NULL) != SQLITE_OK) {
      snprintf(err, errlen, "cannot prepare statement: %s", sqlite3_errmsg(st->db));
      r = KW_ESTORE;
      goto fail;
    }
  }
  if (kw_chain_create(&st->chain) != 0) {
    r = KW_ENOMEM;
    goto fail;
  }
  {
    sqlite3_stmt *q;
    /* The last link; when retention pruned every link, the anchor is the last. */
    if (sqlite3_prepare_v2(st->db,
                           "SELECT hash FROM (SELECT hash, batch FROM chain"
                           " UNION ALL SELECT hash, batch FROM chain_anchor)"
                           " ORDER BY batch DESC LIMIT 1",
                           -1, &q, NULL) == SQLITE_OK) {
      if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_bytes(q, 0) == KW_CHAIN_HASH)
        memcpy(st->chain_prev, sqlite3_column_blob(q, 0), KW_CHAIN_HASH);
      sqlite3_finalize(q);
    }
  }
  if (kw_dict_create(DICT_MAX, &st->d_endpoint) || kw_dict_create(DICT_MAX, &st->d_client) ||
      kw_dict_create(DICT_MAX, &st->d_agent) || kw_dict_create(DICT_MAX, &st->d_host) ||
      kw_dict_create(DICT_MAX, &st->d_key)) {
    r = KW_ENOMEM;
    goto fail;
  }
  *out = st;
  return 0;
fail:
  if (r == KW_ENOMEM)
    snprintf(err, errlen, "cannot open %s: out of memory", path);
  kw_store_close(st);
  return r;
}

static int step_done(struct kw_store *st, sqlite3_stmt *s);

static void reset_caches(struct kw_store *st) {
  kw_dict_clear(st->d_endpoint);
  kw_dict_clear(st->d_client);
  kw_dict_clear(st->d_agent);
  kw_dict_clear(st->d_host);
  kw_dict_clear(st->d_key);
  agg_reset(&st->keys);
  agg_reset(&st->key_eps);
  agg_reset(&st->key_cls);
  agg_reset(&st->key_ep_days);
  agg_reset(&st->key_hours);
  agg_reset(&st->sources);
}

int kw_store_close(struct kw_store *st) {
  int r = 0;
  if (st == NULL)
    return 0;
  if (st->in_tx) /* an uncommitted batch is discarded: the caller did not commit it */
    step_done(st, st->stmt[S_ROLLBACK]);
  st->link_calls = 0;
  for (int i = 0; i < S_COUNT; i++)
    sqlite3_finalize(st->stmt[i]);
  if (st->db != NULL && !st->rdonly)
    sqlite3_exec(st->db, "PRAGMA optimize", NULL, NULL, NULL);
  if (sqlite3_close(st->db) != SQLITE_OK)
    r = KW_ESTORE;
  kw_chain_destroy(st->chain);
  free(st->paths);
  kw_dict_destroy(st->d_endpoint);
  kw_dict_destroy(st->d_client);
  kw_dict_destroy(st->d_agent);
  kw_dict_destroy(st->d_host);
  kw_dict_destroy(st->d_key);
  agg_free(&st->keys);
  agg_free(&st->key_eps);
  agg_free(&st->key_cls);
  agg_free(&st->key_ep_days);
  agg_free(&st->key_hours);
  agg_free(&st->sources);
  free(st);
  return r;
}

/* ---- write path -------------------------------------------------------------------- */

static int step_done(struct kw_store *st, sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  (void)st;
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : KW_ESTORE;
}

static int begin(struct kw_store *st) {
  if (st->in_tx)
    return 0;
  if (step_done(st, st->stmt[S_BEGIN]) != 0)
    return KW_ESTORE;
  st->in_tx = true;
  return 0;
}

/* Runs an upsert ... RETURNING id; *id gets the row's id. */
static int upsert_id(sqlite3_stmt *s, int64_t *id) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW)
    *id = sqlite3_column_int64(s, 0);
  sqlite3_reset(s); /* RETURNING rows are all produced by the first step */
  sqlite3_clear_bindings(s);
  return rc == SQLITE_ROW ? 0 : KW_ESTORE;
}

/* Remembers id for key; a full cache is forgotten (counted) and restarted. */
static void cache_put(struct kw_store *st, struct kw_dict *d, const void *key, size_t n,
                      int64_t id) {
  if (kw_dict_put(d, key, n, id) == KW_ETOOLONG) {
    kw_dict_clear(d);
    st->dict_resets++;
    kw_dict_put(d, key, n, id);
  }
}

static int text_id(struct kw_store *st, struct kw_dict *d, enum stmt_id sid, struct kw_str v,
                   int64_t *id) {
  sqlite3_stmt *s = st->stmt[sid];
  if (kw_dict_get(d, v.p, v.n, id))
    return 0;
  sqlite3_bind_text(s, 1, v.p, (int)v.n, SQLITE_STATIC);
  if (upsert_id(s, id) != 0)
    return KW_ESTORE;
  cache_put(st, d, v.p, v.n, *id);
  return 0;
}

static int endpoint_id(struct kw_store *st, const struct kw_call *c, int64_t *id) {
  char key[KW_ENDPOINT_KEY_MAX];
  sqlite3_stmt *s = st->stmt[S_UPS_ENDPOINT];
  struct kw_str m = c->method.n ? c->method : kw_str_make("-", 1);
  struct kw_str ep = c->endpoint.n ? c->endpoint : kw_str_make("/", 1);
  size_t n;

  if (m.n > 32)
    m.n = 32;
  n = m.n + 1 + ep.n;
  if (n > sizeof(key))
    return KW_ETOOLONG;
  memcpy(key, m.p, m.n);
  key[m.n] = ' ';
  memcpy(key + m.n + 1, ep.p, ep.n);
  if (kw_dict_get(st->d_endpoint, key, n, id))
    return 0;
  sqlite3_bind_text(s, 1, m.p, (int)m.n, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, ep.p, (int)ep.n, SQLITE_STATIC);
  if (upsert_id(s, id) != 0)
    return KW_ESTORE;
  cache_put(st, st->d_endpoint, key, n, *id);
  return 0;
}

static int client_id(struct kw_store *st, const struct kw_addr *a, int64_t *id) {
  size_t n = a->family == 4 ? 4 : 16;
  sqlite3_stmt *s = st->stmt[S_UPS_CLIENT];
  if (kw_dict_get(st->d_client, a->a, n, id))
    return 0;
  sqlite3_bind_blob(s, 1, a->a, (int)n, SQLITE_STATIC);
  if (upsert_id(s, id) != 0)
    return KW_ESTORE;
  cache_put(st, st->d_client, a->a, n, *id);
  return 0;
}

static int key_id(struct kw_store *st, const struct kw_call *c, int64_t *id) {
  sqlite3_stmt *s = st->stmt[S_UPS_KEY];
  if (kw_dict_get(st->d_key, c->fp, KW_FP_LEN, id))
    return 0;
  sqlite3_bind_blob(s, 1, c->fp, KW_FP_LEN, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, c->prefix, -1, SQLITE_STATIC);
  if (upsert_id(s, id) != 0)
    return KW_ESTORE;
  cache_put(st, st->d_key, c->fp, KW_FP_LEN, *id);
  return 0;
}

static void bind_opt(sqlite3_stmt *s, int i, int64_t v) {
  if (v >= 0)
    sqlite3_bind_int64(s, i, v);
  else
    sqlite3_bind_null(s, i);
}

/* Adds call id to the open batch's link, encoded from the values stored (the method and
 * endpoint as endpoint_id() keeps them, empty strings for absent text). */
static int chain_add(struct kw_store *st, const struct kw_call *c, int64_t id) {
  struct kw_str m = c->method.n ? c->method : kw_str_make("-", 1);
  struct kw_chain_row row = {
      .id = id,
      .ts_us = c->ts_us,
      .fp = c->has_key ? c->fp : NULL,
      .client = c->client,
      .method = kw_str_make(m.p, m.n > 32 ? 32 : m.n),
      .endpoint = c->endpoint.n ? c->endpoint : kw_str_make("/", 1),
      .path = c->path,
      .status = c->status,
      .req_bytes = c->req_bytes >= 0 ? c->req_bytes : -1,
      .resp_bytes = c->resp_bytes >= 0 ? c->resp_bytes : -1,
      .latency_us = c->latency_us >= 0 ? c->latency_us : -1,
      .user_agent = c->user_agent,
      .host = c->host,
      .source_id = c->source_id,
      .flags = c->has_query ? 1 : 0,
  };
  if (row.client.family == 0)
    memset(row.client.a, 0, sizeof(row.client.a));
  else if (row.client.family == 4)
    memset(row.client.a + 4, 0, 12);
  if (st->link_calls == 0) {
    if (kw_chain_begin(st->chain, st->chain_prev) != 0)
      return KW_ENOMEM;
    st->link_first = row.id;
  }
  if (kw_chain_add(st->chain, &row) != 0)
    return KW_ENOMEM;
  st->link_last = row.id;
  st->link_calls++;
  return 0;
}

/* Writes the open batch's link (before COMMIT); *hash gets it. */
static int chain_link(struct kw_store *st, uint8_t *hash) {
  sqlite3_stmt *s = st->stmt[S_INS_LINK];
  if (kw_chain_end(st->chain, hash) != 0)
    return KW_ENOMEM;
  sqlite3_bind_int64(s, 1, st->link_first);
  sqlite3_bind_int64(s, 2, st->link_last);
  sqlite3_bind_int64(s, 3, st->link_calls);
  sqlite3_bind_blob(s, 4, st->chain_prev, KW_CHAIN_HASH, SQLITE_STATIC);
  sqlite3_bind_blob(s, 5, hash, KW_CHAIN_HASH, SQLITE_STATIC);
  sqlite3_bind_int64(s, 6, kw_time_now());
  return step_done(st, s);
}

static void bind_call(sqlite3_stmt *s, int i, const struct pending_call *p,
                      const char *path) {
  sqlite3_bind_int64(s, i + 1, p->ts);
  bind_opt(s, i + 2, p->key);
  bind_opt(s, i + 3, p->client);
  sqlite3_bind_int64(s, i + 4, p->endpoint);
  sqlite3_bind_text(s, i + 5, path, (int)p->path_len, SQLITE_STATIC);
  sqlite3_bind_int64(s, i + 6, p->status);
  bind_opt(s, i + 7, p->req);
  bind_opt(s, i + 8, p->resp);
  bind_opt(s, i + 9, p->latency);
  bind_opt(s, i + 10, p->agent);
  bind_opt(s, i + 11, p->host);
  sqlite3_bind_int64(s, i + 12, p->source);
  sqlite3_bind_int(s, i + 13, p->flags);
}

/* Inserts the pending calls: CALL_ROWS in one statement, fewer one by one.  Each must get
 * the id it was hashed with; KW_ESTORE otherwise, and the open batch then fails. */
static int flush_calls(struct kw_store *st) {
  const char *paths = st->paths ? st->paths : "";
  size_t n = st->npend;
  int r = 0;

  if (n == 0)
    return 0;
  st->npend = 0;
  st->paths_len = 0;
  if (n == CALL_ROWS) {
    sqlite3_stmt *s = st->stmt[S_INS_CALLS];
    for (size_t i = 0; i < n; i++)
      bind_call(s, (int)i * CALL_COLS, &st->pend[i], paths + st->pend[i].path_off);
    r = step_done(st, s);
  } else {
    for (size_t i = 0; i < n && r == 0; i++) {
      bind_call(st->stmt[S_INS_CALL], 0, &st->pend[i], paths + st->pend[i].path_off);
      r = step_done(st, st->stmt[S_INS_CALL]);
    }
  }
  if (r == 0 && sqlite3_last_insert_rowid(st->db) != st->pend[n - 1].id) {
    snprintf(st->err, sizeof(st->err), "calls were stored under other ids than hashed");
    r = KW_ESTORE;
  }
  if (r != 0 && st->call_err == 0) /* the link has them: the batch cannot commit */
    st->call_err = r;
  return r;
}

/* Queues call p for flush_calls(), copying its path: the caller's line goes away.  Out
 * of memory, nothing is queued. */
static int queue_call(struct kw_store *st, struct pending_call *p, struct kw_str path) {
  if (st->paths_len + path.n > st->paths_cap) {
    size_t cap = st->paths_cap ? st->paths_cap : 4096;
    while (cap < st->paths_len + path.n)
      cap *= 2;
    char *a = realloc(st->paths, cap);
    if (a == NULL)
      return KW_ENOMEM;
    st->paths = a;
    st->paths_cap = cap;
  }
  if (path.n > 0)
    memcpy(st->paths + st->paths_len, path.p, path.n);
  p->path_off = st->paths_len;
  p->path_len = path.n;
  st->paths_len += path.n;
  st->pend[st->npend++] = *p;
  return st->npend == CALL_ROWS ? flush_calls(st) : 0;
}

int kw_store_add_call(struct kw_store *st, const struct kw_call *c) {
  int64_t ep, cl = -1, ag = -1, ho = -1, key = -1;
  bool error = c->status >= 400 || c->status == 0;
  struct pending_call p;
  struct agg *g;
  int r;

  if (st->rdonly)
    return KW_EINVAL;
  if (st->call_err != 0)
    return st->call_err;
  if ((r = begin(st)) != 0)
    return r;
  if ((r = endpoint_id(st, c, &ep)) != 0 ||
      (c->client.family && (r = client_id(st, &c->client, &cl)) != 0) ||
      (c->user_agent.n && (r = text_id(st, st->d_agent, S_UPS_AGENT, c->user_agent, &ag))) ||
      (c->host.n && (r = text_id(st, st->d_host, S_UPS_HOST, c->host, &ho)) != 0) ||
      (c->has_key && (r = key_id(st, c, &key)) != 0))
    return r;
  p = (struct pending_call){
      .ts = c->ts_us, .key = key, .client = cl, .endpoint = ep, .status = c->status,
      .req = c->req_bytes, .resp = c->resp_bytes, .latency = c->latency_us, .agent = ag,
      .host = ho, .source = c->source_id, .flags = c->has_query ? 1 : 0,
      .path_len = c->path.n,
  };
  if (st->next_call > 0) {
    p.id = st->next_call;
    if ((r = queue_call(st, &p, c->path)) != 0)
      return r;
    st->next_call++;
  } else { /* the first call since other statements could run: learn its id */
    bind_call(st->stmt[S_INS_CALL], 0, &p, c->path.p ? c->path.p : "");
    if (step_done(st, st->stmt[S_INS_CALL]) != 0)
      return KW_ESTORE;
    p.id = sqlite3_last_insert_rowid(st->db);
    st->next_call = p.id + 1;
  }
  if ((r = chain_add(st, c, p.id)) != 0)
    return r;
  st->pending++;
  if ((g = agg_get(&st->sources, c->source_id, 0)) == NULL)
    return KW_ENOMEM;
  g->calls++;
  g->classes[kw_store_status_class(c->status)]++;
  if (key >= 0) {
    if ((g = agg_get(&st->key_hours, key, c->ts_us / HOUR_US)) == NULL)
      return KW_ENOMEM;
    agg_add(g, c->ts_us, error, c->resp_bytes);
    if ((g = agg_get(&st->key_ep_days, key, ep << 24 | (c->ts_us / DAY_US & 0xffffff))) == NULL)
      return KW_ENOMEM;
    agg_add(g, c->ts_us, error, c->resp_bytes);
    g->ok += c->status >= 200 && c->status < 400;
    g->denied += c->status == 401 || c->status == 403;
    if (cl >= 0) {
      if ((g = agg_get(&st->key_cls, key, cl)) == NULL)
        return KW_ENOMEM;
      agg_add(g, c->ts_us, error, c->resp_bytes);
    }
  }
  return 0;
}

int kw_store_add_lines(struct kw_store *st, uint32_t source_id, int64_t lines,
                       int64_t malformed, int64_t bytes) {
  struct agg *g;
  int r;
  if ((r = begin(st)) != 0)
    return r;
  if ((g = agg_get(&st->sources, source_id, 0)) == NULL)
    return KW_ENOMEM;
  g->lines += lines;
  g->malformed += malformed;
  g->bytes += bytes;
  return 0;
}

size_t kw_store_pending(const struct kw_store *st) { return st->pending; }

bool kw_store_in_batch(const struct kw_store *st) { return st->in_tx; }

/* Sums the batch's per-key rows from key_hours and its key × endpoint rows from
 * key_ep_days (the same calls, grouped finer). */
static int sum_aggs(struct kw_store *st) {
  struct agg *g;
  for (size_t i = 0; i < st->key_hours.n; i++) {
    if ((g = agg_get(&st->keys, st->key_hours.v[i].a, 0)) == NULL)
      return KW_ENOMEM;
    agg_merge(g, &st->key_hours.v[i]);
  }
  for (size_t i = 0; i < st->key_ep_days.n; i++) {
    const struct agg *d = &st->key_ep_days.v[i];
    if ((g = agg_get(&st->key_eps, d->a, d->b >> 24)) == NULL)
      return KW_ENOMEM;
    agg_merge(g, d);
  }
  return 0;
}

static int flush_aggs(struct kw_store *st) {
  sqlite3_stmt *s;
  int r;

  if ((r = sum_aggs(st)) != 0)
    return r;

  s = st->stmt[S_UPD_KEY];
  for (size_t i = 0; i < st->keys.n; i++) {
    struct agg *g = &st->keys.v[i];
    sqlite3_bind_int64(s, 1, g->a);
    sqlite3_bind_int64(s, 2, g->calls);
    sqlite3_bind_int64(s, 3, g->errors);
    sqlite3_bind_int64(s, 4, g->bytes);
    sqlite3_bind_int64(s, 5, g->first);
    sqlite3_bind_int64(s, 6, g->last);
    if (step_done(st, s) != 0)
      return KW_ESTORE;
  }
  s = st->stmt[S_UPS_KEY_EP];
  for (size_t i = 0; i < st->key_eps.n; i++) {
    struct agg *g = &st->key_eps.v[i];
    sqlite3_bind_int64(s, 1, g->a);
    sqlite3_bind_int64(s, 2, g->b);
    sqlite3_bind_int64(s, 3, g->calls);
    sqlite3_bind_int64(s, 4, g->errors);
    sqlite3_bind_int64(s, 5, g->first);
    sqlite3_bind_int64(s, 6, g->last);
    if (step_done(st, s) != 0)
      return KW_ESTORE;
  }
  s = st->stmt[S_UPS_KEY_HOUR];
  for (size_t i = 0; i < st->key_hours.n; i++) {
    struct agg *g = &st->key_hours.v[i];
    sqlite3_bind_int64(s, 1, g->a);
    sqlite3_bind_int64(s, 2, g->b);
    sqlite3_bind_int64(s, 3, g->calls);
    sqlite3_bind_int64(s, 4, g->errors);
    if (step_done(st, s) != 0)
      return KW_ESTORE;
  }
  s = st->stmt[S_UPS_KEY_EP_DAY];
  for (size_t i = 0; i < st->key_ep_days.n; i++) {
    struct agg *g = &st->key_ep_days.v[i];
    sqlite3_bind_int64(s, 1, g->a);
    sqlite3_bind_int64(s, 2, g->b & 0xffffff);
    sqlite3_bind_int64(s, 3, g->b >> 24);
    sqlite3_bind_int64(s, 4, g->calls);
    sqlite3_bind_int64(s, 5, g->ok);
    sqlite3_bind_int64(s, 6, g->denied);
    sqlite3_bind_int64(s, 7, g->first);
    sqlite3_bind_int64(s, 8, g->last);
    if (step_done(st, s) != 0)
      return KW_ESTORE;
  }
  s = st->stmt[S_UPS_KEY_CL];
  for (size_t i = 0; i < st->key_cls.n; i++) {
    struct agg *g = &st->key_cls.v[i];
    sqlite3_bind_int64(s, 1, g->a);
    sqlite3_bind_int64(s, 2, g->b);
    sqlite3_bind_int64(s, 3, g->calls);
    sqlite3_bind_int64(s, 4, g->first);
    sqlite3_bind_int64(s, 5, g->last);
    if (step_done(st, s) != 0)
      return KW_ESTORE;
  }
  s = st->stmt[S_UPD_SOURCE];
  for (size_t i = 0; i < st->sources.n; i++) {
    struct agg *g = &st->sources.v[i];
    sqlite3_bind_int64(s, 1, g->a);
    sqlite3_bind_int64(s, 2, g->lines);
    sqlite3_bind_int64(s, 3, g->malformed);
    sqlite3_bind_int64(s, 4, g->bytes);
    sqlite3_bind_int64(s, 5, g->calls);
    if (step_done(st, s) != 0)
      return KW_ESTORE;
  }
  s = st->stmt[S_UPS_SOURCE_CLASS];
  for (size_t i = 0; i < st->sources.n; i++) {
    struct agg *g = &st->sources.v[i];
    for (int k = 0; k < KW_STATUS_CLASSES; k++) {
      if (g->classes[k] == 0)
        continue;
      sqlite3_bind_int64(s, 1, g->a);
      sqlite3_bind_int(s, 2, k);
      sqlite3_bind_int64(s, 3, g->classes[k]);
      if (step_done(st, s) != 0)
        return KW_ESTORE;
    }
  }
  return 0;
}

int kw_store_commit(struct kw_store *st) {
  int r;
  if (!st->in_tx)
    return 0;
  uint8_t link[KW_CHAIN_HASH];
  r = flush_calls(st);
  if (r == 0)
    r = st->call_err;
  if (r == 0)
    r = flush_aggs(st);
  if (r == 0 && st->dict_resets > 0 &&
      (r = kw_store_add_limit_hits(st, "store_dictionary_cache", st->dict_resets)) == 0)
    st->dict_resets = 0;
  if (r == 0 && st->link_calls > 0)
    r = chain_link(st, link);
  if (r == 0 && step_done(st, st->stmt[S_COMMIT]) != 0)
    r = KW_ESTORE;
  if (r != 0) {
    /* Nothing of the batch is stored: forget ids that may have been rolled back. */
    snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
    step_done(st, st->stmt[S_ROLLBACK]);
    reset_caches(st);
  } else {
    st->err[0] = '\0';
  }
  if (r == 0 && st->link_calls > 0) {
    memcpy(st->chain_prev, link, KW_CHAIN_HASH);
  }
  st->link_calls = 0;
  st->in_tx = false;
  st->pending = 0;
  st->npend = 0;
  st->paths_len = 0;
  st->next_call = 0;
  st->call_err = 0;
  agg_reset(&st->keys);
  agg_reset(&st->key_eps);
  agg_reset(&st->key_cls);
  agg_reset(&st->key_ep_days);
  agg_reset(&st->key_hours);
  agg_reset(&st->sources);
  return r;
}

int kw_store_source(struct kw_store *st, const char *name, const char *kind,
                    const char *format, uint32_t *id) {
  sqlite3_stmt *s;
  int r = KW_ESTORE;

  if (sqlite3_prepare_v2(st->db,
                         "INSERT INTO sources(name, kind, format, created_us) VALUES(?,?,?,?)"
                         " ON CONFLICT(name) DO UPDATE SET format = excluded.format"
                         " RETURNING id",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, format, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 4, kw_time_now());
  if (sqlite3_step(s) == SQLITE_ROW) {
    *id = (uint32_t)sqlite3_column_int64(s, 0);
    r = 0;
  }
  sqlite3_finalize(s);
  return r;
}

int kw_store_name_key(struct kw_store *st, const uint8_t *fp, const char *prefix,
                      const char *name) {
  sqlite3_stmt *s;
  int n = -1;
  const char *sql = fp ? "UPDATE keys SET name = ?1 WHERE fingerprint = ?2"
                       : "UPDATE keys SET name = ?1 WHERE prefix = ?2";
  if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  if (fp)
    sqlite3_bind_blob(s, 2, fp, KW_FP_LEN, SQLITE_STATIC);
  else
    sqlite3_bind_text(s, 2, prefix, -1, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_DONE)
    n = sqlite3_changes(st->db);
  sqlite3_finalize(s);
  return n < 0 ? KW_ESTORE : n;
}

/* Other files' statements may read calls or insert elsewhere: the pending calls go in
 * first, and the next call learns its id again. */
sqlite3 *kw__store_db(struct kw_store *st) {
  flush_calls(st); /* a failure fails the batch (call_err) */
  st->next_call = 0;
  return st->db;
}

int kw_store_manual_checkpoints(struct kw_store *st) {
  return sqlite3_wal_autocheckpoint(st->db, 0) == SQLITE_OK ? 0 : KW_ESTORE;
}

int kw_store_checkpoint(const char *path) {
  sqlite3 *db = NULL;
  int r = KW_ESTORE;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) ==
      SQLITE_OK) {
    sqlite3_busy_timeout(db, 1000);
    if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) ==
        SQLITE_OK)
      r = 0;
  }
  sqlite3_close(db);
  return r;
}

int kw__store_begin(struct kw_store *st) { return st->rdonly ? KW_EINVAL : begin(st); }

int kw_store_add_limit_hits(struct kw_store *st, const char *name, int64_t n) {
  int r;
  if (n <= 0)
    return 0;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  r = kw__store_run1(st->db,
                     "INSERT INTO limit_hits(name, hits, last_hit) VALUES(?1, ?2, ?3)"
                     " ON CONFLICT(name) DO UPDATE SET hits = hits + ?2, last_hit = ?3",
                     "tii", NULL, name, n, kw_time_now());
  return r == KW_ESTORE ? r : 0;
}

int kw_store_limit_hits(struct kw_store *st,
                        int (*cb)(const char *name, int64_t hits, int64_t last_hit_us,
                                  void *ctx),
                        void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(st->db, "SELECT name, hits, last_hit FROM limit_hits ORDER BY name",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
    r = cb((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
           sqlite3_column_int64(s, 2), ctx);
  if (r == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int64_t kw__store_key_id(struct kw_store *st, const uint8_t *fp) {
  int64_t id;
  if (kw_dict_get(st->d_key, fp, KW_FP_LEN, &id))
    return id;
  sqlite3_stmt *s;
  id = -1;
  if (sqlite3_prepare_v2(st->db, "SELECT id FROM keys WHERE fingerprint = ?", -1, &s, NULL) !=
      SQLITE_OK)
    return -1;
  sqlite3_bind_blob(s, 1, fp, KW_FP_LEN, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_ROW)
    id = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return id;
}

/* ---- daemon state ------------------------------------------------------------------ */

int kw_store_get_positions(struct kw_store *st, uint32_t source_id, struct kw_store_pos *out,
                           size_t max, size_t *n) {
  sqlite3_stmt *s;
  int rc;

  *n = 0;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT dev, ino, offset, hash, hash_len FROM positions"
                         " WHERE source_id = ? ORDER BY ino",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, source_id);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
    out[*n] = (struct kw_store_pos){
        .dev = (uint64_t)sqlite3_column_int64(s, 0),
        .ino = (uint64_t)sqlite3_column_int64(s, 1),
        .offset = sqlite3_column_int64(s, 2),
        .hash = (uint64_t)sqlite3_column_int64(s, 3),
        .hash_len = (uint32_t)sqlite3_column_int(s, 4),
    };
    (*n)++;
  }
  sqlite3_finalize(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : KW_ESTORE;
}

int kw_store_set_positions(struct kw_store *st, uint32_t source_id,
                           const struct kw_store_pos *pos, size_t n) {
  sqlite3_stmt *s = st->stmt[S_INS_POS];
  int r;

  if ((r = begin(st)) != 0)
    return r;
  sqlite3_bind_int64(st->stmt[S_DEL_POS], 1, source_id);
  if (step_done(st, st->stmt[S_DEL_POS]) != 0)
    return KW_ESTORE;
  for (size_t i = 0; i < n; i++) {
    sqlite3_bind_int64(s, 1, source_id);
    sqlite3_bind_int64(s, 2, (int64_t)pos[i].dev);
    sqlite3_bind_int64(s, 3, (int64_t)pos[i].ino);
    sqlite3_bind_int64(s, 4, pos[i].offset);
    sqlite3_bind_int64(s, 5, (int64_t)pos[i].hash);
    sqlite3_bind_int64(s, 6, pos[i].hash_len);
    if (step_done(st, s) != 0)
      return KW_ESTORE;
  }
  return 0;
}

int kw_store_add_gap(struct kw_store *st, uint32_t source_id, int64_t bytes,
                     const char *detail) {
  sqlite3_stmt *s = st->stmt[S_INS_GAP];
  int r;
  if ((r = begin(st)) != 0)
    return r;
  sqlite3_bind_int64(s, 1, source_id);
  sqlite3_bind_int64(s, 2, kw_time_now());
  bind_opt(s, 3, bytes);
  sqlite3_bind_text(s, 4, detail, -1, SQLITE_STATIC);
  r = step_done(st, s);
  sqlite3_clear_bindings(s);
  return r;
}

int kw_store_set_status(struct kw_store *st, uint32_t source_id,
                        const struct kw_source_status *ss) {
  sqlite3_stmt *s = st->stmt[S_UPS_STATUS];
  int r;
  if ((r = begin(st)) != 0)
    return r;
  sqlite3_bind_int64(s, 1, source_id);
  sqlite3_bind_text(s, 2, ss->state, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, kw_time_now());
  sqlite3_bind_int64(s, 4, ss->backlog);
  sqlite3_bind_int64(s, 5, ss->drops);
  sqlite3_bind_double(s, 6, ss->rate);
  bind_opt(s, 7, ss->lag_p50_us);
  bind_opt(s, 8, ss->lag_p99_us);
  if (ss->detail)
    sqlite3_bind_text(s, 9, ss->detail, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(s, 9);
  r = step_done(st, s);
  sqlite3_clear_bindings(s);
  return r;
}

int kw_store_heartbeat(struct kw_store *st, int64_t pid, int64_t started_us,
                       const char *config) {
  sqlite3_stmt *s = st->stmt[S_UPS_DAEMON];
  int r;
  if ((r = begin(st)) != 0)
    return r;
  sqlite3_bind_int64(s, 1, pid);
  sqlite3_bind_int64(s, 2, started_us);
  sqlite3_bind_int64(s, 3, kw_time_now());
  if (config)
    sqlite3_bind_text(s, 4, config, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(s, 4);
  r = step_done(st, s);
  sqlite3_clear_bindings(s);
  return r;
}
