/* store_query.c — the read side of the store: keys, calls, stats (see store.h).
 *
 * Runs on whichever thread owns the kw_store, usually a read-only connection of the CLI
 * or the HTTP API.  Statements here are prepared per query: each runs once per command.
 * SQL text is fixed; every value is a bound parameter.
 */
#include "err.h"
#include "fingerprint.h"
#include "store.h"
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kw_store_keys(struct kw_store *st, int (*cb)(const struct kw_key_row *row, void *ctx),
                  void *ctx) {
  static const char sql[] =
      "SELECT k.fingerprint, k.prefix, k.name, k.calls, k.errors, k.bytes, k.first_seen,"
      " k.last_seen,"
      " (SELECT count(*) FROM key_endpoints e WHERE e.key_id = k.id),"
      " (SELECT count(*) FROM key_clients c WHERE c.key_id = k.id)"
      " FROM keys k WHERE k.calls > 0"
      " UNION ALL"
      " SELECT * FROM (SELECT NULL, NULL, NULL, count(*) AS n,"
      " sum(status >= 400 OR status = 0), coalesce(sum(resp_bytes), 0), min(ts), max(ts),"
      " count(DISTINCT endpoint_id), count(DISTINCT client_id)"
      " FROM calls WHERE key_id IS NULL) WHERE n > 0"
      " ORDER BY 4 DESC, 2";
  sqlite3 *db = kw__store_db(st);
  sqlite3_stmt *s;
  int rc, r = 0;

  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_key_row row = {0};
    const void *fp = sqlite3_column_blob(s, 0);
    if (fp != NULL && sqlite3_column_bytes(s, 0) == KW_FP_LEN)
      memcpy(row.fp, fp, KW_FP_LEN);
    row.prefix = (const char *)sqlite3_column_text(s, 1);
    row.name = (const char *)sqlite3_column_text(s, 2);
    row.calls = sqlite3_column_int64(s, 3);
    row.errors = sqlite3_column_int64(s, 4);
    row.bytes = sqlite3_column_int64(s, 5);
    row.first_us = sqlite3_column_int64(s, 6);
    row.last_us = sqlite3_column_int64(s, 7);
    row.endpoints = sqlite3_column_int64(s, 8);
    row.clients = sqlite3_column_int64(s, 9);
    if (cb(&row, ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_calls(struct kw_store *st, const struct kw_calls_query *q,
                   int (*cb)(const struct kw_call_row *row, void *ctx), void *ctx) {
  /* The inner query takes the newest `limit` rows; the outer puts them in time order. */
  static const char head[] =
      "SELECT * FROM (SELECT c.ts, k.prefix, k.fingerprint, cl.addr, e.method, c.path,"
      " e.template, a.value, h.value, s.name, c.status, c.resp_bytes, c.req_bytes,"
      " c.latency_us, c.id"
      " FROM calls c JOIN endpoints e ON e.id = c.endpoint_id"
      " LEFT JOIN keys k ON k.id = c.key_id LEFT JOIN clients cl ON cl.id = c.client_id"
      " LEFT JOIN agents a ON a.id = c.agent_id LEFT JOIN hosts h ON h.id = c.host_id"
      " LEFT JOIN sources s ON s.id = c.source_id WHERE 1";
  static const char by_key[] =
      " AND c.key_id IN (SELECT id FROM keys WHERE substr(prefix, 1, length(?1)) = ?1"
      " OR lower(hex(fingerprint)) = lower(?1))";
  static const char anon[] = " AND c.key_id IS NULL";
  static const char one_key[] = " AND c.key_id = ?7";
  static const char since[] = " AND c.ts >= ?2";
  static const char until[] = " AND c.ts < ?3";
  static const char before[] = " AND (c.ts < ?5 OR (c.ts = ?5 AND c.id < ?6))";
  static const char tail[] = " ORDER BY c.ts DESC, c.id DESC LIMIT ?4) ORDER BY 1, 15";
  char sql[sizeof(head) + sizeof(by_key) + sizeof(anon) + sizeof(since) + sizeof(until) +
           sizeof(before) + sizeof(one_key) + sizeof(tail)];
  sqlite3 *db = kw__store_db(st);
  sqlite3_stmt *s;
  int rc, r = 0;

  snprintf(sql, sizeof(sql), "%s%s%s%s%s%s%s%s", head, q->key ? by_key : "",
           q->anonymous_only ? anon : "", q->key_id ? one_key : "", q->since_us ? since : "",
           q->until_us ? until : "", q->before_id ? before : "", tail);
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  if (q->key)
    sqlite3_bind_text(s, 1, q->key, -1, SQLITE_STATIC);
  if (q->since_us)
    sqlite3_bind_int64(s, 2, q->since_us);
  if (q->until_us)
    sqlite3_bind_int64(s, 3, q->until_us);
  sqlite3_bind_int64(s, 4, q->limit > 0 ? q->limit : -1);
  if (q->before_id) {
    sqlite3_bind_int64(s, 5, q->before_us);
    sqlite3_bind_int64(s, 6, q->before_id);
  }
  if (q->key_id)
    sqlite3_bind_int64(s, 7, q->key_id);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_call_row row;
    kw__store_call_row(s, &row);
    if (cb(&row, ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

void kw__store_call_row(sqlite3_stmt *s, struct kw_call_row *row) {
  const void *addr = sqlite3_column_blob(s, 3);
  int alen = sqlite3_column_bytes(s, 3);
  memset(row, 0, sizeof(*row));
  row->ts_us = sqlite3_column_int64(s, 0);
  row->prefix = (const char *)sqlite3_column_text(s, 1);
  row->fp = sqlite3_column_bytes(s, 2) == KW_FP_LEN ? sqlite3_column_blob(s, 2) : NULL;
  if (addr != NULL && (alen == 4 || alen == 16)) {
    row->client.family = alen == 4 ? 4 : 6;
    memcpy(row->client.a, addr, (size_t)alen);
  }
  row->method = (const char *)sqlite3_column_text(s, 4);
  row->path = (const char *)sqlite3_column_text(s, 5);
  row->endpoint = (const char *)sqlite3_column_text(s, 6);
  row->user_agent = (const char *)sqlite3_column_text(s, 7);
  row->host = (const char *)sqlite3_column_text(s, 8);
  row->source = (const char *)sqlite3_column_text(s, 9);
  row->status = sqlite3_column_int(s, 10);
  row->resp_bytes = sqlite3_column_type(s, 11) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 11);
  row->req_bytes = sqlite3_column_type(s, 12) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 12);
  row->latency_us = sqlite3_column_type(s, 13) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 13);
  row->id = sqlite3_column_count(s) > 14 ? sqlite3_column_int64(s, 14) : 0;
}

static int push(struct kw_count **v, size_t *n, const char *label, int64_t count) {
  struct kw_count *nv = realloc(*v, (*n + 1) * sizeof(**v));
  if (nv == NULL)
    return KW_ENOMEM;
  *v = nv;
  nv[*n].label = strdup(label);
  nv[*n].n = count;
  if (nv[*n].label == NULL)
    return KW_ENOMEM;
  (*n)++;
  return 0;
}

/* Runs a two-column (label, count) query into a count list. */
static int counts(sqlite3 *db, const char *sql, int64_t limit, struct kw_count **v,
                  size_t *n) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, limit);
  while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *label = (const char *)sqlite3_column_text(s, 0);
    r = push(v, n, label ? label : "", sqlite3_column_int64(s, 1));
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_stats(struct kw_store *st, size_t top_n, struct kw_stats *out) {
  sqlite3 *db = kw__store_db(st);
  sqlite3_stmt *s;
  int r = KW_ESTORE;

  memset(out, 0, sizeof(*out));
  /* Per-key totals cover keyed calls without a scan; anonymous calls use the index. */
  if (sqlite3_prepare_v2(db,
                         "SELECT (SELECT coalesce(sum(calls), 0) FROM keys)"
                         " + (SELECT count(*) FROM calls WHERE key_id IS NULL),"
                         " (SELECT count(*) FROM keys WHERE calls > 0),"
                         " (SELECT count(*) FROM clients),"
                         " (SELECT coalesce(sum(resp_bytes), 0) FROM calls),"
                         " (SELECT coalesce(sum(malformed), 0) FROM sources),"
                         " (SELECT coalesce(sum(lines), 0) FROM sources),"
                         " (SELECT count(*) FROM calls WHERE key_id IS NULL),"
                         " (SELECT min(ts) FROM calls), (SELECT max(ts) FROM calls)",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  if (sqlite3_step(s) == SQLITE_ROW) {
    out->calls = sqlite3_column_int64(s, 0);
    out->keys = sqlite3_column_int64(s, 1);
    out->clients = sqlite3_column_int64(s, 2);
    out->bytes = sqlite3_column_int64(s, 3);
    out->malformed = sqlite3_column_int64(s, 4);
    out->lines = sqlite3_column_int64(s, 5);
    out->anonymous = sqlite3_column_int64(s, 6);
    out->first_us = sqlite3_column_int64(s, 7);
    out->last_us = sqlite3_column_int64(s, 8);
    r = 0;
  }
  sqlite3_finalize(s);
  if (r == 0)
    r = counts(db,
               "SELECT status, count(*) FROM calls GROUP BY status ORDER BY status LIMIT ?1",
               1000, &out->by_status, &out->n_status);
  if (r == 0)
    r = counts(db,
               "SELECT e.method, count(*) FROM calls c JOIN endpoints e"
               " ON e.id = c.endpoint_id GROUP BY e.method ORDER BY 2 DESC, 1 LIMIT ?1",
               1000, &out->by_method, &out->n_method);
  if (r == 0)
    r = counts(db,
               "SELECT e.method || ' ' || e.template, n FROM (SELECT endpoint_id,"
               " count(*) AS n FROM calls GROUP BY endpoint_id) x JOIN endpoints e"
               " ON e.id = x.endpoint_id ORDER BY n DESC, 1 LIMIT ?1",
               (int64_t)top_n, &out->top_endpoints, &out->n_endpoints);
  if (r != 0)
    kw_store_stats_free(out);
  return r;
}

void kw_store_stats_free(struct kw_stats *s) {
  struct kw_count *lists[] = {s->by_status, s->by_method, s->top_endpoints};
  size_t ns[] = {s->n_status, s->n_method, s->n_endpoints};
  for (size_t l = 0; l < 3; l++) {
    for (size_t i = 0; i < ns[l]; i++)
      free(lists[l][i].label);
    free(lists[l]);
  }
  memset(s, 0, sizeof(*s));
}

int kw_store_daemon(struct kw_store *st, struct kw_daemon_row *row) {
  sqlite3_stmt *s;
  int rc;

  memset(row, 0, sizeof(*row));
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT pid, started, heartbeat, config FROM daemon WHERE id = 1", -1,
                         &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const char *cfg = (const char *)sqlite3_column_text(s, 3);
    row->pid = sqlite3_column_int64(s, 0);
    row->started_us = sqlite3_column_int64(s, 1);
    row->heartbeat_us = sqlite3_column_int64(s, 2);
    snprintf(row->config, sizeof(row->config), "%s", cfg ? cfg : "");
  }
  sqlite3_finalize(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : KW_ESTORE;
}

int kw_store_status(struct kw_store *st,
                    int (*cb)(const struct kw_status_row *row, void *ctx), void *ctx) {
  static const char sql[] =
      "SELECT s.name, s.kind, s.format, s.lines, s.calls, s.malformed, s.bytes,"
      " t.state, t.updated, t.backlog, t.drops, t.rate, t.lag_p50_us, t.lag_p99_us, t.detail,"
      " (SELECT count(*) FROM gaps g WHERE g.source_id = s.id),"
      " (SELECT coalesce(sum(bytes), 0) FROM gaps g WHERE g.source_id = s.id),"
      " (SELECT sum(offset) FROM positions p WHERE p.source_id = s.id),"
      " (SELECT count(*) FROM positions p WHERE p.source_id = s.id)"
      " FROM sources s LEFT JOIN source_status t ON t.source_id = s.id ORDER BY s.name";
  sqlite3_stmt *s;
  int rc, r = 0;

  if (sqlite3_prepare_v2(kw__store_db(st), sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_status_row row = {
        .name = (const char *)sqlite3_column_text(s, 0),
        .kind = (const char *)sqlite3_column_text(s, 1),
        .format = (const char *)sqlite3_column_text(s, 2),
        .lines = sqlite3_column_int64(s, 3),
        .calls = sqlite3_column_int64(s, 4),
        .malformed = sqlite3_column_int64(s, 5),
        .bytes = sqlite3_column_int64(s, 6),
        .state = (const char *)sqlite3_column_text(s, 7),
        .updated_us = sqlite3_column_int64(s, 8),
        .backlog = sqlite3_column_int64(s, 9),
        .drops = sqlite3_column_int64(s, 10),
        .rate = sqlite3_column_double(s, 11),
        .lag_p50_us = sqlite3_column_type(s, 12) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 12),
        .lag_p99_us = sqlite3_column_type(s, 13) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 13),
        .detail = (const char *)sqlite3_column_text(s, 14),
        .gaps = sqlite3_column_int64(s, 15),
        .gap_bytes = sqlite3_column_int64(s, 16),
        .offset = sqlite3_column_type(s, 17) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 17),
        .files = sqlite3_column_int64(s, 18),
    };
    if (cb(&row, ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}
