/* store_keys.c — one key for the HTTP API, and keys page by page (keyview.h). */
#include "keyview.h"

#include "err.h"
#include "fingerprint.h"
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#define KEY_COLS                                                                          \
  "k.id, k.fingerprint, k.prefix, k.name, k.calls, k.errors, k.first_seen, k.last_seen,"   \
  " (SELECT count(*) FROM key_endpoints e WHERE e.key_id = k.id),"                        \
  " (SELECT count(*) FROM key_clients c WHERE c.key_id = k.id),"                          \
  " i.store, i.grp, i.permission"
#define KEY_FROM                                                                          \
  " FROM keys k LEFT JOIN key_inventory i ON i.key_id = k.id AND i.gone IS NULL"

static void key_info(sqlite3_stmt *s, struct kw_key_info *k) {
  memset(k, 0, sizeof(*k));
  k->id = sqlite3_column_int64(s, 0);
  if (sqlite3_column_bytes(s, 1) == KW_FP_LEN)
    memcpy(k->fp, sqlite3_column_blob(s, 1), KW_FP_LEN);
  k->prefix = (const char *)sqlite3_column_text(s, 2);
  k->name = (const char *)sqlite3_column_text(s, 3);
  k->calls = sqlite3_column_int64(s, 4);
  k->errors = sqlite3_column_int64(s, 5);
  k->first_us = sqlite3_column_int64(s, 6);
  k->last_us = sqlite3_column_int64(s, 7);
  k->endpoints = sqlite3_column_int64(s, 8);
  k->clients = sqlite3_column_int64(s, 9);
  k->store = (const char *)sqlite3_column_text(s, 10);
  k->group = (const char *)sqlite3_column_text(s, 11);
  k->permission = (const char *)sqlite3_column_text(s, 12);
}

int kw_store_key_find(struct kw_store *st, const char *k,
                      void (*cb)(const struct kw_key_info *key, void *ctx), void *ctx) {
  uint8_t fp[KW_FP_LEN];
  bool by_fp = strlen(k) == 2 * KW_FP_LEN && kw_fingerprint_from_hex(k, fp) == 0;
  sqlite3_stmt *s;
  int rc, n = 0, r;
  struct kw_key_info first;
  char prefix[64] = "", name[256] = "", store[128] = "", group[256] = "", perm[32] = "";

  if (sqlite3_prepare_v2(kw__store_db(st),
                         by_fp ? "SELECT " KEY_COLS KEY_FROM " WHERE k.fingerprint = ?1"
                               : "SELECT " KEY_COLS KEY_FROM
                                 " WHERE substr(k.prefix, 1, length(?1)) = ?1"
                                 " GROUP BY k.id LIMIT 2",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  if (by_fp)
    sqlite3_bind_blob(s, 1, fp, KW_FP_LEN, SQLITE_STATIC);
  else
    sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
  /* The first row's strings are copied: stepping on (to see whether a second key
   * matches) invalidates them. */
  while ((rc = sqlite3_step(s)) == SQLITE_ROW && ++n == 1) {
    key_info(s, &first);
#define KEEP(field, buf)                                                                  \
  do {                                                                                    \
    if (first.field) {                                                                    \
      snprintf(buf, sizeof(buf), "%s", first.field);                                      \
      first.field = buf;                                                                  \
    }                                                                                     \
  } while (0)
    KEEP(prefix, prefix);
    KEEP(name, name);
    KEEP(store, store);
    KEEP(group, group);
    KEEP(permission, perm);
#undef KEEP
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  else if (n == 0)
    r = KW_ENOTFOUND;
  else if (n > 1)
    r = KW_EINVAL;
  else {
    cb(&first, ctx);
    r = 0;
  }
  sqlite3_finalize(s);
  return r;
}

int kw_store_key_page(struct kw_store *st, int64_t offset, int64_t limit,
                      int (*cb)(const struct kw_key_info *key, void *ctx), void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT " KEY_COLS KEY_FROM
                         " GROUP BY k.id ORDER BY k.calls DESC, k.id LIMIT ?2 OFFSET ?1",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, offset);
  sqlite3_bind_int64(s, 2, limit);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_key_info k;
    key_info(s, &k);
    if (cb(&k, ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_key_hours(struct kw_store *st, int64_t key_id, int64_t since_us,
                       int (*cb)(int64_t hour_us, int64_t calls, int64_t errors, void *ctx),
                       void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  /* From the hourly rollup: a key's hours, whatever its number of calls. */
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT hour, calls, errors FROM key_hours"
                         " WHERE key_id = ?1 AND hour >= ?2 / 3600000000 ORDER BY hour",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, key_id);
  sqlite3_bind_int64(s, 2, since_us);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (cb(sqlite3_column_int64(s, 0) * 3600000000LL, sqlite3_column_int64(s, 1),
           sqlite3_column_int64(s, 2), ctx) != 0)
      break;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_key_endpoints(struct kw_store *st, int64_t key_id, int64_t limit,
                           int (*cb)(const char *method, const char *tmpl, int64_t calls,
                                     int64_t errors, int64_t last_us, void *ctx),
                           void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT e.method, e.template, ke.calls, ke.errors, ke.last_seen"
                         " FROM key_endpoints ke JOIN endpoints e ON e.id = ke.endpoint_id"
                         " WHERE ke.key_id = ?1 ORDER BY ke.calls DESC LIMIT ?2",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, key_id);
  sqlite3_bind_int64(s, 2, limit);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (cb((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
           sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4),
           ctx) != 0)
      break;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_key_clients(struct kw_store *st, int64_t key_id, int64_t limit,
                         int (*cb)(const struct kw_addr *a, int64_t calls, int64_t last_us,
                                   void *ctx),
                         void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT c.addr, kc.calls, kc.last_seen FROM key_clients kc"
                         " JOIN clients c ON c.id = kc.client_id WHERE kc.key_id = ?1"
                         " ORDER BY kc.calls DESC LIMIT ?2",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, key_id);
  sqlite3_bind_int64(s, 2, limit);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct kw_addr a = {0};
    int n = sqlite3_column_bytes(s, 0);
    if (n == 4 || n == 16) {
      a.family = n == 4 ? 4 : 6;
      memcpy(a.a, sqlite3_column_blob(s, 0), (size_t)n);
    }
    if (cb(&a, sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2), ctx) != 0)
      break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}

int kw_store_reviews(struct kw_store *st,
                     int (*cb)(int64_t id, int64_t created_us, int64_t since_us,
                               int64_t until_us, int64_t keys, int64_t findings, void *ctx),
                     void *ctx) {
  sqlite3_stmt *s;
  int rc, r = 0;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT id, created, since, until, keys, findings FROM reviews"
                         " ORDER BY created DESC, id DESC",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    if (cb(sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2),
           sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4), sqlite3_column_int64(s, 5),
           ctx) != 0)
      break;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = KW_ESTORE;
  sqlite3_finalize(s);
  return r;
}
