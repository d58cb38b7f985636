/* test_engine_rates.c — the engine's rate rules (analyzer/engine.c): rate_spike, calls per
 * window against a learned peak (factor, floor, the learning hour, ramps, a spike across
 * midnight), and volume, bytes per window absolute or against a learned baseline.
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
#include "sidecar/alerts.h"

#include "kwtest_engine.h"

/* ---- rate_spike --------------------------------------------------------------------- */

static const char RATE_PACK[] =
    "rules:\n"
    "  - {id: spike, type: rate_spike, window: 10m, learn: 1h, factor: 4, floor: 10}\n";

static void test_rate_spike_fires_at_factor(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  EXPECT_FIRED("spike", NULL, 0);
  /* 4 x the learned peak (40 calls in 40 s) fires, once, at the 40th call */
  burst(v.e, AT(2 * HOUR), SEC, 40, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", "mb_Rate", 1);
  assert_true(first("spike")->ts == AT(2 * HOUR + 39 * SEC));
  assert_string_equal(first("spike")->type, "rate_spike");
  assert_int_equal(first("spike")->severity, KW_SEV_MEDIUM);
  assert_non_null(strstr(first("spike")->summary, "40 calls"));
  assert_non_null(strstr(first("spike")->summary, "peak 10"));
  env_close(&v);
}

static void test_rate_spike_near_miss(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  /* 3 x the peak, then 39 calls (just under 4 x): silent */
  burst(v.e, AT(2 * HOUR), SEC, 30, "mb_Rate", "/api/card/1");
  burst(v.e, AT(3 * HOUR), SEC, 39, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  /* later the same day, the 4 x spike still fires: near misses did not raise the baseline */
  burst(v.e, AT(4 * HOUR), SEC, 40, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", "mb_Rate", 1);
  env_close(&v);
}

static void test_rate_spike_learning_silent(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  burst(v.e, AT(0), SEC, 10, "mb_Rate", "/api/card/1");
  /* 200 calls in the learning hour: not judged, they become the baseline */
  burst(v.e, AT(30 * MIN), SEC, 200, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  /* so 100 calls later are ordinary for this key (4 x 200 = 800) */
  burst(v.e, AT(2 * HOUR), SEC, 100, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  /* and a second key, in its own learning hour, is silent whatever it does */
  burst(v.e, AT(2 * HOUR), 100000, 500, "mb_Newk", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  env_close(&v);
}

/* Regression: a spike that builds up over the window must not raise its own threshold. */
static void test_rate_spike_ramp(void **state) {
  struct env v;
  int n = 0;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  /* minute m of 10 has m + 1 calls: 1, 2, 3 … 55 calls over 10 minutes */
  for (int m = 0; m < 10; m++)
    for (int k = 0; k <= m; k++, n++)
      get(v.e, AT(2 * HOUR + m * MIN + k * (MIN / (m + 1))), "mb_Rate", "10.1.2.3",
          "/api/card/1");
  assert_int_equal(n, 55);
  /* fires when the window reaches 40 (and again a minute later: still above) */
  assert_true(fired("spike", "mb_Rate") >= 1);
  assert_non_null(strstr(first("spike")->summary, "40 calls"));
  env_close(&v);
}

/* The same ramp across midnight UTC: the day's highest sum below the threshold becomes
 * the baseline at the day change, which must not be the first half of the spike. */
static void test_rate_spike_ramp_midnight(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  rate_learn(v.e, "mb_Rate");
  /* 39 calls from 23:52 to 23:59:48 (just under the threshold), 40 more by 00:02 */
  burst(v.e, AT(DAY - 8 * MIN), 12 * SEC, 39, "mb_Rate", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  burst(v.e, AT(DAY), 3 * SEC, 40, "mb_Rate", "/api/card/1");
  /* 79 calls within 10 minutes, about 8 x the learned peak of 10 */
  if (fired("spike", "mb_Rate") == 0)
    fail_msg("79 calls in 10 minutes (learned peak 10, threshold 40) did not fire when the "
             "spike straddled midnight UTC: the 39 calls before 00:00 became the baseline");
  env_close(&v);
}

static void test_rate_spike_floor(void **state) {
  struct env v;
  (void)state;
  env_open(&v, RATE_PACK, NULL);
  /* a light key: one call while learning, peak 1, 4 x 1 = 4 < floor 10 */
  get(v.e, AT(0), "mb_Lite", "10.1.2.3", "/api/card/1");
  burst(v.e, AT(2 * HOUR), SEC, 9, "mb_Lite", "/api/card/1");
  EXPECT_FIRED("spike", NULL, 0);
  burst(v.e, AT(3 * HOUR), SEC, 10, "mb_Lite", "/api/card/1");
  EXPECT_FIRED("spike", "mb_Lite", 1);
  assert_non_null(strstr(first("spike")->summary, "10 calls"));
  env_close(&v);
}

/* ---- volume ------------------------------------------------------------------------- */

static void test_volume_absolute(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: vol, type: volume, window: 10m, bytes: 10MiB}\n",
           NULL);
  /* 9 MiB in 9 s, and 10 MiB spread over 20 minutes: under 10 MiB per 10 minutes */
  for (int i = 0; i < 9; i++)
    hit(v.e, AT(i * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  for (int i = 0; i < 10; i++)
    hit(v.e, AT(i * 2 * MIN), "mb_Vol2", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  EXPECT_FIRED("vol", NULL, 0);
  /* the 10th MiB within the window fires: no learning needed for an absolute threshold */
  hit(v.e, AT(9 * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  EXPECT_FIRED("vol", "mb_Vol1", 1);
  assert_string_equal(first("vol")->type, "volume");
  assert_non_null(strstr(first("vol")->summary, "MB"));
  /* unknown sizes (-1) count as nothing */
  for (int i = 0; i < 50; i++)
    hit(v.e, AT(HOUR + i * SEC), "mb_Vol3", "10.1.2.3", "GET", "/api/export", 200, -1, "c/1");
  EXPECT_FIRED("vol", "mb_Vol3", 0);
  env_close(&v);
}

/* Many small answers add up: an export of 2,000 rows of 1,000 bytes is 2 MB. */
static void test_volume_small_responses(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: vol, type: volume, window: 10m, bytes: 1MB}\n",
           NULL);
  for (int i = 0; i < 2000; i++)
    hit(v.e, AT(i * 200000), "mb_Sml1", "10.1.2.3", "GET", "/api/row/1", 200, 1000, "c/1");
  if (fired("vol", "mb_Sml1") == 0)
    fail_msg("2,000 answers of 1,000 bytes (2 MB) in 400 s did not reach a 1 MB volume "
             "threshold: answers under 1 KiB count as 0");
  env_close(&v);
}

static void test_volume_baseline(void **state) {
  struct env v;
  (void)state;
  env_open(&v, "rules:\n"
               "  - {id: volx, type: volume, window: 10m, learn: 1h, factor: 10}\n",
           NULL);
  /* learns 1 MiB per 10 minutes */
  hit(v.e, AT(0), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20, "c/1");
  /* 9 MiB later: under 10 x */
  for (int i = 0; i < 9; i++)
    hit(v.e, AT(2 * HOUR + i * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200,
        1 << 20, "c/1");
  EXPECT_FIRED("volx", NULL, 0);
  /* 10 MiB: fires */
  hit(v.e, AT(2 * HOUR + 9 * SEC), "mb_Vol1", "10.1.2.3", "GET", "/api/export", 200, 1 << 20,
      "c/1");
  EXPECT_FIRED("volx", "mb_Vol1", 1);
  env_close(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_rate_spike_fires_at_factor, env_teardown),
      cmocka_unit_test_teardown(test_rate_spike_near_miss, env_teardown),
      cmocka_unit_test_teardown(test_rate_spike_learning_silent, env_teardown),
      cmocka_unit_test_teardown(test_rate_spike_ramp, env_teardown),
      cmocka_unit_test_teardown(test_rate_spike_ramp_midnight, env_teardown),
      cmocka_unit_test_teardown(test_rate_spike_floor, env_teardown),
      cmocka_unit_test_teardown(test_volume_absolute, env_teardown),
      cmocka_unit_test_teardown(test_volume_small_responses, env_teardown),
      cmocka_unit_test_teardown(test_volume_baseline, env_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
