/* test_review.c — the least-privilege review (analyzer/review.c): rights granted vs used.
 *
 * A small pack (scopes read, write, admin; grants by group, permission and key) is written
 * into a fresh mkdtemp directory and loaded with kw_ruleset_load().  Each finding kind is
 * tested at its threshold and with a near miss just on the other side of it, because a
 * reviewer acts on these rows: a false "delete" or a missed "outside_grant" is the bug.
 * Every review runs at a fixed "now" (2026-03-01T00:00:00Z), never the wall clock.
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

#include "analyzer/review.h"
#include "analyzer/rules.h"
#include "sidecar/err.h"

#include "kwtest_files.h"

#define SEC_US 1000000LL
#define DAY_US (86400LL * SEC_US)
#define NOW_US (1772323200LL * SEC_US) /* 2026-03-01T00:00:00Z */

static const char k_pack[] =
    "scopes:\n"
    "  - name: read\n"
    "    endpoints: [\"GET /api/card/*\", \"GET /api/dashboard/*\"]\n"
    "  - name: write\n"
    "    endpoints: [\"POST /api/card/*\", \"PUT /api/card/*\", \"DELETE /api/card/*\"]\n"
    "  - name: admin\n"
    "    endpoints: [\"* /api/user/**\"]\n"
    "grants:\n"
    "  - {groups: [Administrators], scopes: [\"*\"]}\n"
    "  - {groups: [Analysts], scopes: [read]}\n"
    "  - {groups: [Editors], scopes: [read, write]}\n"
    "  - {permissions: [r], scopes: [read]}\n"
    "  - {permissions: [rw], scopes: [read, write]}\n"
    "  - {keys: [mb_Cfg1], scopes: [read]}\n"
    "  - {keys: [mb_Cfg2], scopes: [read, write]}\n";

static char g_dir[64];
static char g_path[128];
static struct kw_ruleset *g_rs;

/* ---- fixtures ------------------------------------------------------------------------- */

static int setup(void **state) {
  (void)state;
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwreview") != 0)
    return -1;
  snprintf(g_path, sizeof(g_path), "%s/pack.yaml", g_dir);
  g_rs = ruleset_load_text(g_path, k_pack);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  kw_ruleset_destroy(g_rs);
  g_rs = NULL;
  return temp_dir_remove(g_dir);
}

/* The defaults at NOW_US. */
static struct kw_review_opts opts(void) {
  struct kw_review_opts o;
  kw_review_opts_default(&o, NOW_US);
  return o;
}

/* A key that is busy and unremarkable: used yesterday, first seen 60 days ago, last call
 * before the period 35 days ago and first in it 29 days ago (6 days apart), one client. */
static struct kw_review_key key(const char *prefix, const char *group, const char *permission,
                                const struct kw_review_endpoint *eps, size_t n) {
  struct kw_review_key k;
  memset(&k, 0, sizeof(k));
  k.prefix = prefix;
  k.name = NULL;
  k.store = group || permission ? "metabase" : NULL;
  k.group = group;
  k.permission = permission;
  k.first_us = NOW_US - 60 * DAY_US;
  k.last_us = NOW_US - DAY_US;
  k.last_before_us = NOW_US - 35 * DAY_US;
  k.first_in_us = NOW_US - 29 * DAY_US;
  k.clients = 1;
  k.endpoints = eps;
  k.nendpoints = n;
  return k;
}

static struct kw_review_endpoint ep(const char *method, const char *tmpl, int64_t calls,
                                    int64_t ok, int64_t last_us) {
  struct kw_review_endpoint e = {.method = method, .template = tmpl, .calls = calls,
                                 .ok = ok, .denied = calls - ok, .last_us = last_us};
  return e;
}

/* Reviews k alone over g_rs with o; *r is the review to destroy. */
static const struct kw_review_row *review1(const struct kw_review_opts *o,
                                           const struct kw_review_key *k, struct kw_review **r) {
  size_t n = 0;
  const struct kw_review_row *rows;
  assert_int_equal(kw_review_create(g_rs, o, r), 0);
  assert_int_equal(kw_review_add(*r, k), 0);
  rows = kw_review_rows(*r, &n);
  assert_int_equal(n, 1);
  return &rows[0];
}

/* ---- assertions ----------------------------------------------------------------------- */

static const struct kw_finding *finding(const struct kw_review_row *w, enum kw_finding_kind k) {
  for (size_t i = 0; i < w->nfindings; i++)
    if (w->findings[i].kind == k)
      return &w->findings[i];
  return NULL;
}

/* The row's findings are exactly the kinds in `kinds` (bit per kind), each once. */
static void assert_kinds(const struct kw_review_row *w, unsigned kinds) {
  unsigned seen = 0;
  for (size_t i = 0; i < w->nfindings; i++) {
    unsigned bit = 1u << w->findings[i].kind;
    if (seen & bit)
      fail_msg("%s: finding %s twice", w->prefix, kw_finding_name(w->findings[i].kind));
    seen |= bit;
  }
  for (int k = 0; k < KW_FIND_COUNT; k++)
    if ((seen ^ kinds) & (1u << k))
      fail_msg("%s: finding %s %s (findings: %zu, first: '%s')", w->prefix,
               kw_finding_name((enum kw_finding_kind)k),
               seen & (1u << k) ? "not expected" : "missing", w->nfindings,
               w->nfindings ? w->findings[0].text : "");
}

#define BIT(k) (1u << (k))

/* Finding k is there with severity sev and its text holds each of the NULL-ended words. */
static void assert_finding(const struct kw_review_row *w, enum kw_finding_kind k, int sev, ...) {
  const struct kw_finding *f = finding(w, k);
  va_list ap;
  if (f == NULL)
    fail_msg("%s: no %s finding", w->prefix, kw_finding_name(k));
  assert_int_equal(f->severity, sev);
  va_start(ap, sev);
  for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *))
    if (strstr(f->text, s) == NULL)
      fail_msg("%s: %s text '%s' lacks '%s'", w->prefix, kw_finding_name(k), f->text, s);
  va_end(ap);
}

/* v[0..n) is exactly the NULL-ended list, in order. */
static void assert_strv(char *const *v, size_t n, ...) {
  va_list ap;
  size_t i = 0;
  va_start(ap, n);
  for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *), i++) {
    if (i >= n)
      fail_msg("only %zu names; missing '%s'", n, s);
    assert_string_equal(v[i], s);
  }
  va_end(ap);
  assert_int_equal(i, n);
}

static void assert_contains(const char *s, const char *part) {
  assert_non_null(s);
  if (strstr(s, part) == NULL)
    fail_msg("'%s' lacks '%s'", s, part);
}

static void assert_lacks(const char *s, const char *part) {
  assert_non_null(s);
  if (strstr(s, part) != NULL)
    fail_msg("'%s' should not hold '%s'", s, part);
}

/* ---- the options ---------------------------------------------------------------------- */

static void test_defaults(void **state) {
  struct kw_review_opts o = opts();
  (void)state;
  assert_true(o.until_us == NOW_US);
  assert_true(o.since_us == NOW_US - 30 * DAY_US);
  assert_true(o.unused_us == 30 * DAY_US);
  assert_true(o.dormant_us == 30 * DAY_US);
  assert_true(o.max_age_us == 365 * DAY_US);
  assert_int_equal(o.max_sources, 10);
  assert_int_equal(o.severity[KW_FIND_UNUSED], 2);
  assert_int_equal(o.severity[KW_FIND_DORMANT_WOKE], 3);
  assert_int_equal(o.severity[KW_FIND_OVER_PRIVILEGED], 2);
  assert_int_equal(o.severity[KW_FIND_OUTSIDE_GRANT], 3);
  assert_int_equal(o.severity[KW_FIND_ROTATION_DUE], 1);
  assert_int_equal(o.severity[KW_FIND_MANY_SOURCES], 2);
  assert_string_equal(kw_finding_name(KW_FIND_UNUSED), "unused");
  assert_string_equal(kw_finding_name(KW_FIND_DORMANT_WOKE), "dormant_woke");
  assert_string_equal(kw_finding_name(KW_FIND_OVER_PRIVILEGED), "over_privileged");
  assert_string_equal(kw_finding_name(KW_FIND_OUTSIDE_GRANT), "outside_grant");
  assert_string_equal(kw_finding_name(KW_FIND_ROTATION_DUE), "rotation_due");
  assert_string_equal(kw_finding_name(KW_FIND_MANY_SOURCES), "many_sources");
  assert_string_equal(kw_finding_name(KW_FIND_COUNT), "?");
  kw_review_destroy(NULL);
}

/* ---- rows ------------------------------------------------------------------------------ */

/* Granted, used (calls, last use, most calls first) and unused scopes; the key's fields. */
static void test_row_rights(void **state) {
  struct kw_review_endpoint eps[] = {
      ep("GET", "/api/card/{id}", 40, 40, NOW_US - 3 * DAY_US),
      ep("GET", "/api/dashboard/{id}", 2, 2, NOW_US - 2 * DAY_US),
      ep("PUT", "/api/card/{id}", 7, 6, NOW_US - 5 * DAY_US),
      ep("DELETE", "/api/card/{id}", 50, 50, NOW_US - 9 * DAY_US),
  };
  struct kw_review_key k = key("mb_Adm1", "Administrators", NULL, eps, 4);
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  (void)state;
  k.name = "etl";
  k.store_ref = "17";
  k.created_us = NOW_US - 100 * DAY_US;
  k.clients = 3;
  k.has_fp = true;
  memset(k.fp, 0xab, sizeof(k.fp));
  w = review1(&o, &k, &r);
  assert_string_equal(w->prefix, "mb_Adm1");
  assert_string_equal(w->name, "etl");
  assert_string_equal(w->store, "metabase");
  assert_string_equal(w->store_ref, "17");
  assert_string_equal(w->group, "Administrators");
  assert_null(w->permission);
  assert_true(w->has_fp);
  assert_int_equal(w->fp[0], 0xab);
  assert_true(w->created_us == NOW_US - 100 * DAY_US);
  assert_true(w->first_us == k.first_us && w->last_us == k.last_us);
  assert_int_equal(w->calls, 99);
  assert_int_equal(w->clients, 3);
  assert_true(w->grant_known);
  assert_strv(w->granted, w->ngranted, "read", "write", "admin", NULL);
  /* write: 57 calls (last 5 days ago), read: 42 (last 2 days ago) */
  assert_int_equal(w->nused, 2);
  assert_string_equal(w->used[0].scope, "write");
  assert_int_equal(w->used[0].calls, 57);
  assert_true(w->used[0].last_us == NOW_US - 5 * DAY_US);
  assert_string_equal(w->used[1].scope, "read");
  assert_int_equal(w->used[1].calls, 42);
  assert_true(w->used[1].last_us == NOW_US - 2 * DAY_US);
  assert_strv(w->unused, w->nunused, "admin", NULL);
  assert_int_equal(w->outside_calls, 0);
  assert_int_equal(w->outside_ok, 0);
  assert_null(w->outside_example);
  /* admin group that never administers: Editors is the smallest group covering it */
  assert_kinds(w, BIT(KW_FIND_OVER_PRIVILEGED));
  assert_finding(w, KW_FIND_OVER_PRIVILEGED, 2, "Administrators", "admin", NULL);
  assert_string_equal(w->recommendation, "group Editors");
  assert_contains(w->why, "group Editors (read, write) covers every call it made");
  assert_true(kw_review_options(r)->until_us == NOW_US);
  kw_review_destroy(r);
}

/* ---- unused ----------------------------------------------------------------------------- */

static void test_unused(void **state) {
  struct kw_review_endpoint edge[] = {ep("GET", "/api/card/{id}", 1, 1, NOW_US - 30 * DAY_US)};
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k;
  (void)state;

  /* last call 30 days + 1µs before the end: unused, delete; the date is in the text */
  k = key("mb_Ana1", "Analysts", NULL, NULL, 0);
  k.last_us = NOW_US - 30 * DAY_US - 1;
  k.first_in_us = 0;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_UNUSED));
  assert_finding(w, KW_FIND_UNUSED, 2, "no call since 2026-01-29", NULL);
  assert_string_equal(w->recommendation, "delete");
  assert_string_equal(w->why, "not used within the unused period");
  assert_strv(w->granted, w->ngranted, "read", NULL);
  assert_int_equal(w->nused, 0);
  kw_review_destroy(r);

  /* near miss: last call exactly 30 days before the end is within the period */
  k = key("mb_Ana1", "Analysts", NULL, edge, 1);
  k.last_us = NOW_US - 30 * DAY_US;
  k.first_in_us = NOW_US - 30 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "keep");
  assert_contains(w->why, "group Analysts");
  assert_int_equal(w->nused, 1);
  assert_string_equal(w->used[0].scope, "read");
  assert_int_equal(w->nunused, 0);
  kw_review_destroy(r);

  /* never seen: unused whatever its grant, and not "due for rotation" (no age known) */
  k = key("mb_Adm2", "Administrators", NULL, NULL, 0);
  k.first_us = k.last_us = k.last_before_us = k.first_in_us = 0;
  k.clients = 0;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_UNUSED));
  assert_finding(w, KW_FIND_UNUSED, 2, "never used", NULL);
  assert_string_equal(w->recommendation, "delete");
  assert_string_equal(w->why, "never used");
  assert_int_equal(w->calls, 0);
  kw_review_destroy(r);

  /* unused_after is an option: 7 days, last call 8 days ago; severity is an option too */
  o.unused_us = 7 * DAY_US;
  o.severity[KW_FIND_UNUSED] = 4;
  k = key("mb_Ana1", "Analysts", NULL, NULL, 0);
  k.last_us = NOW_US - 8 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_UNUSED));
  assert_finding(w, KW_FIND_UNUSED, 4, "2026-02-21", NULL);
  assert_string_equal(w->recommendation, "delete");
  kw_review_destroy(r);
}

/* ---- dormant_woke ----------------------------------------------------------------------- */

static void test_dormant_woke(void **state) {
  struct kw_review_endpoint eps[] = {ep("GET", "/api/card/{id}", 5, 5, NOW_US - DAY_US)};
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Ana1", "Analysts", NULL, eps, 1);
  (void)state;

  /* silence of exactly dormant_after (30 days) before the first call of the period */
  k.first_us = NOW_US - 200 * DAY_US;
  k.last_before_us = NOW_US - 45 * DAY_US; /* 2026-01-15 */
  k.first_in_us = k.last_before_us + 30 * DAY_US; /* 2026-02-14 */
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_DORMANT_WOKE));
  assert_finding(w, KW_FIND_DORMANT_WOKE, 3, "2026-01-15", "2026-02-14", "(30 days)", NULL);
  assert_string_equal(w->recommendation, "keep");
  kw_review_destroy(r);

  /* near miss: 1µs shorter */
  k.first_in_us = k.last_before_us + 30 * DAY_US - 1;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  kw_review_destroy(r);

  /* no call before the period: a new key, not a dormant one */
  k.first_us = NOW_US - 10 * DAY_US;
  k.last_before_us = 0;
  k.first_in_us = NOW_US - 10 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  kw_review_destroy(r);

  /* dormant_after is an option: 7 days of silence count with 7d */
  o.dormant_us = 7 * DAY_US;
  k.first_us = NOW_US - 200 * DAY_US;
  k.last_before_us = NOW_US - 36 * DAY_US;
  k.first_in_us = NOW_US - 29 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_DORMANT_WOKE));
  assert_finding(w, KW_FIND_DORMANT_WOKE, 3, "(7 days)", NULL);
  kw_review_destroy(r);
}

/* ---- over_privileged -------------------------------------------------------------------- */

static void test_over_privileged_admin_group(void **state) {
  struct kw_review_endpoint eps[] = {
      ep("GET", "/api/card/{id}", 10, 10, NOW_US - 4 * DAY_US),
      ep("GET", "/api/dashboard/{id}", 5, 5, NOW_US - DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Adm1", "Administrators", NULL, eps, 2);
  (void)state;
  w = review1(&o, &k, &r);
  assert_strv(w->granted, w->ngranted, "read", "write", "admin", NULL);
  assert_int_equal(w->nused, 1);
  assert_string_equal(w->used[0].scope, "read");
  assert_int_equal(w->used[0].calls, 15);
  assert_true(w->used[0].last_us == NOW_US - DAY_US);
  assert_strv(w->unused, w->nunused, "write", "admin", NULL);
  assert_kinds(w, BIT(KW_FIND_OVER_PRIVILEGED));
  assert_finding(w, KW_FIND_OVER_PRIVILEGED, 2, "group Administrators", "every scope",
                 "write, admin", NULL);
  assert_string_equal(w->recommendation, "group Analysts");
  assert_contains(w->why, "group Analysts (read) covers every call it made");
  assert_contains(w->why, "its group Administrators grants more");
  kw_review_destroy(r);
}

static void test_over_privileged_near_miss_editors(void **state) {
  struct kw_review_endpoint eps[] = {
      ep("GET", "/api/card/{id}", 3, 3, NOW_US - DAY_US),
      ep("PUT", "/api/card/{id}", 9, 9, NOW_US - 2 * DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Edi1", "Editors", NULL, eps, 2);
  (void)state;
  /* uses all it has: no finding, keep */
  w = review1(&o, &k, &r);
  assert_strv(w->granted, w->ngranted, "read", "write", NULL);
  assert_int_equal(w->nused, 2);
  assert_string_equal(w->used[0].scope, "write");
  assert_int_equal(w->used[0].calls, 9);
  assert_string_equal(w->used[1].scope, "read");
  assert_int_equal(w->nunused, 0);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "keep");
  assert_contains(w->why, "group Editors is the smallest that covers what it did (read, write)");
  kw_review_destroy(r);

  /* the same group only reading: over-privileged, Analysts is enough */
  k.nendpoints = 1;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_OVER_PRIVILEGED));
  assert_finding(w, KW_FIND_OVER_PRIVILEGED, 2, "write", NULL);
  assert_lacks(w->findings[0].text, "every scope");
  assert_string_equal(w->recommendation, "group Analysts");
  kw_review_destroy(r);
}

static void test_over_privileged_permission(void **state) {
  struct kw_review_endpoint reads[] = {
      ep("GET", "/api/dashboard/{id}", 8, 8, NOW_US - DAY_US),
  };
  struct kw_review_endpoint both[] = {
      ep("GET", "/api/dashboard/{id}", 8, 8, NOW_US - DAY_US),
      ep("POST", "/api/card/{id}", 1, 1, NOW_US - DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("st_Tok1", NULL, "rw", reads, 1);
  (void)state;
  /* an rw token that only reads: permission r is enough */
  w = review1(&o, &k, &r);
  assert_strv(w->granted, w->ngranted, "read", "write", NULL);
  assert_strv(w->unused, w->nunused, "write", NULL);
  assert_kinds(w, BIT(KW_FIND_OVER_PRIVILEGED));
  assert_finding(w, KW_FIND_OVER_PRIVILEGED, 2, "permission rw", "write", NULL);
  assert_string_equal(w->recommendation, "permission r");
  assert_contains(w->why, "permission r (read) covers every call it made");
  kw_review_destroy(r);

  /* near miss: it also writes, so rw is what it needs */
  k.endpoints = both;
  k.nendpoints = 2;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "keep");
  assert_contains(w->why, "permission rw");
  kw_review_destroy(r);

  /* an r token that reads: keep */
  k = key("st_Tok2", NULL, "r", reads, 1);
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "keep");
  kw_review_destroy(r);
}

/* Grants by key (in the config's packs, not at a key store): the recommendation is a set
 * of scopes, since no store group or permission can be changed for it. */
static void test_over_privileged_config_grant(void **state) {
  struct kw_review_endpoint eps[] = {ep("GET", "/api/card/{id}", 12, 12, NOW_US - DAY_US)};
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Cfg2xyz", NULL, NULL, eps, 1);
  (void)state;
  w = review1(&o, &k, &r);
  assert_true(w->grant_known);
  assert_strv(w->granted, w->ngranted, "read", "write", NULL);
  assert_strv(w->unused, w->nunused, "write", NULL);
  assert_kinds(w, BIT(KW_FIND_OVER_PRIVILEGED));
  assert_finding(w, KW_FIND_OVER_PRIVILEGED, 2, "granted write it never used", NULL);
  assert_string_equal(w->recommendation, "scopes read");
  assert_contains(w->why, "read covers every call it made");
  assert_lacks(w->why, "no grant");
  kw_review_destroy(r);

  /* near miss: mb_Cfg1 holds read only and reads */
  k.prefix = "mb_Cfg1abc";
  w = review1(&o, &k, &r);
  assert_strv(w->granted, w->ngranted, "read", NULL);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "keep");
  assert_contains(w->why, "its grant (read) is the smallest");
  kw_review_destroy(r);
}

/* ---- outside_grant ---------------------------------------------------------------------- */

static void test_outside_grant(void **state) {
  struct kw_review_endpoint eps[] = {
      ep("GET", "/api/card/{id}", 50, 50, NOW_US - DAY_US),
      ep("DELETE", "/api/card/{id}", 3, 2, NOW_US - 2 * DAY_US),
      ep("PUT", "/api/card/{id}", 1, 0, NOW_US - 3 * DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Ana1", "Analysts", NULL, eps, 3);
  (void)state;
  w = review1(&o, &k, &r);
  assert_int_equal(w->outside_calls, 4);
  assert_int_equal(w->outside_ok, 2);
  assert_string_equal(w->outside_example, "DELETE /api/card/{id}");
  /* what it was not granted is not "used" */
  assert_int_equal(w->nused, 1);
  assert_string_equal(w->used[0].scope, "read");
  assert_int_equal(w->used[0].calls, 50);
  assert_int_equal(w->nunused, 0);
  assert_kinds(w, BIT(KW_FIND_OUTSIDE_GRANT));
  assert_finding(w, KW_FIND_OUTSIDE_GRANT, 3, "4 calls outside its grant", "(2 succeeded)",
                 "DELETE /api/card/{id}", NULL);
  assert_string_equal(w->recommendation, "group Editors");
  assert_contains(w->why, "group Editors (read, write) covers every call it made");
  /* Analysts grants less than it used, not more */
  assert_contains(w->why, "its group Analysts does not cover them all");
  assert_lacks(w->why, "grants more");
  kw_review_destroy(r);

  /* near miss: the same key only reading */
  k.nendpoints = 1;
  w = review1(&o, &k, &r);
  assert_int_equal(w->outside_calls, 0);
  assert_null(w->outside_example);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "keep");
  kw_review_destroy(r);

  /* near miss: the same calls by an Editors key are inside its grant */
  k = key("mb_Edi1", "Editors", NULL, eps, 3);
  w = review1(&o, &k, &r);
  assert_int_equal(w->outside_calls, 0);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "keep");
  kw_review_destroy(r);

  /* near miss: a key no grant names has no grant to be outside of */
  k = key("mb_Zzz1", NULL, NULL, eps, 3);
  w = review1(&o, &k, &r);
  assert_false(w->grant_known);
  assert_int_equal(w->outside_calls, 0);
  assert_kinds(w, 0);
  kw_review_destroy(r);
}

/* One outside call: singular text. */
static void test_outside_grant_one_call(void **state) {
  struct kw_review_endpoint eps[] = {
      ep("GET", "/api/card/{id}", 5, 5, NOW_US - DAY_US),
      ep("GET", "/api/user/current", 1, 1, NOW_US - DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("st_Tok1", NULL, "r", eps, 2);
  (void)state;
  w = review1(&o, &k, &r);
  assert_int_equal(w->outside_calls, 1);
  assert_int_equal(w->outside_ok, 1);
  assert_string_equal(w->outside_example, "GET /api/user/current");
  assert_finding(w, KW_FIND_OUTSIDE_GRANT, 3, "1 call outside its grant (1 succeeded)", NULL);
  /* no permission grant covers admin: scopes instead */
  assert_string_equal(w->recommendation, "scopes read, admin");
  kw_review_destroy(r);
}

/* ---- rotation_due ----------------------------------------------------------------------- */

static void test_rotation_due(void **state) {
  struct kw_review_endpoint eps[] = {ep("GET", "/api/card/{id}", 5, 5, NOW_US - DAY_US)};
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Ana1", "Analysts", NULL, eps, 1);
  (void)state;

  /* created at the store 365 days + 1µs ago */
  k.created_us = NOW_US - 365 * DAY_US - 1;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_ROTATION_DUE));
  assert_finding(w, KW_FIND_ROTATION_DUE, 1, "365 days old", "created", "2025-02-28", NULL);
  assert_string_equal(w->recommendation, "keep");
  kw_review_destroy(r);

  /* near miss: exactly max_age */
  k.created_us = NOW_US - 365 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  kw_review_destroy(r);

  /* no creation time: the first call counts */
  k.created_us = 0;
  k.first_us = NOW_US - 400 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_ROTATION_DUE));
  assert_finding(w, KW_FIND_ROTATION_DUE, 1, "400 days old", "in use since", NULL);
  kw_review_destroy(r);

  /* the store's creation time wins over the first call */
  k.created_us = NOW_US - 100 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  kw_review_destroy(r);

  /* max_age 0: off */
  o.max_age_us = 0;
  k.created_us = NOW_US - 5000 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  kw_review_destroy(r);

  /* a shorter max_age */
  o.max_age_us = 90 * DAY_US;
  k.created_us = NOW_US - 91 * DAY_US;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_ROTATION_DUE));
  kw_review_destroy(r);
}

/* ---- many_sources ----------------------------------------------------------------------- */

static void test_many_sources(void **state) {
  struct kw_review_endpoint eps[] = {ep("GET", "/api/card/{id}", 5, 5, NOW_US - DAY_US)};
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Ana1", "Analysts", NULL, eps, 1);
  (void)state;

  k.clients = 10; /* == max_sources: fine */
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  kw_review_destroy(r);

  k.clients = 11;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_MANY_SOURCES));
  assert_finding(w, KW_FIND_MANY_SOURCES, 2, "11 client addresses", "more than 10", NULL);
  assert_string_equal(w->recommendation, "keep");
  kw_review_destroy(r);

  o.max_sources = 0; /* off */
  k.clients = 100000;
  w = review1(&o, &k, &r);
  assert_kinds(w, 0);
  kw_review_destroy(r);

  o.max_sources = 2;
  k.clients = 3;
  w = review1(&o, &k, &r);
  assert_kinds(w, BIT(KW_FIND_MANY_SOURCES));
  assert_finding(w, KW_FIND_MANY_SOURCES, 2, "3 client addresses", "more than 2", NULL);
  kw_review_destroy(r);
}

/* ---- recommendations -------------------------------------------------------------------- */

/* A key no grant names: the fewest scopes covering its calls, chosen greedily. */
static void test_no_grant_greedy(void **state) {
  struct kw_review_endpoint reads[] = {
      ep("GET", "/api/card/{id}", 7, 7, NOW_US - DAY_US),
      ep("GET", "/api/dashboard/{id}", 3, 3, NOW_US - DAY_US),
  };
  struct kw_review_endpoint mixed[] = {
      ep("GET", "/api/card/{id}", 7, 7, NOW_US - DAY_US),
      ep("DELETE", "/api/card/{id}", 2, 2, NOW_US - DAY_US),
      ep("GET", "/api/user/current", 1, 1, NOW_US - DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Zzz1", NULL, NULL, reads, 2);
  (void)state;
  w = review1(&o, &k, &r);
  assert_false(w->grant_known);
  assert_int_equal(w->ngranted, 0);
  assert_int_equal(w->nunused, 0);
  assert_kinds(w, 0);
  assert_string_equal(w->recommendation, "scopes read");
  assert_contains(w->why, "read covers every call it made");
  assert_contains(w->why, "(it has no grant yet)");
  kw_review_destroy(r);

  k.endpoints = mixed;
  k.nendpoints = 3;
  w = review1(&o, &k, &r);
  assert_string_equal(w->recommendation, "scopes read, write, admin");
  assert_contains(w->why, "read, write, admin cover every call it made");
  kw_review_destroy(r);

  /* a group the packs do not know: the smallest known group that covers it */
  k = key("mb_Zzz2", "Viewers", NULL, reads, 2);
  w = review1(&o, &k, &r);
  assert_false(w->grant_known);
  assert_string_equal(w->recommendation, "group Analysts");
  assert_contains(w->why, "its group Viewers has no grant in the rule packs");
  assert_lacks(w->why, "grants more");
  kw_review_destroy(r);
}

/* Endpoints no scope covers are left out of the recommendation and said in why. */
static void test_uncatalogued(void **state) {
  struct kw_review_endpoint eps[] = {
      ep("GET", "/api/card/{id}", 7, 7, NOW_US - DAY_US),
      ep("GET", "/api/session/properties", 30, 30, NOW_US - DAY_US),
      ep("POST", "/api/dataset", 2, 2, NOW_US - DAY_US),
  };
  struct kw_review_endpoint only[] = {
      ep("GET", "/api/session/properties", 30, 30, NOW_US - DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  const struct kw_review_row *w;
  struct kw_review_key k = key("mb_Zzz1", NULL, NULL, eps, 3);
  (void)state;
  w = review1(&o, &k, &r);
  assert_string_equal(w->recommendation, "scopes read");
  assert_contains(w->why, "; 2 endpoints no scope covers");
  kw_review_destroy(r);

  k.nendpoints = 2;
  w = review1(&o, &k, &r);
  assert_contains(w->why, "; 1 endpoint no scope covers");
  kw_review_destroy(r);

  /* only uncatalogued calls: nothing to recommend */
  k.endpoints = only;
  k.nendpoints = 1;
  w = review1(&o, &k, &r);
  assert_string_equal(w->recommendation, "keep");
  assert_contains(w->why, "no scope of the loaded catalogues covers its calls");
  kw_review_destroy(r);

  /* a group key: the group recommendation still ignores them (Analysts covers the rest) */
  k = key("mb_Adm1", "Administrators", NULL, eps, 1);
  k.nendpoints = 2;
  w = review1(&o, &k, &r);
  assert_string_equal(w->recommendation, "group Analysts");
  assert_contains(w->why, "; 1 endpoint no scope covers");
  kw_review_destroy(r);
}

/* ---- counts, order --------------------------------------------------------------------- */

static void test_counts(void **state) {
  struct kw_review_endpoint reads[] = {ep("GET", "/api/card/{id}", 5, 5, NOW_US - DAY_US)};
  struct kw_review_endpoint del[] = {
      ep("GET", "/api/card/{id}", 5, 5, NOW_US - DAY_US),
      ep("DELETE", "/api/card/{id}", 1, 1, NOW_US - DAY_US),
  };
  struct kw_review_opts o = opts();
  struct kw_review *r;
  struct kw_review_key keys[5];
  size_t counts[KW_FIND_COUNT], n;
  const struct kw_review_row *rows;
  (void)state;
  keys[0] = key("mb_K0", "Analysts", NULL, NULL, 0); /* unused */
  keys[0].last_us = 0;
  keys[1] = key("mb_K1", "Administrators", NULL, reads, 1); /* over_privileged */
  keys[2] = key("mb_K2", "Analysts", NULL, del, 2); /* outside_grant + many_sources */
  keys[2].clients = 50;
  keys[3] = key("mb_K3", NULL, "rw", reads, 1); /* over_privileged + rotation_due */
  keys[3].created_us = NOW_US - 800 * DAY_US;
  keys[4] = key("mb_K4", "Analysts", NULL, reads, 1); /* nothing */
  assert_int_equal(kw_review_create(g_rs, &o, &r), 0);
  kw_review_counts(r, counts);
  for (int i = 0; i < KW_FIND_COUNT; i++)
    assert_int_equal(counts[i], 0);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(kw_review_add(r, &keys[i]), 0);
  kw_review_counts(r, counts);
  assert_int_equal(counts[KW_FIND_UNUSED], 1);
  assert_int_equal(counts[KW_FIND_DORMANT_WOKE], 0);
  assert_int_equal(counts[KW_FIND_OVER_PRIVILEGED], 2);
  assert_int_equal(counts[KW_FIND_OUTSIDE_GRANT], 1);
  assert_int_equal(counts[KW_FIND_ROTATION_DUE], 1);
  assert_int_equal(counts[KW_FIND_MANY_SOURCES], 1);
  rows = kw_review_rows(r, &n);
  assert_int_equal(n, 5);
  for (size_t i = 0; i < 5; i++)
    assert_string_equal(rows[i].prefix, keys[i].prefix);
  kw_review_destroy(r);
}

/* ---- more than 64 scopes ---------------------------------------------------------------- */

/* review.h: at most 64 scopes take part; further ones are ignored, and kw_review_create()
 * says so with KW_ETOOLONG — the review it hands back still works (and must be destroyed). */
static void test_65_scopes(void **state) {
  size_t cap = 16384, o = 0, n;
  char *yaml = malloc(cap);
  struct kw_ruleset *rs;
  struct kw_review *r = NULL;
  struct kw_review_opts op = opts();
  struct kw_review_endpoint eps[] = {
      ep("GET", "/api/s0/{id}", 4, 4, NOW_US - DAY_US),
      ep("GET", "/api/s63/{id}", 2, 2, NOW_US - DAY_US),
      ep("GET", "/api/s64/{id}", 1, 1, NOW_US - DAY_US),
  };
  struct kw_review_key k = key("mb_All1", "All", NULL, eps, 3);
  const struct kw_review_row *w;
  (void)state;
  assert_non_null(yaml);
  o += (size_t)snprintf(yaml + o, cap - o, "scopes:\n");
  for (int i = 0; i < 65; i++)
    o += (size_t)snprintf(yaml + o, cap - o, "  - {name: s%d, endpoints: [\"GET /api/s%d/*\"]}\n",
                          i, i);
  snprintf(yaml + o, cap - o, "grants:\n  - {groups: [All], scopes: [\"*\"]}\n");
  rs = ruleset_load_text(g_path, yaml);
  free(yaml);
  assert_int_equal(rs->nscopes, 65);

  assert_int_equal(kw_review_create(rs, &op, &r), KW_ETOOLONG);
  assert_non_null(r);
  assert_int_equal(kw_review_add(r, &k), 0);
  w = kw_review_rows(r, &n);
  assert_int_equal(n, 1);
  assert_int_equal(w->ngranted, 64); /* s0..s63 */
  assert_string_equal(w->granted[0], "s0");
  assert_string_equal(w->granted[63], "s63");
  assert_int_equal(w->nused, 2);
  assert_string_equal(w->used[0].scope, "s0");
  assert_string_equal(w->used[1].scope, "s63");
  assert_int_equal(w->nunused, 62);
  /* s64 is not part of the review: its endpoint counts as one no scope covers, which
   * cannot be judged outside a grant */
  assert_int_equal(w->outside_calls, 0);
  assert_null(w->outside_example);
  assert_contains(w->why, "1 endpoint no scope covers");
  kw_review_destroy(r);
  kw_ruleset_destroy(rs);

  /* exactly 64 scopes: fine */
  cap = 16384, o = 0;
  yaml = malloc(cap);
  assert_non_null(yaml);
  o += (size_t)snprintf(yaml + o, cap - o, "scopes:\n");
  for (int i = 0; i < 64; i++)
    o += (size_t)snprintf(yaml + o, cap - o, "  - {name: s%d, endpoints: [\"GET /api/s%d/*\"]}\n",
                          i, i);
  snprintf(yaml + o, cap - o, "grants:\n  - {groups: [All], scopes: [\"*\"]}\n");
  rs = ruleset_load_text(g_path, yaml);
  free(yaml);
  assert_int_equal(kw_review_create(rs, &op, &r), 0);
  k.nendpoints = 2;
  assert_int_equal(kw_review_add(r, &k), 0);
  w = kw_review_rows(r, &n);
  assert_int_equal(w->ngranted, 64);
  assert_int_equal(w->nunused, 62);
  assert_int_equal(w->outside_calls, 0);
  assert_finding(w, KW_FIND_OVER_PRIVILEGED, 2, "every scope", NULL);
  /* the only group that covers it is its own */
  assert_string_equal(w->recommendation, "keep");
  kw_review_destroy(r);
  kw_ruleset_destroy(rs);
}

/* ---- many keys -------------------------------------------------------------------------- */

/* 5,000 keys sharing five templates (the covering cache is shared): every row is what the
 * same key reviewed alone gives. */
static void test_many_keys(void **state) {
  enum { NKEYS = 5000 };
  static const char *const groups[] = {"Administrators", "Analysts", "Editors", NULL};
  static const char *const expect_rec[] = {"group Editors", "group Editors", "keep",
                                           "scopes read, write"};
  struct kw_review_opts o = opts();
  struct kw_review *r;
  size_t n;
  const struct kw_review_row *rows;
  char prefix[32];
  (void)state;
  assert_int_equal(kw_review_create(g_rs, &o, &r), 0);
  for (int i = 0; i < NKEYS; i++) {
    struct kw_review_endpoint eps[] = {
        ep("GET", "/api/card/{id}", 1 + i % 7, 1 + i % 7, NOW_US - DAY_US),
        ep("GET", "/api/dashboard/{id}", 2, 2, NOW_US - DAY_US),
        ep("PUT", "/api/card/{id}", 1 + i % 3, 1, NOW_US - 2 * DAY_US),
        ep("DELETE", "/api/card/{id}", 1, 0, NOW_US - 3 * DAY_US),
        ep("GET", "/api/session/properties", 5, 5, NOW_US - DAY_US),
    };
    struct kw_review_key k;
    snprintf(prefix, sizeof(prefix), "mb_N%05d", i);
    k = key(prefix, groups[i % 4], NULL, eps, 5);
    assert_int_equal(kw_review_add(r, &k), 0);
  }
  rows = kw_review_rows(r, &n);
  assert_int_equal(n, NKEYS);
  for (int i = 0; i < NKEYS; i++) {
    const struct kw_review_row *w = &rows[i];
    int64_t reads = 1 + i % 7 + 2, writes = 1 + i % 3 + 1;
    snprintf(prefix, sizeof(prefix), "mb_N%05d", i);
    assert_string_equal(w->prefix, prefix);
    assert_int_equal(w->calls, reads + writes + 5);
    assert_string_equal(w->recommendation, expect_rec[i % 4]);
    assert_contains(w->why, "1 endpoint no scope covers");
    switch (i % 4) {
    case 0: /* Administrators: reads and writes, never administers */
      assert_int_equal(w->ngranted, 3);
      assert_int_equal(w->outside_calls, 0); /* the uncatalogued endpoint is not judged */
      assert_kinds(w, BIT(KW_FIND_OVER_PRIVILEGED));
      break;
    case 1: /* Analysts: writes outside the grant */
      assert_int_equal(w->outside_calls, writes);
      assert_int_equal(w->outside_ok, 1 + 0);
      assert_kinds(w, BIT(KW_FIND_OUTSIDE_GRANT));
      break;
    case 2: /* Editors: uses what it has */
      assert_int_equal(w->outside_calls, 0);
      assert_int_equal(w->nused, 2);
      assert_kinds(w, 0);
      break;
    default: /* no grant */
      assert_false(w->grant_known);
      assert_int_equal(w->outside_calls, 0);
      assert_kinds(w, 0);
      break;
    }
    if (i % 4 == 0 || i % 4 == 2) { /* read and write used, most calls first */
      assert_int_equal(w->nused, 2);
      assert_true(w->used[0].calls >= w->used[1].calls);
      assert_int_equal(w->used[0].calls + w->used[1].calls, reads + writes);
    }
  }
  kw_review_destroy(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_row_rights),
      cmocka_unit_test(test_unused),
      cmocka_unit_test(test_dormant_woke),
      cmocka_unit_test(test_over_privileged_admin_group),
      cmocka_unit_test(test_over_privileged_near_miss_editors),
      cmocka_unit_test(test_over_privileged_permission),
      cmocka_unit_test(test_over_privileged_config_grant),
      cmocka_unit_test(test_outside_grant),
      cmocka_unit_test(test_outside_grant_one_call),
      cmocka_unit_test(test_rotation_due),
      cmocka_unit_test(test_many_sources),
      cmocka_unit_test(test_no_grant_greedy),
      cmocka_unit_test(test_uncatalogued),
      cmocka_unit_test(test_counts),
      cmocka_unit_test(test_65_scopes),
      cmocka_unit_test(test_many_keys),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
