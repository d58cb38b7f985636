/* store_chain.c — verifying the audit hash chain (see chain.h, store.h kw_store_verify).
 *
 * Reads a (read-only) connection: every link in order, each recomputed from the calls it
 * covers, joined back to the values the chain encoded.  The first link that fails is
 * named with its batch, call ids, commit time and reason.
 */
#include "chain.h"
#include "err.h"
#include "store.h"
#include "store_int.h"

#include <string.h>

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

int kw_store_verify(struct kw_store *st, struct kw_verify *v) {
  sqlite3 *db = kw__store_db(st);
  uint8_t expect_prev[KW_CHAIN_HASH] = {0}, hash[KW_CHAIN_HASH];
  int64_t first_covered = -1, total = 0, before = 0;
  struct kw_chain *ch;
  sqlite3_stmt *s;
  int rc, r = 0;

  memset(v, 0, sizeof(*v));
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
      why = "it does not follow the link before it (a batch was deleted, reordered or "
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
    v->batches++;
    v->calls += calls;
  }
  if (r == 0 && v->bad_batch == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  kw_chain_destroy(ch);
  if (r != 0 || v->bad_batch != 0)
    return r;
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
