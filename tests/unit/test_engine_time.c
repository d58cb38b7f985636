/* test_engine_time.c — the engine and time (analyzer/engine.c): off_hours (learned hours,
 * or configured hours, days and time zone), throttling (a rule fires at most once a minute
 * per subject) and event time (a two-day replay of mixed traffic fires identically twice).
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

/* ---- off_hours ---------------------------------------------------------------------- */

/* Business hours while learning: days 0-2, 09:00-16:59, 5 calls an hour (120 calls). */
static void office_key(struct kw_engine *e, const char *key) {
  for (int d = 0; d < 3; d++)
    for (int h = 9; h < 17; h++)
      for (int k = 0; k < 5; k++)
        get(e, AT(d * DAY + h * HOUR + (5 + 10 * k) * MIN), key, "10.1.2.3", "/api/card/1");
}

static const char HOURS_LEARNED_PACK[] = "rules:\n"
                                         "  - id: night\n"
                                         "    type: off_hours\n"
                                         "    hours: learned\n"
                                         "    learn: 3d\n"
                                         "    min_history: 100\n"
                                         "    factor: 10\n"
                                         "    threshold: 10\n";

static void test_off_hours_learned(void **state) {
  struct env v;
  (void)state;
  env_open(&v, HOURS_LEARNED_PACK, NULL);
  office_key(v.e, "mb_Off1");
  office_key(v.e, "mb_Off2");
  /* a light key: 30 calls while learning, too little history to know its hours */
  for (int k = 0; k < 30; k++)
    get(v.e, AT(10 * HOUR + k * MIN), "mb_Lit1", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("night", NULL, 0);
  /* day 4 (learning over): its usual hours are fine */
  burst(v.e, AT(4 * DAY + 10 * HOUR), MIN, 20, "mb_Off1", "/api/card/1");
  EXPECT_FIRED("night", NULL, 0);
  /* 3 stray calls at 03:00 do not fire */
  burst(v.e, AT(4 * DAY + 3 * HOUR + 5 * MIN), MIN, 3, "mb_Off2", "/api/card/1");
  /* nor 40 calls of the light key */
  burst(v.e, AT(4 * DAY + 3 * HOUR), MIN / 2, 40, "mb_Lit1", "/api/card/1");
  EXPECT_FIRED("night", NULL, 0);
  /* 40 calls at 03:00-03:39 fire, first at the 10th */
  burst(v.e, AT(4 * DAY + 3 * HOUR), MIN, 40, "mb_Off1", "/api/card/1");
  assert_true(fired("night", "mb_Off1") >= 1);
  assert_true(first("night")->ts == AT(4 * DAY + 3 * HOUR + 9 * MIN));
  assert_non_null(strstr(first("night")->summary, "03:00-03:59"));
  assert_int_equal(fired("night", NULL), fired("night", "mb_Off1"));
  env_close(&v);
}

static void test_off_hours_configured(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - id: hours\n"
               "    type: off_hours\n"
               "    hours: \"09:00-17:00\"\n"
               "    days: mon-fri\n"
               "    timezone: \"+02:00\"\n"
               "    threshold: 3\n",
           NULL);
  /* Monday 07:30 UTC = 09:30 local: allowed, although before 09:00 UTC */
  burst(v.e, AT(7 * HOUR + 30 * MIN), MIN, 5, "mb_Hr01", "/api/card/1");
  /* Monday 14:30 UTC = 16:30 local: allowed */
  burst(v.e, AT(14 * HOUR + 30 * MIN), MIN, 5, "mb_Hr01", "/api/card/1");
  /* Monday 16:00 UTC = 18:00 local: 2 calls, under the threshold of 3 */
  burst(v.e, AT(16 * HOUR), MIN, 2, "mb_Hr01", "/api/card/1");
  /* 2 calls at 18:50 and 2 at 19:05 local: counted per hour */
  burst(v.e, AT(16 * HOUR + 50 * MIN), MIN, 2, "mb_Hr02", "/api/card/1");
  burst(v.e, AT(17 * HOUR + 5 * MIN), MIN, 2, "mb_Hr02", "/api/card/1");
  EXPECT_FIRED("hours", NULL, 0);
  /* Monday 15:10 UTC = 17:10 local: outside, the 3rd call fires */
  burst(v.e, AT(15 * HOUR + 10 * MIN), MIN, 3, "mb_Hr03", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr03", 1);
  assert_non_null(strstr(first("hours")->summary, "Monday"));
  /* Saturday 10:00 UTC = 12:00 local: outside the days */
  burst(v.e, AT(5 * DAY + 10 * HOUR), MIN, 3, "mb_Hr04", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr04", 1);
  /* Friday 22:30 UTC = Saturday 00:30 local */
  burst(v.e, AT(4 * DAY + 22 * HOUR + 30 * MIN), MIN, 3, "mb_Hr05", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr05", 1);
  assert_non_null(strstr(g_f[g_nf - 1].summary, "Saturday"));
  /* Sunday 23:10 UTC = Monday 01:10 local: a weekday, but at night */
  burst(v.e, AT(6 * DAY + 23 * HOUR + 10 * MIN), MIN, 3, "mb_Hr06", "/api/card/1");
  EXPECT_FIRED("hours", "mb_Hr06", 1);
  assert_non_null(strstr(g_f[g_nf - 1].summary, "01:00-01:59 on a Monday"));
  env_close(&v);
}

/* ---- throttling --------------------------------------------------------------------- */

static void test_throttle_once_a_minute(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: all, type: match, conditions: [{field: method, op: equals, value: GET}]}\n",
           NULL);
  /* 100 matching calls 6 s apart over 10 minutes, two keys interleaved */
  for (int i = 0; i < 100; i++) {
    get(v.e, AT(i * 6 * SEC), "mb_Thr1", "10.1.2.3", "/api/card/1");
    get(v.e, AT(i * 6 * SEC + SEC), "mb_Thr2", "10.1.2.3", "/api/card/1");
  }
  EXPECT_FIRED("all", "mb_Thr1", 10);
  EXPECT_FIRED("all", "mb_Thr2", 10);
  for (size_t i = 0, k = 0; i < g_nf; i++) {
    if (strcmp(g_f[i].prefix, "mb_Thr1") != 0)
      continue;
    if (g_f[i].ts != AT((int64_t)k * MIN))
      fail_msg("firing %zu at +%lld s, expected +%zu min", k,
               (long long)((g_f[i].ts - AT(0)) / SEC), k);
    k++;
  }
  /* a burst within one second fires once */
  reset();
  for (int i = 0; i < 1000; i++)
    get(v.e, AT(HOUR) + i, "mb_Thr1", "10.1.2.3", "/api/card/1");
  EXPECT_FIRED("all", NULL, 1);
  env_close(&v);
}

/* ---- event time --------------------------------------------------------------------- */

static const char MIXED_PACK[] =
    "rules:\n"
    "  - {id: spike, type: rate_spike, window: 10m, learn: 1h, factor: 4, floor: 10}\n"
    "  - {id: net, type: new_source, prefix4: 16, learn: 1h, min_history: 5}\n"
    "  - {id: fan, type: ip_fanout, window: 1h, max_addresses: 5}\n"
    "  - {id: auth, type: auth_failures, window: 5m, threshold: 4}\n"
    "  - {id: enum, type: enumeration, window: 10m, distinct_ids: 50}\n"
    "  - {id: hours, type: off_hours, hours: \"08:00-18:00\", threshold: 2, keys: [mb_Mx00]}\n"
    "  - {id: newep, type: new_endpoint, learn: 1h, min_history: 5}\n";

/* Incidents injected into the background: a spike, a fan-out, failures, an id walk. */
static void episode(struct kw_engine *e, int which, int64_t *t) {
  char ip[32], path[64];
  for (int i = 0; i < 80; i++) {
    *t += SEC;
    switch (which) {
    case 0: get(e, *t, "mb_Mx01", "10.0.1.1", "/api/card/1"); break;
    case 1:
      snprintf(ip, sizeof(ip), "192.0.2.%d", 1 + i % 12);
      get(e, *t, "mb_Mx02", ip, "/api/card/1");
      break;
    case 2:
      if (i < 6)
        hit(e, *t, "mb_Mx03", "10.0.3.1", "GET", "/api/card/1", 401, 10, "client/1.0");
      break;
    default:
      snprintf(path, sizeof(path), "/api/card/%d", 1000 + i);
      get(e, *t, "mb_Mx04", "10.0.4.1", path);
      break;
    }
  }
}

/* A deterministic two-day mix of traffic (LCG) with four incidents. */
static void mixed_traffic(struct kw_engine *e) {
  static const char *const eps[] = {"/api/card/%u", "/api/dashboard/%u", "/api/user",
                                    "/api/dataset"};
  uint32_t x = 12345, k;
  char key[16], ip[32], path[64];
  int64_t t = AT(0);
  int ep = 0;

  for (int i = 0; i < 20000; i++) {
    x = x * 1103515245u + 12345u;
    t += (x >> 16) % 20 * SEC;
    if (ep < 4 && t > AT((6 + 8 * (int64_t)ep) * HOUR))
      episode(e, ep++, &t);
    k = (x >> 8) % 12;
    snprintf(key, sizeof(key), "mb_Mx%02u", k);
    if ((x >> 9) % 50 == 0)
      snprintf(ip, sizeof(ip), "10.%u.%u.%u", (x >> 4) % 3, (x >> 12) % 4, (x >> 20) % 250 + 1);
    else
      snprintf(ip, sizeof(ip), "10.0.%u.1", k);
    snprintf(path, sizeof(path), eps[(x >> 24) % 4], (x >> 10) % 400);
    hit(e, t, key, ip, (x >> 3) % 17 == 0 ? "POST" : "GET", path,
        (x >> 5) % 40 == 0 ? 401 : 200, (x >> 7) % 100000, "client/1.0");
  }
}

static void test_event_time_replay(void **state) {
  struct env a, b;
  struct fired *first_run;
  size_t n;
  (void)state;
  env_open(&a, MIXED_PACK, NULL);
  mixed_traffic(a.e);
  n = g_nf;
  assert_int_equal(g_lost, 0);
  first_run = g_aux = malloc((n ? n : 1) * sizeof(*first_run));
  assert_non_null(first_run);
  memcpy(first_run, g_f, n * sizeof(*first_run));
  {
    /* several rule types take part */
    size_t types = 0;
    const char *ids[] = {"spike", "net", "fan", "auth", "enum", "hours", "newep"};
    for (size_t i = 0; i < 7; i++) {
      types += fired(ids[i], NULL) > 0;
      print_message("replay: %-6s %zu firings\n", ids[i], fired(ids[i], NULL));
    }
    assert_int_equal(types, 7);
  }
  env_reopen(&b, &a);
  env_close(&a);
  mixed_traffic(b.e);
  assert_int_equal(g_nf, n);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(first_run[i].rule, g_f[i].rule) != 0 || first_run[i].ts != g_f[i].ts ||
        strcmp(first_run[i].prefix, g_f[i].prefix) != 0 ||
        strcmp(first_run[i].summary, g_f[i].summary) != 0 ||
        strcmp(first_run[i].details, g_f[i].details) != 0)
      fail_msg("firing %zu differs: %s %s %lld '%s' %s vs %s %s %lld '%s' %s", i,
               first_run[i].rule, first_run[i].prefix, (long long)first_run[i].ts,
               first_run[i].summary, first_run[i].details, g_f[i].rule, g_f[i].prefix,
               (long long)g_f[i].ts, g_f[i].summary, g_f[i].details);
  }
  env_close(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_off_hours_learned, env_teardown),
      cmocka_unit_test_teardown(test_off_hours_configured, env_teardown),
      cmocka_unit_test_teardown(test_throttle_once_a_minute, env_teardown),
      cmocka_unit_test_teardown(test_event_time_replay, env_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
