/* store_chain.c — verifying the audit hash chain, and retention that keeps it whole
 * (see chain.h, store.h kw_store_verify() and kw_store_prune()).
 *
 * Verification reads a (read-only) connection: every link in order, each recomputed from
 * the calls it covers, joined back to the values the chain encoded.  The first link that
 * fails is named with its batch, call ids, commit time and reason.
 *
 * Retention removes the oldest links with their calls and moves the chain's anchor (the
 * hash of the last link removed) forward, so the first remaining link still follows a
 * known hash.  A link is removed only after it was recomputed and found intact: pruning
 * never erases the evidence of tampering.
 */
#include "chain.h"
#include "err.h"
#include "store.h"
#include "store_int.h"
#include "timeutil.h"

#include <string.h>

/* The chain's anchor (table chain_anchor): where the remaining links start. */
struct anchor {
  bool set;
  int64_t batch, last_call, calls, moved;
  uint8_t hash[KW_CHAIN_HASH];
};

static const char links_sql[] =
    "SELECT batch, first_call, last_call, calls, prev, hash, committed FROM chain"
    " ORDER BY batch";
static const char calls_sql[] =
    "SELECT c.id, c.ts, k.fingerprint, cl.addr, e.method, e.template, c.path, c.status,"
    " c.req_bytes, c.resp_bytes, c.latency_us, a.value, h.value, c.source_id, c.flags"
    " FROM calls c JOIN endpoints e ON e.id = c.endpoint_id"
    " LEFT JOIN keys k ON k.id = c.key_id LEFT JOIN clients cl ON cl.id = c.client_id"
    " LEFT JOIN agents a ON a.id = c.agent_id LEFT JOIN hosts h ON h.id = c.host_id"
    " WHERE c.id BETWEEN ?1 AND ?2 ORDER BY c.id";

static struct kw_str col_str(sqlite3_stmt *s, int i) {
  const char *p = (const char *)sqlite3_column_text(s, i);
  return p ? kw_str_make(p, (size_t)sqlite3_column_bytes(s, i)) : KW_STR_NULL;
}

static int64_t col_opt(sqlite3_stmt *s, int i) {
  return sqlite3_column_type(s, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, i);
}

/* Recomputes one link; *n gets the calls found. */
static int relink(sqlite3 *db, struct kw_chain *ch, const uint8_t *prev, int64_t first,
                  int64_t last, uint8_t *hash, int64_t *n) {
  sqlite3_stmt *s;
  int rc, r = 0;

  *n = 0;
  if (sqlite3_prepare_v2(db, calls_sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, first);
  sqlite3_bind_int64(s, 2, last);
  if (kw_chain_begin(ch, prev) != 0)
    r = KW_ENOMEM;
  while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    const void *addr = sqlite3_column_blob(s, 3);
    int alen = sqlite3_column_bytes(s, 3);
    struct kw_chain_row row = {
        .id = sqlite3_column_int64(s, 0),
        .ts_us = sqlite3_column_int64(s, 1),
        .fp = sqlite3_column_bytes(s, 2) == KW_FP_LEN ? sqlite3_column_blob(s, 2) : NULL,
        .method = col_str(s, 4),
        .endpoint = col_str(s, 5),
        .path = col_str(s, 6),
        .status = sqlite3_column_int(s, 7),
        .req_bytes = col_opt(s, 8),
        .resp_bytes = col_opt(s, 9),
        .latency_us = col_opt(s, 10),
        .user_agent = col_str(s, 11),
        .host = col_str(s, 12),
        .source_id = (uint32_t)sqlite3_column_int64(s, 13),
        .flags = sqlite3_column_int(s, 14),
    };
    if (addr != NULL && (alen == 4 || alen == 16)) {
      row.client.family = alen == 4 ? 4 : 6;
      memcpy(row.client.a, addr, (size_t)alen);
    }
    r = kw_chain_add(ch, &row);
    (*n)++;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r == 0 ? kw_chain_end(ch, hash) : r;
}

/* Reads the anchor; a->set is false when nothing was ever pruned. */
static int read_anchor(sqlite3 *db, struct anchor *a) {
  sqlite3_stmt *s;
  int rc;

  memset(a, 0, sizeof(*a));
  if (sqlite3_prepare_v2(db, "SELECT batch, hash, last_call, calls, moved FROM chain_anchor",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    a->set = true;
    a->batch = sqlite3_column_int64(s, 0);
    if (sqlite3_column_bytes(s, 1) == KW_CHAIN_HASH)
      memcpy(a->hash, sqlite3_column_blob(s, 1), KW_CHAIN_HASH);
    else
      memset(a->hash, 0xff, KW_CHAIN_HASH); /* no link can follow a damaged anchor */
    a->last_call = sqlite3_column_int64(s, 2);
    a->calls = sqlite3_column_int64(s, 3);
    a->moved = sqlite3_column_int64(s, 4);
  }
  sqlite3_finalize(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : KW_ESTORE;
}

/* Whether the anchor is the one the last prune recorded (1), not (0), or KW_ESTORE. */
static int anchor_logged(sqlite3 *db, const struct anchor *a) {
  sqlite3_stmt *s;
  int rc, r = 0;

  if (sqlite3_prepare_v2(db, "SELECT anchor_batch, anchor FROM prunes ORDER BY id DESC LIMIT 1",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW)
    r = sqlite3_column_int64(s, 0) == a->batch &&
        sqlite3_column_bytes(s, 1) == KW_CHAIN_HASH &&
        memcmp(sqlite3_column_blob(s, 1), a->hash, KW_CHAIN_HASH) == 0;
  else if (rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_verify(struct kw_store *st, struct kw_verify *v) {
  sqlite3 *db = kw__store_db(st);
  uint8_t expect_prev[KW_CHAIN_HASH] = {0}, hash[KW_CHAIN_HASH];
  int64_t first_covered = -1, total = 0, before = 0;
  struct anchor a;
  struct kw_chain *ch;
  sqlite3_stmt *s;
  int rc, r = 0;

  memset(v, 0, sizeof(*v));
  if ((r = read_anchor(db, &a)) != 0)
    return r;
  if (a.set) {
    memcpy(expect_prev, a.hash, KW_CHAIN_HASH);
    memcpy(v->head, a.hash, KW_CHAIN_HASH);
    v->anchor_batch = a.batch;
    v->pruned_calls = a.calls;
    v->anchor_moved_us = a.moved;
    if ((r = anchor_logged(db, &a)) < 0)
      return r;
    if (r == 0) {
      v->bad_batch = -1;
      v->reason = "the chain's anchor is not the one the last prune recorded (it was moved "
                  "or rewritten outside a prune)";
      return 0;
    }
    r = 0;
  }
  if (kw_chain_create(&ch) != 0)
    return KW_ENOMEM;
  if (sqlite3_prepare_v2(db, links_sql, -1, &s, NULL) != SQLITE_OK) {
    kw_chain_destroy(ch);
    return KW_ESTORE;
  }
  while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t batch = sqlite3_column_int64(s, 0), first = sqlite3_column_int64(s, 1),
            last = sqlite3_column_int64(s, 2), calls = sqlite3_column_int64(s, 3), n;
    const void *prev = sqlite3_column_blob(s, 4), *stored = sqlite3_column_blob(s, 5);
    const char *why = NULL;

    if (first_covered < 0)
      first_covered = first;
    if (sqlite3_column_bytes(s, 4) != KW_CHAIN_HASH ||
        sqlite3_column_bytes(s, 5) != KW_CHAIN_HASH ||
        memcmp(prev, expect_prev, KW_CHAIN_HASH) != 0) {
      why = v->batches == 0 && a.set
                ? "it does not follow the chain's anchor (a batch after the last prune was "
                  "deleted, or its link rewritten)"
                : "it does not follow the link before it (a batch was deleted, reordered or "
                  "its link rewritten)";
    } else if ((r = relink(db, ch, prev, first, last, hash, &n)) != 0) {
      break;
    } else if (n < calls) {
      why = "calls of this batch are missing (deleted)";
    } else if (n > calls) {
      why = "the batch holds calls it did not commit (inserted)";
    } else if (memcmp(hash, stored, KW_CHAIN_HASH) != 0) {
      why = "its calls were changed or reordered (hash mismatch)";
    }
    if (why != NULL) {
      v->bad_batch = batch;
      v->bad_first = first;
      v->bad_last = last;
      v->bad_committed_us = sqlite3_column_int64(s, 6);
      v->reason = why;
      break;
    }
    memcpy(expect_prev, stored, KW_CHAIN_HASH);
    memcpy(v->head, stored, KW_CHAIN_HASH);
    v->batches++;
    v->calls += calls;
  }
  if (r == 0 && v->bad_batch == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  kw_chain_destroy(ch);
  if (r != 0 || v->bad_batch != 0)
    return r;
  v->has_head = v->batches > 0 || a.set;
  /* Calls no link covers: before the chain began (an older database), or added later. */
  if (sqlite3_prepare_v2(db, "SELECT count(*), count(CASE WHEN id < ?1 THEN 1 END) FROM calls",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, first_covered < 0 ? INT64_MAX : first_covered);
  if (sqlite3_step(s) == SQLITE_ROW) {
    total = sqlite3_column_int64(s, 0);
    before = sqlite3_column_int64(s, 1);
  }
  sqlite3_finalize(s);
  v->uncovered = total - v->calls;
  if (total - v->calls - before > 0) {
    v->bad_batch = -1;
    v->reason = "calls exist that no committed batch holds (inserted after the fact)";
  }
  return 0;
}

/* ---- retention ------------------------------------------------------------------------ */

/* The newest call time of the link's calls into *ts (-1: none). */
static int link_newest(sqlite3_stmt *q, int64_t first, int64_t last, int64_t *ts) {
  int rc;
  sqlite3_bind_int64(q, 1, first);
  sqlite3_bind_int64(q, 2, last);
  rc = sqlite3_step(q);
  *ts = rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL
            ? sqlite3_column_int64(q, 0)
            : -1;
  sqlite3_reset(q);
  return rc == SQLITE_ROW ? 0 : KW_ESTORE;
}

/* Removes the links in [lo_batch, hi_batch] with calls [lo, hi], older uncovered calls,
 * and moves the anchor to the last removed link (hash). */
static int remove_links(sqlite3 *db, const struct kw_prune *p, int64_t cutoff_us, int64_t lo,
                        int64_t hi, int64_t hi_batch, const uint8_t *hash) {
  int64_t now = kw_time_now();
  sqlite3_stmt *s;
  int rc;

  /* Calls below the first link were stored before the chain existed: by age only. */
  if (kw__store_run1(db, "DELETE FROM calls WHERE id < ?1 AND ts < ?2", "ii", NULL, lo,
                     cutoff_us) == KW_ESTORE ||
      kw__store_run1(db, "DELETE FROM alert_calls WHERE call_id BETWEEN ?1 AND ?2", "ii", NULL,
                     lo, hi) == KW_ESTORE ||
      kw__store_run1(db, "DELETE FROM calls WHERE id BETWEEN ?1 AND ?2", "ii", NULL, lo, hi) ==
          KW_ESTORE ||
      kw__store_run1(db, "DELETE FROM chain WHERE batch <= ?1", "i", NULL, hi_batch) ==
          KW_ESTORE)
    return KW_ESTORE;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO chain_anchor(id, batch, hash, last_call, calls, moved)"
                         " VALUES(1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET"
                         " batch = ?1, hash = ?2, last_call = ?3, calls = calls + ?4,"
                         " moved = ?5",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, hi_batch);
  sqlite3_bind_blob(s, 2, hash, KW_CHAIN_HASH, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, hi);
  sqlite3_bind_int64(s, 4, p->calls);
  sqlite3_bind_int64(s, 5, now);
  rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE)
    return KW_ESTORE;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO prunes(ts, cutoff, batches, calls, anchor_batch, anchor)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, now);
  sqlite3_bind_int64(s, 2, cutoff_us);
  sqlite3_bind_int64(s, 3, p->batches);
  sqlite3_bind_int64(s, 4, p->calls);
  sqlite3_bind_int64(s, 5, hi_batch);
  sqlite3_bind_blob(s, 6, hash, KW_CHAIN_HASH, SQLITE_STATIC);
  rc = sqlite3_step(s);
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? 0 : KW_ESTORE;
}

int kw_store_prune(struct kw_store *st, int64_t cutoff_us, int64_t max_calls,
                   struct kw_prune *p) {
  sqlite3 *db = kw__store_db(st);
  uint8_t expect_prev[KW_CHAIN_HASH] = {0}, hash[KW_CHAIN_HASH];
  int64_t lo = -1, hi = -1, hi_batch = 0, newest_batch = 0;
  sqlite3_stmt *links = NULL, *newest = NULL;
  struct kw_chain *ch = NULL;
  struct anchor a;
  int rc = SQLITE_DONE, r;

  memset(p, 0, sizeof(*p));
  if ((r = kw__store_begin(st)) != 0 || (r = read_anchor(db, &a)) != 0)
    return r;
  if (a.set)
    memcpy(expect_prev, a.hash, KW_CHAIN_HASH);
  /* The newest link stays: the chain keeps a head, and call ids (SQLite's max + 1) never
   * start again from 1 over an emptied table. */
  if ((r = kw__store_run1(db, "SELECT coalesce(max(batch), 0) FROM chain", "", &newest_batch)) <
      0)
    return r;
  r = 0;
  if (kw_chain_create(&ch) != 0)
    return KW_ENOMEM;
  if (sqlite3_prepare_v2(db, links_sql, -1, &links, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT max(ts) FROM calls WHERE id BETWEEN ?1 AND ?2", -1,
                         &newest, NULL) != SQLITE_OK) {
    r = KW_ESTORE;
    goto done;
  }
  while ((rc = sqlite3_step(links)) == SQLITE_ROW) {
    int64_t batch = sqlite3_column_int64(links, 0), first = sqlite3_column_int64(links, 1),
            last = sqlite3_column_int64(links, 2), calls = sqlite3_column_int64(links, 3),
            ts, n;
    const void *prev = sqlite3_column_blob(links, 4), *stored = sqlite3_column_blob(links, 5);

    if (batch >= newest_batch)
      break;
    if (max_calls > 0 && p->calls > 0 && p->calls + calls > max_calls) {
      p->more = true;
      break;
    }
    if ((r = link_newest(newest, first, last, &ts)) != 0)
      break;
    if (ts < 0) {
      p->bad_batch = batch;
      p->reason = "its calls are missing (deleted)";
      break;
    }
    if (ts >= cutoff_us)
      break;
    if (sqlite3_column_bytes(links, 4) != KW_CHAIN_HASH ||
        sqlite3_column_bytes(links, 5) != KW_CHAIN_HASH ||
        memcmp(prev, expect_prev, KW_CHAIN_HASH) != 0) {
      p->bad_batch = batch;
      p->reason = "it does not follow the link before it";
      break;
    }
    if ((r = relink(db, ch, prev, first, last, hash, &n)) != 0)
      break;
    if (n != calls || memcmp(hash, stored, KW_CHAIN_HASH) != 0) {
      p->bad_batch = batch;
      p->reason = "its calls do not match its link";
      break;
    }
    if (lo < 0)
      lo = first;
    hi = last;
    hi_batch = batch;
    memcpy(expect_prev, stored, KW_CHAIN_HASH);
    p->batches++;
    p->calls += calls;
  }
  if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(links);
  links = NULL;
  if (r == 0 && p->batches > 0)
    r = remove_links(db, p, cutoff_us, lo, hi, hi_batch, expect_prev);
  if (r == 0)
    p->anchor_batch = p->batches > 0 ? hi_batch : a.batch;
done:
  sqlite3_finalize(links);
  sqlite3_finalize(newest);
  kw_chain_destroy(ch);
  return r;
}
