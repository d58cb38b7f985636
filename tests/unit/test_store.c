/* test_store.c — the SQLite store: write path, queries, schema (sidecar/store.c,
 * sidecar/store_query.c).
 *
 * Each test works on a database in a fresh mkdtemp directory.  Query results are copied
 * out of the callbacks (their strings live only during the callback) and compared field by
 * field; totals are cross-checked against the calls table with SQLite directly.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <sys/stat.h>

#include "sidecar/alerts.h"
#include "sidecar/call.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"
#include "sidecar/store.h"

#include "kwtest_files.h"
#include "kwtest_store.h"

#define T0 1795324326000000LL /* 2026-11-22T05:12:06Z */
#define SEC 1000000LL

static char g_dir[64], g_db[128], g_err[1024];

static int setup(void **state) {
  (void)state;
  return store_temp_dir(g_dir, sizeof(g_dir), g_db, sizeof(g_db), "kwstore");
}

static int teardown(void **state) {
  (void)state;
  return temp_dir_remove(g_dir);
}

/* A call with everything set; the key is fp filled with `key` (0: anonymous). */
static struct kw_call mkcall(int key, int64_t ts, const char *addr, const char *method,
                             const char *path, const char *endpoint, int status,
                             const char *ua) {
  struct kw_call c;
  memset(&c, 0, sizeof(c));
  c.ts_us = ts;
  c.has_key = key != 0;
  if (key) {
    memset(c.fp, key, KW_FP_LEN);
    snprintf(c.prefix, sizeof(c.prefix), key == 1 ? "mb_AbCd" : "sk_key%d", key);
  }
  if (addr)
    assert_int_equal(kw_addr_parse(addr, strlen(addr), &c.client), 0);
  c.method = cs(method);
  c.path = cs(path);
  c.endpoint = cs(endpoint);
  c.has_query = path && strchr(path, '?') != NULL;
  c.status = status;
  c.req_bytes = 100;
  c.resp_bytes = 1000;
  c.latency_us = 2500;
  c.user_agent = cs(ua);
  c.host = cs("api.example.com");
  return c;
}

/* ---- collecting query results ------------------------------------------------------- */

struct row {
  int64_t ts, status, resp, req, lat;
  char *prefix, *method, *path, *endpoint, *ua, *host, *source;
  int has_fp;
  uint8_t fp[KW_FP_LEN];
  struct kw_addr client;
};

struct rows {
  struct row v[64];
  size_t n;
};

static int on_call(const struct kw_call_row *r, void *ctx) {
  struct rows *rs = ctx;
  struct row *o;
  assert_true(rs->n < 64);
  o = &rs->v[rs->n++];
  o->ts = r->ts_us;
  o->status = r->status;
  o->resp = r->resp_bytes;
  o->req = r->req_bytes;
  o->lat = r->latency_us;
  o->prefix = dup_or_null(r->prefix);
  o->method = dup_or_null(r->method);
  o->path = dup_or_null(r->path);
  o->endpoint = dup_or_null(r->endpoint);
  o->ua = dup_or_null(r->user_agent);
  o->host = dup_or_null(r->host);
  o->source = dup_or_null(r->source);
  o->has_fp = r->fp != NULL;
  if (r->fp)
    memcpy(o->fp, r->fp, KW_FP_LEN);
  o->client = r->client;
  return 0;
}

static void rows_free(struct rows *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    struct row *o = &rs->v[i];
    free(o->prefix);
    free(o->method);
    free(o->path);
    free(o->endpoint);
    free(o->ua);
    free(o->host);
    free(o->source);
  }
  rs->n = 0;
}

static void query(struct kw_store *st, const struct kw_calls_query *q, struct rows *rs) {
  rows_free(rs);
  assert_int_equal(kw_store_calls(st, q, on_call, rs), 0);
}

struct keyrow {
  uint8_t fp[KW_FP_LEN];
  char *prefix, *name;
  int64_t calls, errors, bytes, first, last, endpoints, clients;
};

struct keyrows {
  struct keyrow v[32];
  size_t n;
};

static int on_key(const struct kw_key_row *k, void *ctx) {
  struct keyrows *ks = ctx;
  struct keyrow *o;
  assert_true(ks->n < 32);
  o = &ks->v[ks->n++];
  memcpy(o->fp, k->fp, KW_FP_LEN);
  o->prefix = dup_or_null(k->prefix);
  o->name = dup_or_null(k->name);
  o->calls = k->calls;
  o->errors = k->errors;
  o->bytes = k->bytes;
  o->first = k->first_us;
  o->last = k->last_us;
  o->endpoints = k->endpoints;
  o->clients = k->clients;
  return 0;
}

static void keys_free(struct keyrows *ks) {
  for (size_t i = 0; i < ks->n; i++) {
    free(ks->v[i].prefix);
    free(ks->v[i].name);
  }
  ks->n = 0;
}

static int stop_at_first(const struct kw_key_row *k, void *ctx) {
  (void)k;
  (*(int *)ctx)++;
  return 1;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_open_creates_private_file(void **state) {
  struct kw_store *st;
  struct stat sb;
  (void)state;

  st = store_open(g_db, 0);
  assert_int_equal(stat(g_db, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(kw_store_close(st), 0);
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), KW_STORE_SCHEMA);
  assert_int_equal(sql_int(g_db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name"
                           " IN ('calls', 'keys', 'sources', 'endpoints', 'clients',"
                           " 'agents', 'hosts', 'key_endpoints', 'key_clients')"),
                   9);
  assert_int_equal(kw_store_close(NULL), 0);
}

static void test_round_trip(void **state) {
  struct kw_store *st;
  struct rows rs = {0};
  struct kw_calls_query q = {0};
  uint32_t src, src2;
  char hex[2 * KW_FP_LEN + 1], buf[64];
  (void)state;

  st = store_open(g_db, 0);
  assert_int_equal(kw_store_source(st, "/var/log/nginx/access.log", "file", "keyed", &src), 0);
  assert_int_equal(kw_store_source(st, "/var/log/nginx/access.log", "file", "keyed", &src2),
                   0);
  assert_int_equal(src, src2); /* same name, same source */

  struct kw_call a = mkcall(1, T0, "203.0.113.7", "GET", "/api/card/1?token=REDACTED",
                            "/api/card/{id}", 200, "curl/8.5.0");
  a.source_id = src;
  a.req_bytes = 154;
  a.resp_bytes = 14890;
  a.latency_us = 612000;
  struct kw_call b = mkcall(1, T0 + SEC, "2001:db8::1", "POST", "/api/card", "/api/card", 500,
                            NULL);
  b.source_id = src;
  b.req_bytes = b.resp_bytes = b.latency_us = -1;
  b.host = KW_STR_NULL;
  struct kw_call c = mkcall(0, T0 + 2 * SEC, NULL, NULL, "/api/health", "/api/health", 0,
                            "kube-probe/1.29");
  c.source_id = src;
  assert_int_equal(kw_store_add_call(st, &a), 0);
  assert_int_equal(kw_store_add_call(st, &b), 0);
  assert_int_equal(kw_store_add_call(st, &c), 0);
  assert_int_equal(kw_store_pending(st), 3);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_pending(st), 0);
  assert_int_equal(kw_store_commit(st), 0); /* nothing open: a no-op */

  query(st, &q, &rs);
  assert_int_equal(rs.n, 3);
  /* a: every field */
  assert_int_equal(rs.v[0].ts, T0);
  assert_string_equal(rs.v[0].prefix, "mb_AbCd");
  assert_true(rs.v[0].has_fp);
  assert_memory_equal(rs.v[0].fp, a.fp, KW_FP_LEN);
  assert_int_equal(rs.v[0].client.family, 4);
  assert_string_equal(kw_addr_format(&rs.v[0].client, buf, sizeof(buf)), "203.0.113.7");
  assert_string_equal(rs.v[0].method, "GET");
  assert_string_equal(rs.v[0].path, "/api/card/1?token=REDACTED");
  assert_string_equal(rs.v[0].endpoint, "/api/card/{id}");
  assert_string_equal(rs.v[0].ua, "curl/8.5.0");
  assert_string_equal(rs.v[0].host, "api.example.com");
  assert_string_equal(rs.v[0].source, "/var/log/nginx/access.log");
  assert_int_equal(rs.v[0].status, 200);
  assert_int_equal(rs.v[0].req, 154);
  assert_int_equal(rs.v[0].resp, 14890);
  assert_int_equal(rs.v[0].lat, 612000);
  /* b: IPv6, unknown sizes and latency, no agent or host */
  assert_int_equal(rs.v[1].client.family, 6);
  assert_string_equal(kw_addr_format(&rs.v[1].client, buf, sizeof(buf)), "2001:db8::1");
  assert_string_equal(rs.v[1].method, "POST");
  assert_int_equal(rs.v[1].status, 500);
  assert_int_equal(rs.v[1].req, -1);
  assert_int_equal(rs.v[1].resp, -1);
  assert_int_equal(rs.v[1].lat, -1);
  assert_null(rs.v[1].ua);
  assert_null(rs.v[1].host);
  /* c: anonymous, no client, no method */
  assert_null(rs.v[2].prefix);
  assert_false(rs.v[2].has_fp);
  assert_int_equal(rs.v[2].client.family, 0);
  assert_string_equal(rs.v[2].method, "-");
  assert_int_equal(rs.v[2].status, 0);
  assert_string_equal(rs.v[2].ua, "kube-probe/1.29");

  /* filters */
  q.key = "mb_Ab";
  query(st, &q, &rs);
  assert_int_equal(rs.n, 2);
  q.key = "mb_AbCdX";
  query(st, &q, &rs);
  assert_int_equal(rs.n, 0);
  kw_fingerprint_hex(a.fp, hex);
  q.key = hex;
  query(st, &q, &rs);
  assert_int_equal(rs.n, 2);
  for (char *p = hex; *p; p++)
    if (*p >= 'a' && *p <= 'f')
      *p = (char)(*p - 'a' + 'A');
  query(st, &q, &rs); /* upper-case hex too */
  assert_int_equal(rs.n, 2);
  q.key = NULL;
  q.anonymous_only = 1;
  query(st, &q, &rs);
  assert_int_equal(rs.n, 1);
  assert_string_equal(rs.v[0].path, "/api/health");
  q.anonymous_only = 0;
  q.since_us = T0 + SEC; /* inclusive */
  query(st, &q, &rs);
  assert_int_equal(rs.n, 2);
  assert_int_equal(rs.v[0].ts, T0 + SEC);
  q.until_us = T0 + 2 * SEC; /* exclusive */
  query(st, &q, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.v[0].ts, T0 + SEC);
  q.since_us = q.until_us = 0;
  q.limit = 2; /* the newest two, oldest first */
  query(st, &q, &rs);
  assert_int_equal(rs.n, 2);
  assert_int_equal(rs.v[0].ts, T0 + SEC);
  assert_int_equal(rs.v[1].ts, T0 + 2 * SEC);
  rows_free(&rs);
  assert_int_equal(kw_store_close(st), 0);
}

/* Calls with equal timestamps keep their insertion order. */
static void test_calls_order_ties(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct rows rs = {0};
  struct kw_calls_query q = {0};
  char path[32];
  (void)state;

  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof(path), "/p/%d", i);
    struct kw_call c = mkcall(1, T0 + (i < 3 ? 0 : SEC), "10.0.0.1", "GET", path, "/p/{id}",
                              200, "ua");
    assert_int_equal(kw_store_add_call(st, &c), 0);
  }
  assert_int_equal(kw_store_commit(st), 0);
  query(st, &q, &rs);
  assert_int_equal(rs.n, 5);
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof(path), "/p/%d", i);
    assert_string_equal(rs.v[i].path, path);
  }
  q.limit = 3;
  query(st, &q, &rs);
  assert_int_equal(rs.n, 3);
  assert_string_equal(rs.v[0].path, "/p/2");
  rows_free(&rs);
  kw_store_close(st);
}

static void test_keys_totals(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct keyrows ks = {0};
  static const char *const addrs[] = {"10.0.0.1", "10.0.0.2", "2001:db8::5"};
  static const char *const eps[] = {"/api/card/{id}", "/api/user/current", "/api/dataset",
                                    "/api/card/{id}/query"};
  int64_t calls[3] = {0}, errors[3] = {0};
  uint32_t src;
  int seen_keys = 0;
  (void)state;

  assert_int_equal(kw_store_source(st, "b.log", "file", "keyed", &src), 0);

  /* four batches; key 1 and key 2 over several endpoints and clients; anonymous calls */
  for (int batch = 0; batch < 4; batch++) {
    for (int i = 0; i < 25; i++) {
      int n = batch * 25 + i;
      int key = n % 3; /* 0: anonymous */
      int status = n % 7 == 0 ? 401 : n % 11 == 0 ? 0 : 200;
      struct kw_call c = mkcall(key, T0 + n * SEC, addrs[(n / 3) % (key == 2 ? 1 : 3)],
                                n % 2 ? "GET" : "POST", "/x", eps[n % (key == 1 ? 4 : 2)],
                                status, "ua");
      c.resp_bytes = n;
      c.source_id = src;
      assert_int_equal(kw_store_add_call(st, &c), 0);
      calls[key]++;
      errors[key] += status >= 400 || status == 0;
    }
    assert_int_equal(kw_store_commit(st), 0);
  }
  assert_int_equal(kw_store_keys(st, on_key, &ks), 0);
  assert_int_equal(ks.n, 3);
  /* most calls first: anonymous (34), then the two keys (33 each) by prefix */
  assert_null(ks.v[0].prefix);
  assert_string_equal(ks.v[1].prefix, "mb_AbCd");
  assert_string_equal(ks.v[2].prefix, "sk_key2");
  for (size_t i = 0; i < ks.n; i++) {
    const struct keyrow *k = &ks.v[i];
    if (k->prefix == NULL) {
      assert_int_equal(k->calls, calls[0]);
      assert_int_equal(k->calls, 34);
      assert_int_equal(k->errors, errors[0]);
      assert_int_equal(k->bytes, 1683); /* 0 + 3 + … + 99 */
      assert_int_equal(k->first, T0);
      assert_int_equal(k->last, T0 + 99 * SEC);
      assert_int_equal(k->clients, 3);
      assert_int_equal(k->endpoints, 2); /* the method follows the template */
    } else if (strcmp(k->prefix, "mb_AbCd") == 0) {
      seen_keys++;
      assert_int_equal(k->calls, calls[1]);
      assert_int_equal(k->calls, 33);
      assert_int_equal(k->errors, errors[1]);
      assert_int_equal(k->first, T0 + 1 * SEC);
      assert_int_equal(k->last, T0 + 97 * SEC);
      assert_int_equal(k->endpoints, 4);
      assert_int_equal(k->clients, 3);
    } else {
      seen_keys++;
      assert_string_equal(k->prefix, "sk_key2");
      assert_int_equal(k->calls, calls[2]);
      assert_int_equal(k->errors, errors[2]);
      assert_int_equal(k->clients, 1);
      assert_int_equal(k->endpoints, 2);
      assert_int_equal(k->first, T0 + 2 * SEC);
      assert_int_equal(k->last, T0 + 98 * SEC);
    }
  }
  assert_int_equal(seen_keys, 2);
  /* the per-key totals equal what the calls table holds */
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM keys k WHERE k.calls != (SELECT count(*)"
                                 " FROM calls c WHERE c.key_id = k.id)"),
                   0);
  assert_int_equal(sql_int(g_db,
                           "SELECT count(*) FROM keys k WHERE k.errors != (SELECT"
                           " count(*) FROM calls c WHERE c.key_id = k.id AND (c.status >= 400"
                           " OR c.status = 0))"),
                   0);
  assert_int_equal(sql_int(g_db,
                           "SELECT count(*) FROM keys k WHERE k.bytes != (SELECT"
                           " coalesce(sum(resp_bytes), 0) FROM calls c WHERE c.key_id = k.id)"),
                   0);
  assert_int_equal(sql_int(g_db,
                           "SELECT count(*) FROM key_endpoints ke WHERE ke.calls != (SELECT"
                           " count(*) FROM calls c WHERE c.key_id = ke.key_id AND"
                           " c.endpoint_id = ke.endpoint_id)"),
                   0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM key_clients kc WHERE kc.calls != (SELECT"
                                 " count(*) FROM calls c WHERE c.key_id = kc.key_id AND"
                                 " c.client_id = kc.client_id)"),
                   0);
  assert_int_equal(sql_int(g_db, "SELECT sum(calls) FROM sources"), 100);
  keys_free(&ks);

  /* the callback may stop early */
  int seen = 0;
  assert_int_equal(kw_store_keys(st, stop_at_first, &seen), 0);
  assert_int_equal(seen, 1);
  kw_store_close(st);
}

/* Calls are inserted several at a time: each keeps the id it was hashed with, its own
 * path, and its order — also when a query runs in the middle of a batch (the rules ask
 * for the last call's id) and when a batch ends between two groups. */
static void test_calls_in_groups(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_verify v;
  char path[64];
  uint32_t src;
  int64_t n = 0;
  (void)state;

  assert_int_equal(kw_store_source(st, "g.log", "file", "keyed", &src), 0);
  for (int batch = 0; batch < 3; batch++) {
    for (int i = 0; i < 100 + batch * 7; i++) {
      /* "/p/<n>" and n % 23 x: paths of many lengths */
      snprintf(path, sizeof(path), "/p/%lld%.*s", (long long)n, (int)(n % 23),
               "xxxxxxxxxxxxxxxxxxxxxxx");
      struct kw_call c = mkcall((int)(n % 4), T0 + n * SEC, n % 5 ? "10.0.0.1" : NULL, "GET",
                                path, "/p/{id}", 200, n % 3 ? "ua" : NULL);
      c.source_id = src;
      assert_int_equal(kw_store_add_call(st, &c), 0);
      n++;
      if (i == 40 || i == 77) /* what a firing rule does */
        assert_int_equal(kw_store_last_call(st), n);
    }
    assert_int_equal(kw_store_last_call(st), n);
    assert_int_equal(kw_store_commit(st), 0);
  }
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls"), n);
  assert_int_equal(sql_int(g_db, "SELECT min(id) = 1 AND max(id) = count(*) FROM calls"), 1);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls WHERE ts != 1795324326000000 +"
                                 " (id - 1) * 1000000 OR substr(path, 4, length(id - 1)) !="
                                 " CAST(id - 1 AS TEXT) OR length(path) != 3 +"
                                 " length(id - 1) + (id - 1) % 23"),
                   0);
  assert_int_equal(kw_store_verify(st, &v), 0);
  assert_int_equal(v.bad_batch, 0);
  assert_int_equal(v.batches, 3);
  assert_int_equal(v.calls, n);
  assert_int_equal(v.uncovered, 0);
  kw_store_close(st);
}

static void test_name_key(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct keyrows ks = {0};
  struct kw_call a = mkcall(1, T0, "10.0.0.1", "GET", "/", "/", 200, NULL);
  struct kw_call b = mkcall(2, T0, "10.0.0.1", "GET", "/", "/", 200, NULL);
  uint8_t fp[KW_FP_LEN];
  (void)state;

  assert_int_equal(kw_store_add_call(st, &a), 0);
  assert_int_equal(kw_store_add_call(st, &b), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_name_key(st, NULL, "mb_AbCd", "reporting"), 1);
  memset(fp, 2, sizeof(fp));
  assert_int_equal(kw_store_name_key(st, fp, NULL, "ci"), 1);
  memset(fp, 9, sizeof(fp));
  assert_int_equal(kw_store_name_key(st, fp, NULL, "nobody"), 0);
  assert_int_equal(kw_store_keys(st, on_key, &ks), 0);
  assert_int_equal(ks.n, 2);
  for (size_t i = 0; i < 2; i++)
    assert_string_equal(ks.v[i].name, ks.v[i].fp[0] == 1 ? "reporting" : "ci");
  keys_free(&ks);
  kw_store_close(st);
}

static void test_stats(void **state) {
  struct kw_store *st = store_open(g_db, 0);
  struct kw_stats s;
  uint32_t src;
  (void)state;

  assert_int_equal(kw_store_source(st, "a.log", "file", "combined", &src), 0);
  struct kw_call v[] = {
      mkcall(1, T0 + 5 * SEC, "10.0.0.1", "GET", "/c/1", "/c/{id}", 200, "x"),
      mkcall(1, T0 + 1 * SEC, "10.0.0.2", "GET", "/c/2", "/c/{id}", 404, "x"),
      mkcall(2, T0 + 3 * SEC, "10.0.0.2", "POST", "/c", "/c", 201, "y"),
      mkcall(0, T0 + 9 * SEC, "2001:db8::1", "GET", "/h", "/h", 200, "z"),
      mkcall(0, T0 + 7 * SEC, NULL, "DELETE", "/c/3", "/c/{id}", 200, NULL),
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    v[i].source_id = src;
    assert_int_equal(kw_store_add_call(st, &v[i]), 0);
  }
  assert_int_equal(kw_store_add_lines(st, src, 8, 3, 4096), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_add_lines(st, src, 2, 1, 100), 0); /* a second batch adds */
  assert_int_equal(kw_store_commit(st), 0);

  assert_int_equal(kw_store_stats(st, 2, &s), 0);
  assert_int_equal(s.calls, 5);
  assert_int_equal(s.keys, 2);
  assert_int_equal(s.clients, 3);
  assert_int_equal(s.bytes, 5000);
  assert_int_equal(s.lines, 10);
  assert_int_equal(s.malformed, 4);
  assert_int_equal(s.anonymous, 2);
  assert_int_equal(s.first_us, T0 + 1 * SEC);
  assert_int_equal(s.last_us, T0 + 9 * SEC);
  assert_int_equal(s.n_status, 3); /* in status order */
  assert_string_equal(s.by_status[0].label, "200");
  assert_int_equal(s.by_status[0].n, 3);
  assert_string_equal(s.by_status[1].label, "201");
  assert_string_equal(s.by_status[2].label, "404");
  assert_int_equal(s.by_status[2].n, 1);
  assert_int_equal(s.n_method, 3); /* most first, then by name */
  assert_string_equal(s.by_method[0].label, "GET");
  assert_int_equal(s.by_method[0].n, 3);
  assert_string_equal(s.by_method[1].label, "DELETE");
  assert_string_equal(s.by_method[2].label, "POST");
  assert_int_equal(s.n_endpoints, 2); /* top 2 */
  assert_string_equal(s.top_endpoints[0].label, "GET /c/{id}");
  assert_int_equal(s.top_endpoints[0].n, 2);
  assert_string_equal(s.top_endpoints[1].label, "DELETE /c/{id}");
  kw_store_stats_free(&s);
  assert_null(s.by_status);
  assert_int_equal(s.n_status, 0);
  assert_int_equal(sql_int(g_db, "SELECT bytes FROM sources WHERE name = 'a.log'"), 4196);
  kw_store_close(st);

  /* an empty database */
  snprintf(g_db, sizeof(g_db), "%s/empty.db", g_dir);
  st = store_open(g_db, 0);
  assert_int_equal(kw_store_stats(st, 10, &s), 0);
  assert_int_equal(s.calls, 0);
  assert_int_equal(s.first_us, 0);
  assert_int_equal(s.n_status, 0);
  assert_int_equal(s.n_endpoints, 0);
  kw_store_stats_free(&s);
  kw_store_close(st);
}

static void test_readonly(void **state) {
  struct kw_store *st = (struct kw_store *)1;
  struct rows rs = {0};
  struct kw_calls_query q = {0};
  struct kw_stats s;
  (void)state;

  /* missing file: KW_ENOTFOUND, and nothing is created */
  assert_int_equal(kw_store_open(g_db, KW_STORE_RDONLY, &st, g_err, sizeof(g_err)),
                   KW_ENOTFOUND);
  assert_null(st);
  assert_non_null(strstr(g_err, g_db));
  struct stat sb;
  assert_int_equal(stat(g_db, &sb), -1);

  st = store_open(g_db, 0);
  struct kw_call c = mkcall(1, T0, "10.0.0.1", "GET", "/a", "/a", 200, "ua");
  assert_int_equal(kw_store_add_call(st, &c), 0);
  assert_int_equal(kw_store_commit(st), 0);
  /* a batch that is not committed is discarded by close */
  struct kw_call lost = mkcall(2, T0 + SEC, "10.0.0.2", "GET", "/lost", "/lost", 200, "ua");
  assert_int_equal(kw_store_add_call(st, &lost), 0);
  assert_int_equal(kw_store_add_lines(st, 0, 5, 5, 5), 0);
  assert_int_equal(kw_store_close(st), 0);

  st = store_open(g_db, KW_STORE_RDONLY);
  query(st, &q, &rs);
  assert_int_equal(rs.n, 1);
  assert_string_equal(rs.v[0].path, "/a");
  assert_int_equal(kw_store_stats(st, 5, &s), 0);
  assert_int_equal(s.calls, 1);
  kw_store_stats_free(&s);
  assert_int_equal(kw_store_add_call(st, &c), KW_EINVAL); /* no writes */
  assert_int_equal(kw_store_close(st), 0);
  rows_free(&rs);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM keys"), 1);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls"), 1);
}

static void set_user_version(int v) {
  sqlite3 *db = NULL;
  char sql[64];
  assert_int_equal(sqlite3_open(g_db, &db), SQLITE_OK);
  snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static void test_newer_schema(void **state) {
  struct kw_store *st = (struct kw_store *)1;
  (void)state;

  set_user_version(KW_STORE_SCHEMA + 1);
  assert_int_equal(kw_store_open(g_db, 0, &st, g_err, sizeof(g_err)), KW_ESCHEMA);
  assert_null(st);
  assert_non_null(strstr(g_err, "newer"));
  assert_int_equal(kw_store_open(g_db, KW_STORE_RDONLY, &st, g_err, sizeof(g_err)),
                   KW_ESCHEMA);
  assert_null(st);
  /* the refusal changed nothing */
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), KW_STORE_SCHEMA + 1);

  /* an older (here: empty, version 0) database read-only: asks to migrate */
  snprintf(g_db, sizeof(g_db), "%s/old.db", g_dir);
  set_user_version(0);
  assert_int_equal(kw_store_open(g_db, KW_STORE_RDONLY, &st, g_err, sizeof(g_err)),
                   KW_ESCHEMA);
  assert_non_null(strstr(g_err, "migrate"));
}

static void test_migration_idempotent(void **state) {
  struct kw_store *st;
  struct rows rs = {0};
  struct kw_calls_query q = {0};
  (void)state;

  st = store_open(g_db, 0);
  struct kw_call c = mkcall(1, T0, "10.0.0.1", "GET", "/a", "/a", 200, "ua");
  assert_int_equal(kw_store_add_call(st, &c), 0);
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(kw_store_close(st), 0);
  for (int i = 0; i < 2; i++) {
    st = store_open(g_db, 0);
    assert_int_equal(kw_store_add_call(st, &c), 0);
    assert_int_equal(kw_store_commit(st), 0);
    assert_int_equal(kw_store_close(st), 0);
  }
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), KW_STORE_SCHEMA);
  st = store_open(g_db, KW_STORE_RDONLY);
  query(st, &q, &rs);
  assert_int_equal(rs.n, 3);
  kw_store_close(st);
  rows_free(&rs);
  assert_int_equal(sql_int(g_db, "SELECT calls FROM keys"), 3);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM endpoints"), 1); /* ids reused */

  /* re-running the migration on a database that has its tables is harmless */
  set_user_version(0);
  st = store_open(g_db, 0);
  kw_store_close(st);
  assert_int_equal(sql_int(g_db, "PRAGMA user_version"), KW_STORE_SCHEMA);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls"), 3);
}

static void test_not_a_database(void **state) {
  struct kw_store *st = (struct kw_store *)1;
  FILE *f;
  (void)state;

  f = fopen(g_db, "w");
  assert_non_null(f);
  for (int i = 0; i < 200; i++)
    fputs("this is an nginx access log, not a database\n", f);
  fclose(f);
  assert_true(kw_store_open(g_db, 0, &st, g_err, sizeof(g_err)) < 0);
  assert_null(st);
  assert_non_null(strstr(g_err, g_db));
  st = (struct kw_store *)1;
  assert_true(kw_store_open(g_db, KW_STORE_RDONLY, &st, g_err, sizeof(g_err)) < 0);
  assert_null(st);
  assert_non_null(strstr(g_err, g_db));

  /* a directory */
  st = (struct kw_store *)1;
  assert_true(kw_store_open(g_dir, 0, &st, g_err, sizeof(g_err)) < 0);
  assert_null(st);
}

/* Thousands of distinct user agents, hosts and clients over several batches: every call
 * keeps its own, and the dictionary tables hold each value once. */
static void test_dictionary_cache(void **state) {
  enum { N = 6000, DISTINCT = 2500 };
  struct kw_store *st = store_open(g_db, 0);
  struct rows rs = {0};
  struct kw_calls_query q = {0};
  char ua[64], host[64], addr[64], path[32];
  (void)state;

  for (int i = 0; i < N; i++) {
    int d = (i * 7) % DISTINCT;
    snprintf(ua, sizeof(ua), "agent/%d (%s)", d, d % 2 ? "linux" : "mac");
    snprintf(host, sizeof(host), "h%d.example.com", d % 100);
    snprintf(addr, sizeof(addr), "10.%d.%d.%d", d / 65536, (d / 256) % 256, d % 256);
    snprintf(path, sizeof(path), "/i/%d", i);
    struct kw_call c = mkcall(1 + i % 2, T0 + i, addr, "GET", path, "/i/{id}", 200, ua);
    c.host = cs(host);
    assert_int_equal(kw_store_add_call(st, &c), 0);
    if (i % 1000 == 999)
      assert_int_equal(kw_store_commit(st), 0);
  }
  assert_int_equal(kw_store_commit(st), 0);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM agents"), DISTINCT);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM hosts"), 100);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM clients"), DISTINCT);
  assert_int_equal(sql_int(g_db, "SELECT count(*) FROM calls"), N);
  /* every call points at its own agent, host and client */
  assert_int_equal(sql_int(g_db,
                           "SELECT count(*) FROM calls c JOIN agents a ON a.id = c.agent_id"
                           " WHERE a.value != 'agent/' || ((CAST(substr(c.path, 4) AS INTEGER)"
                           " * 7) % 2500) || ' (' || CASE ((CAST(substr(c.path, 4) AS INTEGER)"
                           " * 7) % 2500) % 2 WHEN 1 THEN 'linux' ELSE 'mac' END || ')'"),
                   0);
  assert_int_equal(sql_int(g_db,
                           "SELECT count(*) FROM calls c JOIN hosts h ON h.id = c.host_id"
                           " WHERE h.value != 'h' || (((CAST(substr(c.path, 4) AS INTEGER)"
                           " * 7) % 2500) % 100) || '.example.com'"),
                   0);
  /* spot checks through the query API */
  q.limit = 3;
  query(st, &q, &rs);
  assert_int_equal(rs.n, 3);
  for (int k = 0; k < 3; k++) {
    int i = N - 3 + k, d = (i * 7) % DISTINCT;
    snprintf(ua, sizeof(ua), "agent/%d (%s)", d, d % 2 ? "linux" : "mac");
    snprintf(addr, sizeof(addr), "10.%d.%d.%d", d / 65536, (d / 256) % 256, d % 256);
    char got[64];
    assert_string_equal(rs.v[k].ua, ua);
    assert_string_equal(kw_addr_format(&rs.v[k].client, got, sizeof(got)), addr);
  }
  rows_free(&rs);
  kw_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_creates_private_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_calls_order_ties, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys_totals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_calls_in_groups, setup, teardown),
      cmocka_unit_test_setup_teardown(test_name_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_idempotent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dictionary_cache, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
