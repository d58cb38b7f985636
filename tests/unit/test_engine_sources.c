/* test_engine_sources.c — the engine's rules on where calls come from (analyzer/engine.c):
 * new_source (learned /16 and /48 networks, min_history, a CIDR allowlist), ip_fanout
 * (distinct addresses per key and window) and auth_failures (refused calls per key or per
 * client address).
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

/* ---- new_source --------------------------------------------------------------------- */

static const char NET_PACK[] = "rules:\n"
                               "  - id: net\n"
                               "    type: new_source\n"
                               "    prefix4: 16\n"
                               "    prefix6: 48\n"
                               "    learn: 1h\n"
                               "    min_history: 5\n";

static void test_new_source_learned(void **state) {
  struct env v;
  (void)state;
  env_open(&v, NET_PACK, NULL);
  for (int i = 0; i < 10; i++)
    get(v.e, AT(i * 5 * MIN), "mb_Net1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(20 * MIN), "mb_Net1", "172.16.5.5", "/api/card/1");       /* learned */
  get(v.e, AT(25 * MIN), "mb_Net1", "2001:db8:1:2::5", "/api/card/1"); /* learned */
  EXPECT_FIRED("net", NULL, 0);
  /* after learning: other hosts of known /16 and /48 networks are fine */
  get(v.e, AT(2 * HOUR), "mb_Net1", "10.1.77.8", "/api/card/1");
  get(v.e, AT(2 * HOUR + MIN), "mb_Net1", "172.16.200.1", "/api/card/1");
  get(v.e, AT(2 * HOUR + 2 * MIN), "mb_Net1", "2001:db8:1:ffff::1", "/api/card/1");
  EXPECT_FIRED("net", NULL, 0);
  /* a new /16 fires */
  get(v.e, AT(3 * HOUR), "mb_Net1", "10.2.0.1", "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 1);
  assert_non_null(strstr(first("net")->summary, "10.2.0.1"));
  /* then it is known: another host of it does not fire again */
  get(v.e, AT(4 * HOUR), "mb_Net1", "10.2.9.9", "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 1);
  /* a new /48 fires */
  get(v.e, AT(5 * HOUR), "mb_Net1", "2001:db8:2::1", "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 2);
  /* calls without an address are not judged */
  get(v.e, AT(6 * HOUR), "mb_Net1", NULL, "/api/card/1");
  EXPECT_FIRED("net", "mb_Net1", 2);
  env_close(&v);
}

/* A key with less than min_history calls is still learning after the learning period. */
static void test_new_source_min_history(void **state) {
  struct env v;
  (void)state;
  env_open(&v, NET_PACK, NULL);
  get(v.e, AT(0), "mb_Few1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(MIN), "mb_Few1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(2 * MIN), "mb_Few1", "10.1.2.3", "/api/card/1");
  get(v.e, AT(2 * HOUR), "mb_Few1", "192.0.2.1", "/api/card/1"); /* 4th call: learns */
  EXPECT_FIRED("net", NULL, 0);
  get(v.e, AT(3 * HOUR), "mb_Few1", "10.1.2.3", "/api/card/1"); /* 5th */
  get(v.e, AT(4 * HOUR), "mb_Few1", "198.51.100.1", "/api/card/1");
  EXPECT_FIRED("net", "mb_Few1", 1);
  env_close(&v);
}

static void test_new_source_cidrs(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: allow\n"
               "    type: new_source\n"
               "    cidrs: [10.0.0.0/8, \"2001:db8::/32\"]\n",
           NULL);
  /* allowlist mode: judged from the first call, no learning */
  get(v.e, AT(0), "mb_Cid1", "10.200.1.1", "/api/card/1");
  get(v.e, AT(MIN), "mb_Cid1", "2001:db8:ffff::1", "/api/card/1");
  get(v.e, AT(2 * MIN), "mb_Cid1", "11.0.0.1", "/api/card/1");
  EXPECT_FIRED("allow", "mb_Cid1", 1);
  assert_non_null(strstr(first("allow")->summary, "11.0.0.1"));
  get(v.e, AT(4 * MIN), "mb_Cid1", "2001:db9::1", "/api/card/1");
  EXPECT_FIRED("allow", "mb_Cid1", 2);
  get(v.e, AT(6 * MIN), "mb_Cid2", "9.255.255.255", "/api/card/1");
  EXPECT_FIRED("allow", "mb_Cid2", 1);
  env_close(&v);
}

/* ---- ip_fanout ---------------------------------------------------------------------- */

static const char FAN_PACK[] =
    "rules:\n"
    "  - {id: fan, type: ip_fanout, window: 1h, max_addresses: 10}\n";

static void fan_call(struct kw_engine *e, int64_t ts, const char *key, int host) {
  char ip[32];
  snprintf(ip, sizeof(ip), "198.51.100.%d", host);
  get(e, ts, key, ip, "/api/card/1");
}

static void test_ip_fanout(void **state) {
  struct env v;
  (void)state;
  env_open(&v, FAN_PACK, NULL);
  /* 10 addresses, each used 5 times over 50 minutes: at the limit, silent */
  for (int round = 0; round < 5; round++)
    for (int h = 1; h <= 10; h++)
      fan_call(v.e, AT(round * 10 * MIN + h * MIN / 2), "mb_Fan1", h);
  EXPECT_FIRED("fan", NULL, 0);
  /* an 11th within the hour fires */
  fan_call(v.e, AT(55 * MIN), "mb_Fan1", 11);
  EXPECT_FIRED("fan", "mb_Fan1", 1);
  assert_non_null(strstr(first("fan")->summary, "11 distinct addresses"));

  /* one address per minute: fires at the 11th */
  reset();
  for (int h = 1; h <= 11; h++)
    fan_call(v.e, AT(DAY + h * MIN), "mb_Fan2", h);
  EXPECT_FIRED("fan", "mb_Fan2", 1);
  assert_true(first("fan")->ts == AT(DAY + 11 * MIN));
  env_close(&v);
}

static void test_ip_fanout_ages_out(void **state) {
  struct env v;
  (void)state;
  env_open(&v, FAN_PACK, NULL);
  /* 10 addresses now, 10 others 61 minutes later: never more than 10 within an hour */
  for (int h = 1; h <= 10; h++)
    fan_call(v.e, AT(h * SEC), "mb_Fan1", h);
  for (int h = 11; h <= 20; h++)
    fan_call(v.e, AT(61 * MIN + h * SEC), "mb_Fan1", h);
  EXPECT_FIRED("fan", NULL, 0);
  /* and 25 addresses spread over 5 hours (5 an hour) never fire */
  for (int h = 21; h <= 45; h++)
    fan_call(v.e, AT(3 * HOUR + (h - 21) * 12 * MIN), "mb_Fan1", h);
  EXPECT_FIRED("fan", NULL, 0);
  env_close(&v);
}

/* max_addresses above what the engine tracks per key (32) must not fire early: a pack
 * that allows 40 addresses gets no alert at 35 (or is refused when loaded). */
static void test_ip_fanout_large_max(void **state) {
  struct kw_ruleset *rs = NULL;
  struct kw_engine *e = NULL;
  char path[160], err[512];
  char *packs[] = {path};
  FILE *f;
  (void)state;
  snprintf(path, sizeof(path), "%s/fan40.yaml", g_dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("rules:\n  - {id: fan, type: ip_fanout, window: 1h, max_addresses: 40}\n", f);
  assert_int_equal(fclose(f), 0);
  if (kw_ruleset_load(packs, 1, &rs, err, sizeof(err)) != 0)
    return; /* refused: fine, the user is told */
  assert_int_equal(kw_engine_create(rs, NULL, &e), 0);
  track(rs, e);
  reset();
  for (int h = 1; h <= 35; h++)
    fan_call(e, AT(h * MIN), "mb_Fan4", h);
  if (fired("fan", NULL) != 0)
    fail_msg("max_addresses: 40 fired at 35 addresses: %s", g_f[0].summary);
  untrack_destroy(rs, e);
}

/* ---- auth_failures ------------------------------------------------------------------ */

static void test_auth_failures_key(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: auth, type: auth_failures, window: 5m, threshold: 5}\n",
           NULL);
  /* successes and other errors do not count */
  for (int i = 0; i < 10; i++) {
    hit(v.e, AT(i * SEC), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 200, 10, "c/1");
    hit(v.e, AT(i * SEC), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 404, 10, "c/1");
  }
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(MIN + i * SEC), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 401, 10, "c/1");
  EXPECT_FIRED("auth", NULL, 0);
  /* the 5th within 5 minutes fires (a 403 counts too) */
  hit(v.e, AT(2 * MIN), "mb_Aut1", "10.1.2.3", "GET", "/api/card/1", 403, 10, "c/1");
  EXPECT_FIRED("auth", "mb_Aut1", 1);
  assert_non_null(strstr(first("auth")->summary, "5 failed calls"));

  /* 5 failures 2 minutes apart: at most 3 in any 5 minutes */
  reset();
  for (int i = 0; i < 5; i++)
    hit(v.e, AT(HOUR + i * 2 * MIN), "mb_Aut2", "10.1.2.3", "GET", "/", 401, 10, "c/1");
  EXPECT_FIRED("auth", NULL, 0);
  /* failures of other keys do not add up for a key */
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(2 * HOUR + i * SEC), "mb_Aut3", "10.1.2.3", "GET", "/", 401, 10, "c/1");
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(2 * HOUR + i * SEC), "mb_Aut4", "10.1.2.3", "GET", "/", 401, 10, "c/1");
  EXPECT_FIRED("auth", NULL, 0);
  env_close(&v);
}

static void test_auth_failures_by_address(void **state) {
  struct env v;
  char key[16];
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: auth-ip, type: auth_failures, window: 5m, threshold: 5, by: address}\n",
           NULL);
  /* 5 keys, one failure each, from one address: an address probing keys */
  for (int i = 0; i < 4; i++) {
    snprintf(key, sizeof(key), "mb_Prb%d", i);
    hit(v.e, AT(i * SEC), key, "198.51.100.7", "GET", "/api/user", 401, 10, "c/1");
  }
  /* 4 from another address do not add up */
  for (int i = 0; i < 4; i++)
    hit(v.e, AT(i * SEC), NULL, "198.51.100.8", "GET", "/api/user", 401, 10, "c/1");
  EXPECT_FIRED("auth-ip", NULL, 0);
  hit(v.e, AT(10 * SEC), "mb_Prb9", "198.51.100.7", "GET", "/api/user", 401, 10, "c/1");
  EXPECT_FIRED("auth-ip", NULL, 1);
  assert_non_null(strstr(g_f[0].details, "\"by\": \"address\""));
  /* anonymous calls count per address too */
  reset();
  for (int i = 0; i < 5; i++)
    hit(v.e, AT(HOUR + i * SEC), NULL, "203.0.113.50", "POST", "/api/session", 403, 10, "c/1");
  EXPECT_FIRED("auth-ip", NULL, 1);
  assert_false(g_f[0].has_key);
  env_close(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_new_source_learned, env_teardown),
      cmocka_unit_test_teardown(test_new_source_min_history, env_teardown),
      cmocka_unit_test_teardown(test_new_source_cidrs, env_teardown),
      cmocka_unit_test_teardown(test_ip_fanout, env_teardown),
      cmocka_unit_test_teardown(test_ip_fanout_ages_out, env_teardown),
      cmocka_unit_test_teardown(test_ip_fanout_large_max, env_teardown),
      cmocka_unit_test_teardown(test_auth_failures_key, env_teardown),
      cmocka_unit_test_teardown(test_auth_failures_by_address, env_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
