/* test_engine_scopes.c — scope_violation with grants by key-store group and permission
 * (analyzer/engine.c, kw_engine_set_key_attrs()), the built-in scope catalogues in the
 * engine, and the path from the store's key inventory to the engine
 * (kw_store_key_attrs(), kw_pipeline_enable_rules()).  Grants by key, with the wording
 * and severity of the firings, come first (test_scope_violation).
 *
 * Each test writes its pack into a fresh temp directory, drives the engine with synthetic
 * calls (endpoint templates from kw_endpoint_template(), as the pipeline makes them) and
 * counts firings per key.  Every case that must fire has a near miss that must not.
 * test_scope_violation runs on the engine fixture of kwtest_engine.h (its firing log); the
 * others count the scope rule's firings per key themselves, with the calls, key
 * fingerprints and time units of kwtest_engine.h.
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

#include "analyzer/endpoint.h"
#include "analyzer/engine.h"
#include "analyzer/rules.h"
#include "sidecar/alerts.h"
#include "sidecar/call.h"
#include "sidecar/config.h"
#include "sidecar/err.h"
#include "sidecar/fingerprint.h"
#include "sidecar/pipeline.h"
#include "sidecar/revocations.h"
#include "sidecar/store.h"

#include "kwtest_engine.h"
#include "kwtest_files.h"

#define T0 AT(0) /* Monday 2025-11-03 00:00:00 UTC, in µs */

static char g_pack[128];
static struct kw_ruleset *g_rs;
static struct kw_engine *g_e;
static char g_fired[64][16]; /* prefixes of the keys the scope rule fired for */
static size_t g_nfired;
static int g_minute;

static int setup(void **state) {
  (void)state;
  if (temp_dir_make(g_dir, sizeof(g_dir), "kwscopes") != 0)
    return -1;
  snprintf(g_pack, sizeof(g_pack), "%s/pack.yaml", g_dir);
  g_nfired = 0;
  g_minute = 0;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  kw_engine_destroy(g_e);
  kw_ruleset_destroy(g_rs);
  g_e = NULL;
  g_rs = NULL;
  return temp_dir_remove(g_dir);
}

/* Loads packs (the test's pack file is "PACK") into g_rs and a new engine g_e. */
static void open_engine(const char *pack, char *const *packs, size_t n) {
  char err[1024];
  char *self[] = {g_pack};
  write_text(g_pack, pack);
  if (packs == NULL) {
    packs = self;
    n = 1;
  }
  if (kw_ruleset_load(packs, n, &g_rs, err, sizeof(err)) != 0)
    fail_msg("packs do not load: %s", err);
  assert_int_equal(kw_engine_create(g_rs, NULL, &g_e), 0);
}

static void on_fire(const struct kw_firing *f, const struct kw_rule *rule, void *ctx) {
  (void)ctx;
  assert_int_equal(rule->type, KW_RULE_SCOPE_VIOLATION);
  assert_true(f->has_key);
  if (g_nfired < 64)
    snprintf(g_fired[g_nfired++], sizeof(g_fired[0]), "%s", f->prefix);
}

/* Firings of the scope rule for key prefix (since the test's setup). */
static size_t scope_fired(const char *prefix) {
  size_t n = 0;
  for (size_t i = 0; i < g_nfired; i++)
    n += strcmp(g_fired[i], prefix) == 0;
  return n;
}

static void attrs(const char *key, const char *group, const char *permission) {
  uint8_t fp[KW_FP_LEN];
  key_fp(key, fp);
  assert_int_equal(kw_engine_set_key_attrs(g_e, fp, group, permission), 0);
}

/* One call of key at T0 + minute from 10.1.2.3, answered 200; returns the firings. */
static int call(struct kw_engine *e, int minute, const char *key, const char *method,
                const char *path) {
  char ep[KW_ENDPOINT_MAX + 1];
  struct kw_call c;
  call_fill(&c, ep, T0 + minute * MIN, key, "10.1.2.3", method, path, 200, -1, "t/1");
  return kw_engine_call(e, &c, on_fire, NULL);
}

/* Calls are two minutes apart: a rule fires at most once a minute per key. */
#define EXPECT(key, method, path, n)                                                        \
  do {                                                                                     \
    int got_ = call(g_e, g_minute += 2, key, method, path);                                \
    if (got_ != (n))                                                                       \
      fail_msg("%s %s %s: %d firings, expected %d", key, method, path, got_, (int)(n));    \
  } while (0)

/* ---- scope_violation ---------------------------------------------------------------- */

static void test_scope_violation(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: scope, type: scope_violation, severity: high}\n"
               "scopes:\n"
               "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
               "  - {name: cards, endpoints: [\"POST /api/card\", \"PUT /api/card/*\"]}\n"
               "grants:\n"
               "  - {keys: [mb_Read], scopes: [read]}\n"
               "  - {keys: [mb_Writ], scopes: [read, cards]}\n",
           NULL);
  /* within the grant */
  get(v.e, AT(0), "mb_Read", "10.1.2.3", "/api/card/1");
  get(v.e, AT(0), "mb_Read", "10.1.2.3", "/api/dashboard/7/cards");
  hit(v.e, AT(0), "mb_Writ", "10.1.2.3", "POST", "/api/card", 200, 10, "c/1");
  hit(v.e, AT(0), "mb_Writ", "10.1.2.3", "PUT", "/api/card/12", 200, 10, "c/1");
  /* a key without any grant is not judged */
  hit(v.e, AT(0), "mb_Nogr", "10.1.2.3", "DELETE", "/api/card/12", 200, 10, "c/1");
  EXPECT_FIRED("scope", NULL, 0);
  /* outside: a read key writing, a card writer deleting */
  hit(v.e, AT(MIN), "mb_Read", "10.1.2.3", "POST", "/api/card", 200, 10, "c/1");
  EXPECT_FIRED("scope", "mb_Read", 1);
  assert_non_null(strstr(first("scope")->summary, "POST /api/card"));
  assert_non_null(strstr(first("scope")->summary, "succeeded"));
  assert_int_equal(first("scope")->severity, KW_SEV_HIGH);
  hit(v.e, AT(MIN), "mb_Writ", "10.1.2.3", "DELETE", "/api/card/12", 403, 10, "c/1");
  EXPECT_FIRED("scope", "mb_Writ", 1);
  assert_non_null(strstr(g_f[1].summary, "refused"));
  /* outside of /api/ entirely */
  get(v.e, AT(3 * MIN), "mb_Read", "10.1.2.3", "/internal/metrics");
  EXPECT_FIRED("scope", "mb_Read", 2);
  env_close(&v);
}

/* test_scope_violation runs on the engine fixture alone: group_setup() makes its temp
 * directory and firing log, this teardown frees what it left open, then those. */
static int env_group_teardown(void **state) {
  int rc = env_teardown(state);
  return group_teardown(state) != 0 ? -1 : rc;
}

/* ---- grants by group and permission -------------------------------------------------- */

static const char GROUPS_PACK[] =
    "rules:\n"
    "  - {id: scope, type: scope_violation}\n"
    "scopes:\n"
    "  - {name: read, endpoints: [\"GET /api/**\"]}\n"
    "  - {name: write, endpoints: [\"POST /api/**\", \"PUT /api/**\"]}\n"
    "grants:\n"
    "  - {groups: [Analysts], scopes: [read]}\n"
    "  - {groups: [Editors], scopes: [read, write]}\n"
    "  - {permissions: [r], scopes: [read]}\n"
    "  - {keys: [mb_Keyw], scopes: [write]}\n";

/* Attributes given before the keys' first calls. */
static void test_group_and_permission_grants(void **state) {
  (void)state;
  open_engine(GROUPS_PACK, NULL, 0);
  attrs("mb_Anal", "Analysts", NULL);
  attrs("mb_Edit", "Editors", NULL);
  attrs("mb_Near", "Analyst", NULL); /* no grant names this group */
  attrs("st_Read", NULL, "r");
  attrs("st_Nrrw", NULL, "rw");      /* nor this permission */
  attrs("mb_Keyw", "Analysts", NULL); /* a key grant and a group grant add up */
  EXPECT("mb_Anal", "GET", "/api/card/1", 0);
  EXPECT("mb_Anal", "POST", "/api/card", 1);
  EXPECT("mb_Edit", "POST", "/api/card", 0);
  EXPECT("mb_Edit", "DELETE", "/api/card/1", 1);
  EXPECT("mb_Near", "DELETE", "/api/card/1", 0); /* no grant applies: not judged */
  EXPECT("st_Read", "GET", "/api/rows", 0);
  EXPECT("st_Read", "PUT", "/api/rows", 1);
  EXPECT("st_Nrrw", "PUT", "/api/rows", 0);
  EXPECT("mb_Keyw", "GET", "/api/card/1", 0);
  EXPECT("mb_Keyw", "POST", "/api/card", 0);
  EXPECT("mb_Keyw", "DELETE", "/api/card/1", 1);
  assert_int_equal(scope_fired("mb_Anal") + scope_fired("mb_Edit") + scope_fired("st_Read") +
                       scope_fired("mb_Keyw"),
                   4);
  assert_int_equal(scope_fired("mb_Near") + scope_fired("st_Nrrw"), 0);
}

/* Attributes that arrive after the key's first call apply from then on; a second call
 * replaces the first; unknown attributes take the grant away. */
static void test_attrs_after_first_call(void **state) {
  (void)state;
  open_engine(GROUPS_PACK, NULL, 0);
  EXPECT("mb_Late", "POST", "/api/card", 0); /* no grant yet */
  attrs("mb_Late", "Analysts", NULL);
  EXPECT("mb_Late", "POST", "/api/card", 1);
  EXPECT("mb_Late", "GET", "/api/card/1", 0);
  attrs("mb_Late", "Editors", NULL);
  EXPECT("mb_Late", "POST", "/api/card", 0);
  attrs("mb_Late", NULL, "r");
  EXPECT("mb_Late", "POST", "/api/card", 1);
  attrs("mb_Late", NULL, NULL);
  EXPECT("mb_Late", "POST", "/api/card", 0);
  /* other keys are untouched */
  attrs("mb_Othr", "Editors", NULL);
  EXPECT("mb_Late", "DELETE", "/api/card/1", 0);
  EXPECT("mb_Othr", "DELETE", "/api/card/1", 1);
}

/* The built-in Metabase catalogue with a group grant of one's own, in either order. */
static void test_metabase_catalogue(void **state) {
  char *packs[] = {g_pack, "builtin:metabase-scopes"};
  (void)state;
  open_engine("rules:\n"
              "  - {id: least-privilege, type: scope_violation, severity: high}\n"
              "grants:\n"
              "  - {groups: [Analysts], scopes: [metabase.read]}\n",
              packs, 2);
  attrs("mb_Admn", "Administrators", NULL);
  attrs("mb_Anal", "Analysts", NULL);
  attrs("mb_Adm2", "administrators", NULL); /* not Metabase's spelling: no grant */
  /* Administrators hold every scope ("*") */
  EXPECT("mb_Admn", "DELETE", "/api/api-key/12", 0);
  EXPECT("mb_Admn", "PUT", "/api/permissions/graph", 0);
  EXPECT("mb_Admn", "DELETE", "/api/card/3", 0);
  EXPECT("mb_Admn", "GET", "/api/card/3", 0);
  /* an analyst reads and runs queries, nothing else */
  EXPECT("mb_Anal", "GET", "/api/card/3", 0);
  EXPECT("mb_Anal", "POST", "/api/card/3/query", 0);
  EXPECT("mb_Anal", "POST", "/api/dataset", 0);
  EXPECT("mb_Anal", "GET", "/api/user/current", 0);
  EXPECT("mb_Anal", "DELETE", "/api/card/3", 1);
  EXPECT("mb_Anal", "GET", "/api/user/7", 1);
  EXPECT("mb_Anal", "POST", "/api/api-key", 1);
  EXPECT("mb_Adm2", "POST", "/api/api-key", 0);
  /* a call no Metabase scope covers is outside even the admin's grant */
  EXPECT("mb_Admn", "PATCH", "/api/card/3", 1);
}

/* More than 64 scopes: the key's bit set spans several words (no silent cap). */
static void test_many_scopes(void **state) {
  size_t cap = 16384, o = 0;
  char *pack = malloc(cap);
  (void)state;
  assert_non_null(pack);
  o += (size_t)snprintf(pack + o, cap - o,
                        "rules:\n  - {id: scope, type: scope_violation}\nscopes:\n");
  for (int i = 0; i < 130; i++)
    o += (size_t)snprintf(pack + o, cap - o, "  - {name: s%d, endpoints: [\"GET /s%d\"]}\n",
                          i, i);
  snprintf(pack + o, cap - o, "grants:\n  - {groups: [G], scopes: [s0, s64, s129]}\n");
  open_engine(pack, NULL, 0);
  free(pack);
  attrs("mb_Many", "G", NULL);
  EXPECT("mb_Many", "GET", "/s0", 0);
  EXPECT("mb_Many", "GET", "/s64", 0);
  EXPECT("mb_Many", "GET", "/s129", 0);
  EXPECT("mb_Many", "GET", "/s128", 1);
  EXPECT("mb_Many", "GET", "/s63", 1);
}

struct blob {
  void *p;
  size_t len;
};

static void on_export(const uint8_t *fp, const void *b, size_t len, void *ctx) {
  struct blob *bl = ctx;
  (void)fp;
  free(bl->p);
  bl->p = malloc(len);
  assert_non_null(bl->p);
  memcpy(bl->p, b, len);
  bl->len = len;
}

/* A restored baseline does not bring back the grants of before: they are computed again
 * from the rule set and the attributes the new engine was given. */
static void test_baseline_regrants(void **state) {
  struct blob bl = {0};
  struct kw_engine *e2;
  (void)state;
  open_engine(GROUPS_PACK, NULL, 0);
  attrs("mb_Base", "Editors", NULL);
  EXPECT("mb_Base", "POST", "/api/card", 0);
  kw_engine_export(g_e, on_export, &bl);
  assert_non_null(bl.p);
  /* the next run: the key store now lists it as an analyst */
  assert_int_equal(kw_engine_create(g_rs, NULL, &e2), 0);
  kw_engine_destroy(g_e);
  g_e = e2;
  assert_int_equal(kw_engine_import(g_e, bl.p, bl.len), 0);
  free(bl.p);
  /* no attributes yet: no grant, not judged (the old blob granted read and write only) */
  EXPECT("mb_Base", "DELETE", "/api/card/1", 0);
  attrs("mb_Base", "Analysts", NULL);
  EXPECT("mb_Base", "POST", "/api/card", 1);
}

/* ---- from the key inventory to the engine -------------------------------------------- */

static struct {
  char group[32], perm[8];
  uint8_t fp[KW_FP_LEN];
} g_attr[8];
static size_t g_nattr;

static void on_attrs(const uint8_t *fp, const char *group, const char *permission, void *ctx) {
  (void)ctx;
  assert_true(g_nattr < 8);
  memcpy(g_attr[g_nattr].fp, fp, KW_FP_LEN);
  snprintf(g_attr[g_nattr].group, sizeof(g_attr[0].group), "%s", group ? group : "-");
  snprintf(g_attr[g_nattr].perm, sizeof(g_attr[0].perm), "%s", permission ? permission : "-");
  g_nattr++;
}

static void store_call(struct kw_store *st, uint32_t src, const char *key) {
  struct kw_call c;
  memset(&c, 0, sizeof(c));
  c.ts_us = T0;
  c.has_key = true;
  key_fp(key, c.fp);
  snprintf(c.prefix, sizeof(c.prefix), "%.7s", key);
  c.method = kw_str_make("GET", 3);
  c.path = c.endpoint = kw_str_make("/api/x", 6);
  c.status = 200;
  c.req_bytes = c.resp_bytes = c.latency_us = -1;
  c.source_id = src;
  assert_int_equal(kw_store_add_call(st, &c), 0);
}

static void test_inventory_to_engine(void **state) {
  char db[128], err[512];
  struct kw_store *st;
  struct kw_config *cfg;
  struct kw_fingerprint *fpr;
  struct kw_pipeline *p;
  uint8_t fa[KW_FP_LEN], fgone[KW_FP_LEN];
  uint32_t src;
  (void)state;

  snprintf(db, sizeof(db), "%s/kw.db", g_dir);
  assert_int_equal(kw_store_open(db, 0, &st, err, sizeof(err)), 0);
  assert_int_equal(kw_store_source(st, "t", "file", "json", &src), 0);
  store_call(st, src, "mb_Anal");
  store_call(st, src, "st_Tokn");
  store_call(st, src, "mb_Gone");
  store_call(st, src, "mb_Nogr");
  assert_int_equal(kw_store_commit(st), 0);
  key_fp("mb_Anal", fa);
  key_fp("mb_Gone", fgone);
  const struct kw_inventory_item items[] = {
      {.store = "mb", .ref = "1", .group = "Analysts", .prefix = "mb_Anal"}, /* by prefix */
      {.store = "st", .ref = "t", .permission = "r", .prefix = "st_Tokn"},
      {.store = "mb", .ref = "3", .group = "Analysts", .fp = fgone},     /* swept below */
      {.store = "mb", .ref = "4", .prefix = "mb_Nogr"},                  /* no group */
      {.store = "mb", .ref = "5", .group = "Editors", .prefix = "mb_Unseen"}, /* no key */
  };
  for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
    assert_int_equal(kw_store_inventory_put(st, &items[i], i == 2 ? T0 : T0 + MIN), 0);
  assert_int_equal(kw_store_inventory_sweep(st, "mb", T0 + MIN), 0);
  assert_int_equal(kw_store_commit(st), 0);

  g_nattr = 0;
  assert_int_equal(kw_store_key_attrs(st, on_attrs, NULL), 0);
  assert_int_equal(g_nattr, 2);
  for (size_t i = 0; i < g_nattr; i++) {
    if (memcmp(g_attr[i].fp, fa, KW_FP_LEN) == 0) {
      assert_string_equal(g_attr[i].group, "Analysts");
      assert_string_equal(g_attr[i].perm, "-");
    } else {
      assert_string_equal(g_attr[i].group, "-");
      assert_string_equal(g_attr[i].perm, "r");
    }
  }

  /* the pipeline hands them to its engine when rules are enabled */
  write_text(g_pack, GROUPS_PACK);
  assert_int_equal(kw_config_default(&cfg), 0);
  assert_int_equal(kw_config_set(&cfg->rules[0], g_pack), 0);
  assert_int_equal(kw_fingerprint_create_from("0123456789abcdef0123456789abcdef", 32, &fpr), 0);
  assert_int_equal(kw_pipeline_create(cfg, st, fpr, &p), 0);
  if (kw_pipeline_enable_rules(p, err, sizeof(err)) != 0)
    fail_msg("enable_rules: %s", err);
  assert_int_equal(call(kw_pipeline_engine(p), 1, "mb_Anal", "POST", "/api/card"), 1);
  assert_int_equal(call(kw_pipeline_engine(p), 2, "mb_Anal", "GET", "/api/card"), 0);
  assert_int_equal(call(kw_pipeline_engine(p), 3, "st_Tokn", "PUT", "/api/rows"), 1);
  assert_int_equal(call(kw_pipeline_engine(p), 4, "mb_Gone", "POST", "/api/card"), 0);
  assert_int_equal(call(kw_pipeline_engine(p), 5, "mb_Nogr", "POST", "/api/card"), 0);
  kw_pipeline_destroy(p);
  kw_fingerprint_destroy(fpr);
  kw_config_destroy(cfg);
  assert_int_equal(kw_store_close(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_scope_violation, group_setup, env_group_teardown),
      cmocka_unit_test_setup_teardown(test_group_and_permission_grants, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attrs_after_first_call, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metabase_catalogue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_scopes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_baseline_regrants, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inventory_to_engine, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
