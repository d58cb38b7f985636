/* store_revoke.c — revocations, their key-store calls and the inventory (revocations.h).
 *
 * Like alerts, these rows are rare next to calls: statements are prepared per use and
 * every value is bound.  Nothing here holds a secret: rows carry the key's fingerprint
 * and display prefix, requests are summaries ("DELETE /api/api-key/12").
 */
#include "revocations.h"

#include "err.h"
#include "escape.h"
#include "fingerprint.h"
#include "store_int.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

#define run1 kw__store_run1

int kw_store_revocation_add(struct kw_store *st, const struct kw_revocation_new *n,
                            int64_t *id) {
  sqlite3 *db = kw__store_db(st);
  int64_t key = kw__store_key_id(st, n->fp), now = kw_time_now();
  int r;

  if (key < 0)
    return KW_ENOTFOUND;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  r = run1(db,
           "INSERT INTO revocations(key_id, rule, severity, origin, decided_by, store, reason,"
           " decided, event_ts, updated, dry_run) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
           " ?8, ?10) RETURNING id",
           "itittttiii", id, key, n->rule, (int64_t)n->severity, n->origin, n->decided_by,
           n->store, n->reason, now, n->event_us > 0 ? n->event_us : now,
           (int64_t)(n->dry_run ? 1 : 0));
  return r == 0 ? 0 : KW_ESTORE;
}

static const char *col_text(sqlite3_stmt *s, int i) {
  return (const char *)sqlite3_column_text(s, i);
}

int kw_store_revocations(struct kw_store *st, const struct kw_revocations_query *q,
                         int (*cb)(const struct kw_revocation *r, void *ctx), void *ctx) {
  sqlite3 *db = kw__store_db(st);
  sqlite3_stmt *s;
  uint8_t fp[KW_FP_LEN];
  bool by_fp = q->key != NULL && kw_fingerprint_from_hex(q->key, fp) == 0;
  int rc, r = 0;
  char sql[1400];

  snprintf(sql, sizeof(sql),
           "SELECT r.id, coalesce(r.alert_id, 0), coalesce(r.key_id, 0), k.prefix, k.name,"
           " k.fingerprint, r.rule, r.severity, r.origin, r.decided_by, r.store, r.reason,"
           " r.decided, r.event_ts, r.state, r.dry_run, r.attempts,"
           " coalesce(r.next_try, 0), coalesce(r.give_up_at, 0), r.store_ref, r.result,"
           " r.updated FROM revocations r LEFT JOIN keys k ON k.id = r.key_id"
           " WHERE (?1 IS NULL OR r.state = ?1 OR (?1 = 'open' AND r.state IN"
           " ('decided', 'queued')))"
           " AND (?2 IS NULL OR k.fingerprint = ?2)"
           " AND (?3 IS NULL OR substr(k.prefix, 1, length(?3)) = ?3"
           "      OR substr(?3, 1, length(k.prefix)) = k.prefix)"
           " AND (?4 = 0 OR r.id = ?4)"
           " AND (?5 = 0 OR (r.state = 'queued' AND coalesce(r.next_try, 0) <= ?5))"
           " ORDER BY %s LIMIT ?6",
           q->due_us > 0 ? "r.next_try, r.id" : q->oldest_first ? "r.event_ts, r.id" : "r.id DESC");
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  if (q->state)
    sqlite3_bind_text(s, 1, q->state, -1, SQLITE_STATIC);
  if (by_fp)
    sqlite3_bind_blob(s, 2, fp, KW_FP_LEN, SQLITE_STATIC);
  else if (q->key)
    sqlite3_bind_text(s, 3, q->key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 4, q->id);
  sqlite3_bind_int64(s, 5, q->due_us);
  sqlite3_bind_int64(s, 6, q->limit > 0 ? q->limit : -1);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_revocation v = {
        .id = sqlite3_column_int64(s, 0),
        .alert_id = sqlite3_column_int64(s, 1),
        .key_id = sqlite3_column_int64(s, 2),
        .prefix = col_text(s, 3),
        .name = col_text(s, 4),
        .fp = sqlite3_column_bytes(s, 5) == KW_FP_LEN ? sqlite3_column_blob(s, 5) : NULL,
        .rule = col_text(s, 6),
        .severity = sqlite3_column_int(s, 7),
        .origin = col_text(s, 8),
        .decided_by = col_text(s, 9),
        .store = col_text(s, 10),
        .reason = col_text(s, 11),
        .decided_us = sqlite3_column_int64(s, 12),
        .event_us = sqlite3_column_int64(s, 13),
        .state = col_text(s, 14),
        .dry_run = sqlite3_column_int(s, 15) != 0,
        .attempts = sqlite3_column_int64(s, 16),
        .next_try_us = sqlite3_column_int64(s, 17),
        .give_up_us = sqlite3_column_int64(s, 18),
        .store_ref = col_text(s, 19),
        .result = col_text(s, 20),
        .updated_us = sqlite3_column_int64(s, 21),
    };
    if ((r = cb(&v, ctx)) != 0)
      break;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r < 0 ? r : 0;
}

int kw_store_revocation_update(struct kw_store *st, int64_t id,
                               const struct kw_revocation_update *u) {
  sqlite3 *db = kw__store_db(st);
  int r;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  r = run1(db,
           "UPDATE revocations SET state = coalesce(?2, state), result = coalesce(?3, result),"
           " store = coalesce(?4, store), store_ref = coalesce(?5, store_ref),"
           " dry_run = CASE WHEN ?6 < 0 THEN dry_run ELSE ?6 END,"
           " attempts = CASE WHEN ?7 < 0 THEN attempts ELSE ?7 END,"
           " next_try = CASE WHEN ?8 < 0 THEN next_try ELSE ?8 END,"
           " give_up_at = CASE WHEN ?9 < 0 THEN give_up_at ELSE ?9 END,"
           " updated = ?10 WHERE id = ?1 RETURNING id",
           "itttti" "iiii", NULL, id, u->state, u->result, u->store, u->store_ref,
           (int64_t)u->dry_run, u->attempts, u->next_try_us, u->give_up_us, kw_time_now());
  return r == 1 ? KW_ENOTFOUND : r;
}

int kw_store_revocation_call(struct kw_store *st, int64_t revocation_id,
                             const struct kw_revocation_call *c) {
  sqlite3 *db = kw__store_db(st);
  int r;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  r = run1(db,
           "INSERT INTO revocation_calls(revocation_id, ts, store, request, status,"
           " duration_us, result, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
           "iittiitt", NULL, revocation_id, kw_time_now(), c->store, c->request,
           (int64_t)c->status, c->duration_us, c->result, c->detail);
  return r < 0 ? r : 0;
}

int kw_store_revocation_calls(struct kw_store *st, int64_t revocation_id,
                              int (*cb)(int64_t ts_us, const struct kw_revocation_call *c,
                                        void *ctx),
                              void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT ts, store, request, status, duration_us, result, detail"
                         " FROM revocation_calls WHERE revocation_id = ? ORDER BY id",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, revocation_id);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_revocation_call c = {
        .store = col_text(s, 1),
        .request = col_text(s, 2),
        .status = sqlite3_column_int(s, 3),
        .duration_us = sqlite3_column_int64(s, 4),
        .result = col_text(s, 5),
        .detail = col_text(s, 6),
    };
    if ((r = cb(sqlite3_column_int64(s, 0), &c, ctx)) != 0)
      break;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r < 0 ? r : 0;
}

int kw_store_revocations_since(struct kw_store *st, int64_t since_us, int64_t *n) {
  int r = run1(kw__store_db(st),
               "SELECT count(*) FROM revocations WHERE origin = 'rule' AND dry_run = 0"
               " AND state IN ('queued', 'done', 'gone', 'failed') AND event_ts >= ?1",
               "i", n, since_us);
  return r < 0 ? r : 0;
}

int kw_store_revocation_last(struct kw_store *st, int64_t key_id, int64_t *when_us) {
  int r = run1(kw__store_db(st),
               "SELECT coalesce(max(event_ts), 0) FROM revocations WHERE key_id = ?1"
               " AND (state IN ('queued', 'done', 'gone', 'failed') OR dry_run = 1)",
               "i", when_us, key_id);
  return r < 0 ? r : 0;
}

int kw_store_revoked_keys(struct kw_store *st, void (*cb)(const uint8_t *fp, void *ctx),
                          void *ctx) {
  sqlite3_stmt *s;
  int rc;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT DISTINCT k.fingerprint FROM revocations r JOIN keys k"
                         " ON k.id = r.key_id WHERE r.state IN ('done', 'gone')",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (sqlite3_column_bytes(s, 0) == KW_FP_LEN)
      cb(sqlite3_column_blob(s, 0), ctx);
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? 0 : KW_ESTORE;
}

/* ---- inventory ---------------------------------------------------------------------- */

int kw_store_inventory_put(struct kw_store *st, const struct kw_inventory_item *it,
                           int64_t synced_us) {
  sqlite3 *db = kw__store_db(st);
  int64_t key = it->fp ? kw__store_key_id(st, it->fp) : -1, n = 0;
  int r;

  if ((r = kw__store_begin(st)) != 0)
    return r;
  /* Only a prefix (Metabase): link when exactly one stored key has it (Metabase keeps
   * them unique).  A store that showed the key itself is linked by fingerprint only. */
  if (key < 0 && it->fp == NULL && it->prefix != NULL && it->prefix[0] != '\0') {
    r = run1(db, "SELECT count(*) FROM keys WHERE prefix = ?1", "t", &n, it->prefix);
    if (r == 0 && n == 1)
      r = run1(db, "SELECT id FROM keys WHERE prefix = ?1", "t", &key, it->prefix);
    if (r < 0)
      return r;
  }
  r = run1(db,
           "INSERT INTO key_inventory(store, ref, name, grp, created, prefix, key_id,"
           " permission, synced, gone, own) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL,"
           " ?10) ON CONFLICT(store, ref) DO UPDATE SET name = excluded.name,"
           " grp = excluded.grp, created = excluded.created, prefix = excluded.prefix,"
           " key_id = coalesce(excluded.key_id, key_id), permission = excluded.permission,"
           " synced = excluded.synced, gone = NULL, own = excluded.own",
           "ttttttntii", NULL, it->store, it->ref, it->name, it->group, it->created, it->prefix,
           key, it->permission, synced_us, (int64_t)(it->own ? 1 : 0));
  if (r < 0)
    return r;
  if (key >= 0 && it->name != NULL && it->name[0] != '\0')
    r = run1(db, "UPDATE keys SET name = ?2 WHERE id = ?1 AND name IS NULL", "it", NULL, key,
             it->name);
  return r < 0 ? r : 0;
}

int kw_store_inventory_sweep(struct kw_store *st, const char *store, int64_t synced_us) {
  int r;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  r = run1(kw__store_db(st),
           "UPDATE key_inventory SET gone = ?3 WHERE store = ?1 AND synced < ?2"
           " AND gone IS NULL",
           "tii", NULL, store, synced_us, kw_time_now());
  return r < 0 ? r : 0;
}

int kw_store_inventory(struct kw_store *st,
                       int (*cb)(const struct kw_inventory_row *r, void *ctx), void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT i.store, i.ref, i.name, i.grp, i.created, i.permission,"
                         " i.prefix, coalesce(i.key_id, 0), i.synced, coalesce(i.gone, 0),"
                         " coalesce(k.calls, 0), coalesce(k.last_seen, 0)"
                         " FROM key_inventory i LEFT JOIN keys k ON k.id = i.key_id"
                         " ORDER BY i.store, i.name, i.ref",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_inventory_row v = {
        .store = col_text(s, 0),
        .ref = col_text(s, 1),
        .name = col_text(s, 2),
        .group = col_text(s, 3),
        .created = col_text(s, 4),
        .permission = col_text(s, 5),
        .prefix = col_text(s, 6),
        .key_id = sqlite3_column_int64(s, 7),
        .synced_us = sqlite3_column_int64(s, 8),
        .gone_us = sqlite3_column_int64(s, 9),
        .calls = sqlite3_column_int64(s, 10),
        .last_us = sqlite3_column_int64(s, 11),
    };
    if ((r = cb(&v, ctx)) != 0)
      break;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r < 0 ? r : 0;
}

int kw_store_key_attrs(struct kw_store *st,
                       void (*cb)(const uint8_t *fp, const char *group, const char *permission,
                                  void *ctx),
                       void *ctx) {
  sqlite3_stmt *s;
  int rc;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT k.fingerprint, i.grp, i.permission FROM key_inventory i"
                         " JOIN keys k ON k.id = i.key_id WHERE i.gone IS NULL"
                         " AND (i.grp IS NOT NULL OR i.permission IS NOT NULL)"
                         " ORDER BY i.synced, i.store, i.ref",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (sqlite3_column_bytes(s, 0) == KW_FP_LEN)
      cb(sqlite3_column_blob(s, 0), col_text(s, 1), col_text(s, 2), ctx);
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? 0 : KW_ESTORE;
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void json_time(FILE *f, int64_t us) {
  char buf[40];
  if (us <= 0) {
    fputs("null", f);
    return;
  }
  kw_time_format(us, buf, sizeof(buf));
  kw_json_cstr(f, buf);
}

static void json_opt(FILE *f, const char *s) {
  if (s == NULL)
    fputs("null", f);
  else
    kw_json_cstr(f, s);
}

void kw_revocation_json(FILE *f, const struct kw_revocation *r) {
  char hex[2 * KW_FP_LEN + 1] = "";
  if (r->fp)
    for (int i = 0; i < KW_FP_LEN; i++)
      snprintf(hex + 2 * i, 3, "%02x", r->fp[i]);
  fprintf(f, "{\"id\": %lld, \"alert_id\": ", (long long)r->id);
  if (r->alert_id > 0)
    fprintf(f, "%lld", (long long)r->alert_id);
  else
    fputs("null", f);
  fputs(", \"key_prefix\": ", f);
  json_opt(f, r->prefix);
  fputs(", \"fingerprint\": ", f);
  json_opt(f, r->fp ? hex : NULL);
  fputs(", \"name\": ", f);
  json_opt(f, r->name);
  fputs(", \"rule\": ", f);
  json_opt(f, r->rule);
  fputs(", \"severity\": ", f);
  json_opt(f, r->severity >= 0 && r->severity <= 4
                  ? (const char *[]){"info", "low", "medium", "high", "critical"}[r->severity]
                  : NULL);
  fputs(", \"origin\": ", f);
  json_opt(f, r->origin);
  fputs(", \"decided_by\": ", f);
  json_opt(f, r->decided_by);
  fputs(", \"store\": ", f);
  json_opt(f, r->store);
  fputs(", \"reason\": ", f);
  json_opt(f, r->reason);
  fputs(", \"decided\": ", f);
  json_time(f, r->decided_us);
  fputs(", \"event_time\": ", f);
  json_time(f, r->event_us);
  fputs(", \"state\": ", f);
  json_opt(f, r->state);
  fprintf(f, ", \"dry_run\": %s, \"attempts\": %lld, \"next_try\": ",
          r->dry_run ? "true" : "false", (long long)r->attempts);
  json_time(f, r->state && strcmp(r->state, "queued") == 0 ? r->next_try_us : 0);
  fputs(", \"give_up_at\": ", f);
  json_time(f, r->give_up_us);
  fputs(", \"store_ref\": ", f);
  json_opt(f, r->store_ref);
  fputs(", \"result\": ", f);
  json_opt(f, r->result);
  fputs(", \"updated\": ", f);
  json_time(f, r->updated_us);
  fputc('}', f);
}
