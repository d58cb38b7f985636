/* kwtest_store.h — the SQLite store as the unit tests set it up and look into it (tests
 * only).
 *
 * store_temp_dir(): a fresh temp directory for a test (temp_dir_make()) and the path of
 * its database in it, DIR/kw.db (created by the first store_open()); the teardown removes
 * it with temp_dir_remove().
 *
 * store_open(): kw_store_open() on a test's database (flags 0 or KW_STORE_RDONLY); the test
 * fails with the store's error when it does not open.  sql_int() and sql_exec() go around
 * the store on a connection of their own: sql_int() reads one integer (-999 when there is
 * no row) read-only, so it sees what is committed; sql_exec() runs statements (to set up a
 * state the store would not make, such as an old schema).
 *
 * Calls: cs() makes a kw_str of a C string (NULL: KW_STR_NULL); fp_fill() a fingerprint of
 * one repeated byte; store_add_call() stores a call to METHOD /api/card/1 (not committed);
 * add_key() stores and commits one, so that its key exists.  dup_or_null() copies the
 * strings a query callback lends.
 *
 * Everything is static inline: a test uses what it needs, the rest costs nothing.
 * Include after cmocka.h (and the headers it needs: setjmp.h, stdarg.h, stddef.h).
 * Thread: main only.
 */
#ifndef KWTEST_STORE_H
#define KWTEST_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sidecar/call.h"
#include "sidecar/fingerprint.h"
#include "sidecar/store.h"

#include "kwtest_files.h"

/* Makes /tmp/TAG.XXXXXX (into dir) and names DIR/kw.db (into db).  Returns 0 or -1. */
static inline int store_temp_dir(char *dir, size_t dirlen, char *db, size_t dblen,
                                 const char *tag) {
  if (temp_dir_make(dir, dirlen, tag) != 0)
    return -1;
  snprintf(db, dblen, "%s/kw.db", dir);
  return 0;
}

/* The store at db.  Returns it; close with kw_store_close(). */
static inline struct kw_store *store_open(const char *db, int flags) {
  struct kw_store *st = NULL;
  char err[1024] = "";
  int rc = kw_store_open(db, flags, &st, err, sizeof(err));
  if (rc != 0)
    fail_msg("open %s%s: %d %s", db, flags & KW_STORE_RDONLY ? " read-only" : "", rc, err);
  assert_non_null(st);
  return st;
}

/* One integer from a second, read-only connection: what is committed. */
static inline int64_t sql_int(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  sqlite3_stmt *s = NULL;
  int64_t v = -999;
  assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(h));
  if (sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

/* Runs sql (one or more statements) on a second connection (creating db if need be). */
static inline void sql_exec(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  char *msg = NULL;
  assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                   SQLITE_OK);
  if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg ? msg : "?");
  sqlite3_close(h);
}

static inline struct kw_str cs(const char *s) {
  return s ? kw_str_make(s, strlen(s)) : KW_STR_NULL;
}

static inline char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static inline void fp_fill(uint8_t fp[KW_FP_LEN], int b) {
  memset(fp, b, KW_FP_LEN);
}

/* Stores a call of source src: METHOD /api/card/1 (endpoint /api/card/{id}) answered
 * status at ts, with key fp and display prefix prefix (fp NULL: anonymous), sizes and
 * latency unknown.  Not committed. */
static inline void store_add_call(struct kw_store *st, uint32_t src, const uint8_t *fp,
                                  const char *prefix, int64_t ts, const char *method,
                                  int status) {
  struct kw_call c;
  memset(&c, 0, sizeof(c));
  c.ts_us = ts;
  c.has_key = fp != NULL;
  if (fp != NULL) {
    memcpy(c.fp, fp, KW_FP_LEN);
    snprintf(c.prefix, sizeof(c.prefix), "%s", prefix);
  }
  c.method = cs(method);
  c.path = cs("/api/card/1");
  c.endpoint = cs("/api/card/{id}");
  c.status = status;
  c.req_bytes = c.resp_bytes = c.latency_us = -1;
  c.source_id = src;
  assert_int_equal(kw_store_add_call(st, &c), 0);
}

/* Stores a call with key fp (display prefix prefix) at ts from source "test" and commits:
 * the key exists. */
static inline void add_key(struct kw_store *st, const uint8_t *fp, const char *prefix,
                           int64_t ts, const char *method, int status) {
  uint32_t src;
  assert_int_equal(kw_store_source(st, "test", "file", "keyed", &src), 0);
  store_add_call(st, src, fp, prefix, ts, method, status);
  assert_int_equal(kw_store_commit(st), 0);
}

#endif
