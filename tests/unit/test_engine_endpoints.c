/* test_engine_endpoints.c — the engine's rules on what a key calls (analyzer/engine.c):
 * new_endpoint (a method and endpoint template the key did not use while learning, per
 * endpoint or once per endpoint set) and enumeration (many distinct object ids of one
 * template in a window).  scope_violation is in test_engine_scopes.c.
 *
 * Each test writes a small rule pack (short windows and learning periods) into the temp
 * directory, drives the engine with synthetic kw_call records (endpoint templates from
 * kw_endpoint_template(), as the pipeline does) and counts the firings its callback
 * receives; the fixture is kwtest_engine.h.  Every event time is AT(us), T0 + us, T0 being
 * Monday 2025-11-03 00:00:00 UTC.
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

#include "analyzer/engine.h"
#include "analyzer/rules.h"

#include "kwtest_engine.h"

/* ---- new_endpoint ------------------------------------------------------------------- */

static void test_new_endpoint_per_endpoint(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: newep, type: new_endpoint, learn: 1h, min_history: 5}\n",
           NULL);
  for (int i = 0; i < 10; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", 100 + i);
    get(v.e, AT(i * MIN), "mb_Ep01", "10.1.2.3", path);
    snprintf(path, sizeof(path), "/api/dashboard/%d", 100 + i);
    get(v.e, AT(i * MIN), "mb_Ep01", "10.1.2.3", path);
  }
  EXPECT_FIRED("newep", NULL, 0);
  /* the same templates with other ids: known */
  get(v.e, AT(2 * HOUR), "mb_Ep01", "10.1.2.3", "/api/card/999999");
  get(v.e, AT(2 * HOUR), "mb_Ep01", "10.1.2.3", "/api/dashboard/1?x=1");
  EXPECT_FIRED("newep", NULL, 0);
  /* a new template fires, once */
  get(v.e, AT(3 * HOUR), "mb_Ep01", "10.1.2.3", "/api/user");
  EXPECT_FIRED("newep", "mb_Ep01", 1);
  assert_non_null(strstr(first("newep")->summary, "GET /api/user"));
  get(v.e, AT(4 * HOUR), "mb_Ep01", "10.1.2.3", "/api/user");
  EXPECT_FIRED("newep", "mb_Ep01", 1);
  /* a known template with a new method is a new endpoint */
  hit(v.e, AT(5 * HOUR), "mb_Ep01", "10.1.2.3", "DELETE", "/api/card/5", 204, 0, "c/1");
  EXPECT_FIRED("newep", "mb_Ep01", 2);
  env_close(&v);
}

static void test_new_endpoint_per_set(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: admin\n"
               "    type: new_endpoint\n"
               "    learn: 1h\n"
               "    min_history: 5\n"
               "    per: set\n"
               "    endpoints: [\"* /api/user\", \"* /api/user/**\"]\n",
           NULL);
  /* mb_Adm1 called one admin endpoint while learning; mb_Usr1 none */
  for (int i = 0; i < 10; i++) {
    get(v.e, AT(i * MIN), "mb_Adm1", "10.1.2.3", i == 3 ? "/api/user" : "/api/card/1");
    get(v.e, AT(i * MIN), "mb_Usr1", "10.1.2.3", "/api/card/1");
  }
  /* mb_Few1: only 3 calls by the end of learning */
  for (int i = 0; i < 3; i++)
    get(v.e, AT(i * MIN), "mb_Few1", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("admin", NULL, 0);
  /* any endpoint of the set is known to mb_Adm1 */
  get(v.e, AT(2 * HOUR), "mb_Adm1", "10.1.2.3", "/api/user/5");
  hit(v.e, AT(2 * HOUR), "mb_Adm1", "10.1.2.3", "POST", "/api/user", 200, 10, "c/1");
  /* endpoints outside the set never fire */
  get(v.e, AT(2 * HOUR), "mb_Usr1", "10.1.2.3", "/api/setting");
  /* too little history to judge */
  get(v.e, AT(2 * HOUR), "mb_Few1", "10.1.2.3", "/api/user/5");
  EXPECT_FIRED("admin", NULL, 0);
  /* mb_Usr1's first admin call fires, once for the set */
  get(v.e, AT(3 * HOUR), "mb_Usr1", "10.1.2.3", "/api/user/5");
  EXPECT_FIRED("admin", "mb_Usr1", 1);
  hit(v.e, AT(4 * HOUR), "mb_Usr1", "10.1.2.3", "POST", "/api/user", 200, 10, "c/1");
  EXPECT_FIRED("admin", "mb_Usr1", 1);
  env_close(&v);
}

/* ---- enumeration -------------------------------------------------------------------- */

static const char ENUM_PACK[] =
    "rules:\n"
    "  - {id: enum, type: enumeration, window: 10m, distinct_ids: 200}\n";

static void test_enumeration(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, ENUM_PACK, NULL);
  /* 300 distinct ids in 5 minutes */
  for (int i = 1; i <= 300; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", i);
    get(v.e, AT(i * SEC), "mb_Enu1", "10.1.2.3", path);
  }
  assert_true(fired("enum", "mb_Enu1") >= 1);
  assert_non_null(strstr(first("enum")->summary, "distinct objects"));
  /* first when about 200 were requested (linear counting: a few percent off) */
  print_message("enumeration: first firing at the %lld-th distinct id\n",
                (long long)((first("enum")->ts - AT(0)) / SEC));
  assert_true(first("enum")->ts >= AT(180 * SEC) && first("enum")->ts <= AT(220 * SEC));
  env_close(&v);
}

static void test_enumeration_near_miss(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, ENUM_PACK, NULL);
  /* the same 20 ids, 50 times each */
  for (int i = 0; i < 1000; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", 1 + i % 20);
    get(v.e, AT(i * 200000), "mb_Enu1", "10.1.2.3", path);
  }
  /* 150 distinct ids: under 200 */
  for (int i = 1; i <= 150; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", 1000 + i);
    get(v.e, AT(HOUR + i * SEC), "mb_Enu2", "10.1.2.3", path);
  }
  /* 300 query strings on one object are one object */
  for (int i = 1; i <= 300; i++) {
    snprintf(path, sizeof(path), "/api/card/7?page=%d", i);
    get(v.e, AT(2 * HOUR + i * SEC), "mb_Enu3", "10.1.2.3", path);
  }
  /* paths without an id placeholder are not objects */
  for (int i = 1; i <= 300; i++) {
    snprintf(path, sizeof(path), "/api/search/q%c%c", 'a' + i % 26, 'a' + i / 26);
    get(v.e, AT(3 * HOUR + i * SEC), "mb_Enu4", "10.1.2.3", path);
  }
  EXPECT_FIRED("enum", NULL, 0);
  env_close(&v);
}

/* "many distinct object ids of one endpoint template": ids of different templates do
 * not add up (a dashboard opening 150 cards and 150 of its queries is no walk). */
static void test_enumeration_per_template(void **state) {
  struct env v;
  char path[64];
  (void)state;
  env_open(&v, ENUM_PACK, NULL);
  for (int i = 1; i <= 150; i++) {
    snprintf(path, sizeof(path), "/api/card/%d", i);
    get(v.e, AT(i * SEC), "mb_Enu5", "10.1.2.3", path);
    snprintf(path, sizeof(path), "/api/dashboard/%d", i);
    get(v.e, AT(i * SEC), "mb_Enu5", "10.1.2.3", path);
  }
  EXPECT_FIRED("enum", NULL, 0);
  env_close(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_new_endpoint_per_endpoint, env_teardown),
      cmocka_unit_test_teardown(test_new_endpoint_per_set, env_teardown),
      cmocka_unit_test_teardown(test_enumeration, env_teardown),
      cmocka_unit_test_teardown(test_enumeration_near_miss, env_teardown),
      cmocka_unit_test_teardown(test_enumeration_per_template, env_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
