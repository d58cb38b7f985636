/* store_usage.c — per-key usage for permission reviews, and stored reviews (usage.h).
 *
 * Two ordered streams are merged: the keys (by id, with their key-store listing) and the
 * period's rollups summed per key and endpoint (by key id).  Per key, two indexed
 * lookups add the last call before the period and the client addresses of the period.
 * Memory: one key's endpoints at a time.
 */
#include "usage.h"

#include "err.h"
#include "store_int.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

#define DAY_US (86400LL * 1000000)

struct eps {
  struct kw_usage_endpoint *v;
  char **strs; /* 2 per endpoint: method, template */
  size_t n, cap;
};

static void eps_clear(struct eps *e) {
  for (size_t i = 0; i < 2 * e->n; i++)
    free(e->strs[i]);
  e->n = 0;
}

static int eps_push(struct eps *e, sqlite3_stmt *s) {
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 64;
    struct kw_usage_endpoint *nv = realloc(e->v, cap * sizeof(*nv));
    char **ns;
    if (nv == NULL)
      return KW_ENOMEM;
    e->v = nv;
    if ((ns = realloc(e->strs, 2 * cap * sizeof(*ns))) == NULL)
      return KW_ENOMEM;
    e->strs = ns;
    e->cap = cap;
  }
  char *m = strdup((const char *)sqlite3_column_text(s, 1));
  char *t = strdup((const char *)sqlite3_column_text(s, 2));
  if (m == NULL || t == NULL) {
    free(m);
    free(t);
    return KW_ENOMEM;
  }
  e->strs[2 * e->n] = m;
  e->strs[2 * e->n + 1] = t;
  e->v[e->n++] = (struct kw_usage_endpoint){
      .method = m,
      .template = t,
      .calls = sqlite3_column_int64(s, 3),
      .ok = sqlite3_column_int64(s, 4),
      .denied = sqlite3_column_int64(s, 5),
      .first_us = sqlite3_column_int64(s, 6),
      .last_us = sqlite3_column_int64(s, 7),
  };
  return 0;
}

static const char *text(sqlite3_stmt *s, int i) {
  return (const char *)sqlite3_column_text(s, i);
}

static int64_t iso(const char *s) {
  int64_t us = 0;
  if (s == NULL || kw_time_parse_iso8601(s, strlen(s), &us) != 0)
    return 0;
  return us;
}

static int64_t one(sqlite3_stmt *s, int64_t a, int64_t b) {
  int64_t v = 0;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, a);
  sqlite3_bind_int64(s, 2, b);
  if (sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int64(s, 0);
  return v;
}

int kw_store_usage(struct kw_store *st, int64_t since_us, int64_t until_us, const char *key,
                   int (*cb)(const struct kw_key_usage *k, void *ctx), void *ctx) {
  sqlite3 *db = kw__store_db(st);
  sqlite3_stmt *keys = NULL, *use = NULL, *before = NULL, *clients = NULL, *unseen = NULL;
  sqlite3_stmt *byprefix = NULL;
  struct eps eps = {0};
  int rc, r = KW_ESTORE, stop = 0;
  bool have_use = false;
  int64_t d0 = since_us / DAY_US, d1 = (until_us - 1) / DAY_US;

  if (sqlite3_prepare_v2(db,
                         "SELECT k.id, k.fingerprint, k.prefix, k.name, k.first_seen,"
                         " k.last_seen, i.store, i.ref, i.grp, i.permission, i.created, i.own"
                         " FROM keys k LEFT JOIN key_inventory i"
                         " ON i.key_id = k.id AND i.gone IS NULL"
                         " WHERE ?1 IS NULL OR substr(k.prefix, 1, length(?1)) = ?1"
                         " GROUP BY k.id ORDER BY k.id",
                         -1, &keys, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT d.key_id, e.method, e.template, sum(d.calls), sum(d.ok),"
                         " sum(d.denied), min(d.first_seen), max(d.last_seen)"
                         " FROM key_endpoint_days d JOIN endpoints e ON e.id = d.endpoint_id"
                         " WHERE d.day >= ?1 AND d.day <= ?2"
                         " GROUP BY d.key_id, d.endpoint_id ORDER BY d.key_id",
                         -1, &use, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT max(last_seen) FROM key_endpoint_days"
                         " WHERE key_id = ?1 AND day < ?2",
                         -1, &before, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT count(*) FROM key_clients WHERE key_id = ?1"
                         " AND last_seen >= ?2",
                         -1, &clients, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT store, ref, name, grp, permission, created, prefix, own"
                         " FROM key_inventory WHERE key_id IS NULL AND gone IS NULL"
                         " AND (?1 IS NULL OR substr(prefix, 1, length(?1)) = ?1)"
                         " AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.prefix ="
                         " key_inventory.prefix) ORDER BY store, ref",
                         -1, &unseen, NULL) != SQLITE_OK ||
      /* A key first seen after the store was last listed: linked by its prefix when
       * that prefix names one stored key only (as the sync itself does). */
      sqlite3_prepare_v2(db,
                         "SELECT store, ref, grp, permission, created, own FROM key_inventory"
                         " WHERE key_id IS NULL AND gone IS NULL AND prefix = ?1"
                         " AND (SELECT count(*) FROM keys WHERE prefix = ?1) = 1 LIMIT 1",
                         -1, &byprefix, NULL) != SQLITE_OK)
    goto out;
  if (key) {
    sqlite3_bind_text(keys, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(unseen, 1, key, -1, SQLITE_STATIC);
  }
  sqlite3_bind_int64(use, 1, d0);
  sqlite3_bind_int64(use, 2, d1);
  have_use = sqlite3_step(use) == SQLITE_ROW;
  while (!stop && (rc = sqlite3_step(keys)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(keys, 0);
    struct kw_key_usage k = {
        .has_fp = sqlite3_column_bytes(keys, 1) == KW_FP_LEN,
        .prefix = text(keys, 2),
        .name = text(keys, 3),
        .first_us = sqlite3_column_int64(keys, 4),
        .last_us = sqlite3_column_int64(keys, 5),
        .store = text(keys, 6),
        .store_ref = text(keys, 7),
        .group = text(keys, 8),
        .permission = text(keys, 9),
        .created_us = iso(text(keys, 10)),
        .own = sqlite3_column_int(keys, 11) != 0,
    };
    if (k.has_fp)
      memcpy(k.fp, sqlite3_column_blob(keys, 1), KW_FP_LEN);
    if (k.store == NULL && k.prefix != NULL) {
      sqlite3_reset(byprefix);
      sqlite3_bind_text(byprefix, 1, k.prefix, -1, SQLITE_STATIC);
      if (sqlite3_step(byprefix) == SQLITE_ROW) {
        k.store = text(byprefix, 0), k.store_ref = text(byprefix, 1);
        k.group = text(byprefix, 2), k.permission = text(byprefix, 3);
        k.created_us = iso(text(byprefix, 4));
        k.own = sqlite3_column_int(byprefix, 5) != 0;
      }
    }
    eps_clear(&eps);
    while (have_use && sqlite3_column_int64(use, 0) < id)
      have_use = sqlite3_step(use) == SQLITE_ROW;
    while (have_use && sqlite3_column_int64(use, 0) == id) {
      if ((r = eps_push(&eps, use)) != 0)
        goto out;
      int64_t f = eps.v[eps.n - 1].first_us;
      if (k.first_in_us == 0 || f < k.first_in_us)
        k.first_in_us = f;
      have_use = sqlite3_step(use) == SQLITE_ROW;
    }
    k.endpoints = eps.v;
    k.nendpoints = eps.n;
    k.last_before_us = one(before, id, d0);
    k.clients = one(clients, id, since_us);
    stop = cb(&k, ctx);
  }
  while (!stop && (rc = sqlite3_step(unseen)) == SQLITE_ROW) {
    struct kw_key_usage k = {
        .store = text(unseen, 0),
        .store_ref = text(unseen, 1),
        .name = text(unseen, 2),
        .group = text(unseen, 3),
        .permission = text(unseen, 4),
        .created_us = iso(text(unseen, 5)),
        .prefix = text(unseen, 6),
        .own = sqlite3_column_int(unseen, 7) != 0,
    };
    stop = cb(&k, ctx);
  }
  r = stop < 0 ? stop : 0;
out:
  eps_clear(&eps);
  free(eps.v);
  free(eps.strs);
  sqlite3_finalize(keys);
  sqlite3_finalize(use);
  sqlite3_finalize(before);
  sqlite3_finalize(clients);
  sqlite3_finalize(unseen);
  sqlite3_finalize(byprefix);
  return r;
}

int kw_store_review_save(struct kw_store *st, int64_t created_us, int64_t since_us,
                         int64_t until_us, int64_t keys, int64_t findings, const char *doc,
                         int64_t *id) {
  int r;
  if ((r = kw__store_begin(st)) != 0)
    return r;
  r = kw__store_run1(kw__store_db(st),
                     "INSERT INTO reviews(created, since, until, keys, findings, doc)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                     "iiiiit", id, created_us, since_us, until_us, keys, findings, doc);
  if (r != 0)
    return KW_ESTORE;
  return kw_store_commit(st);
}

int kw_store_review_load(struct kw_store *st, int64_t id, int64_t before_us, char **doc,
                         int64_t *created_us) {
  sqlite3_stmt *s;
  int r = KW_ENOTFOUND;
  *doc = NULL;
  if (sqlite3_prepare_v2(kw__store_db(st),
                         "SELECT doc, created FROM reviews WHERE (?1 > 0 AND id = ?1)"
                         " OR (?1 <= 0 AND (?2 <= 0 OR created < ?2))"
                         " ORDER BY created DESC, id DESC LIMIT 1",
                         -1, &s, NULL) != SQLITE_OK)
    return KW_ESTORE;
  sqlite3_bind_int64(s, 1, id);
  sqlite3_bind_int64(s, 2, before_us);
  if (sqlite3_step(s) == SQLITE_ROW) {
    *doc = strdup(text(s, 0) ? text(s, 0) : "");
    *created_us = sqlite3_column_int64(s, 1);
    r = *doc ? 0 : KW_ENOMEM;
  }
  sqlite3_finalize(s);
  return r;
}
